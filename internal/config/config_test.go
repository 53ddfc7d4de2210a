package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, file string, args ...string) (*Config, error) {
	t.Helper()
	if file != "" {
		p := filepath.Join(t.TempDir(), "aetherd.yaml")
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	cfg, _, err := Parse("test", args)
	return cfg, err
}

// Not parallel: these tests set process environment variables.
func TestPrecedence(t *testing.T) {
	t.Setenv("AETHER_ROLE", "worker")
	t.Setenv("LISTEN_PORT", "9000")
	t.Setenv("CONCURRENCY", "7")
	file := "# comments may mention ${UNSET_IN_COMMENT}\nlisten: 127.0.0.1:${LISTEN_PORT}\nrole: api\nruntime: docker\ndocker:\n  network: none\nqemu:\n  accel: kvm\nqueue:\n  poll_interval: 20ms\n  concurrency: ${CONCURRENCY}\n"
	cfg, err := load(t, file, "--runtime", "auto", "--qemu-accel", "tcg")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"file with ${ENV}", cfg.Listen, "127.0.0.1:9000"},
		{"env over file", cfg.Role, "worker"},
		{"flag over file", cfg.Runtime, "auto"},
		{"nested file key", cfg.Docker.Network, "none"},
		{"nested key, flag over file", cfg.QEMU.Accel, "tcg"},
		{"default, made absolute", cfg.DataDir, must(filepath.Abs("./aether-data"))},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if cfg.Queue.Concurrency != 7 {
		t.Errorf("int from ${ENV}: %d", cfg.Queue.Concurrency)
	}
	if cfg.Queue.PollInterval != 20*time.Millisecond {
		t.Errorf("duration from file: %s", cfg.Queue.PollInterval)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		want       string
	}{
		{"unknown key", "lissten: x\n", nil, "lissten"},
		{"bad role", "", []string{"--role", "boss"}, "role"},
		{"bad listen", "", []string{"--listen", "nope"}, "listen"},
		{"bad network", "docker:\n  network: host\n", nil, "docker.network"},
		{"bad microVM network mode", "network:\n  mode: host\n", nil, "network.mode"},
		{"IPv6 subnet", "network:\n  subnet: fd00::/64\n", nil, "network.subnet"},
		{"tiny subnet", "network:\n  subnet: 10.0.0.0/30\n", nil, "network.subnet"},
		{"long bridge name", "network:\n  bridge: a-very-long-bridge-name\n", nil, "network.bridge"},
		{"bad sync", "store:\n  synchronous: off\n", nil, "store.synchronous"},
		{"bad database url", "", []string{"--database-url", "mysql://x"}, "database_url"},
		{"unset env var", "listen: ${AETHER_TEST_UNSET_VAR}\n", nil, "AETHER_TEST_UNSET_VAR"},
		{"wrong type (by line)", "queue:\n  concurrency: many\n", nil, "line 2"},
		{"tiny probe timeout", "probe_timeout: 1ms\n", nil, "probe_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// TestExampleConfigLoads keeps docs/aetherd.example.yaml valid and equal to
// the defaults it documents.
func TestExampleConfigLoads(t *testing.T) {
	cfg, _, err := Parse("test", []string{"--config", "../../docs/aetherd.example.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	def.DataDir = cfg.DataDir
	def.Queue.Weights = cfg.Queue.Weights // the example spells out the built-in weights
	if got, want := fmt.Sprintf("%+v", *cfg), fmt.Sprintf("%+v", *def); got != want {
		t.Errorf("example config differs from defaults:\n got %s\nwant %s", got, want)
	}
}

// TestFlagsInAnyPosition guards the bug where `aetherd migrate up
// --database-url postgres://…` ignored every flag after `up` and migrated
// the default SQLite store instead, reporting success.
func TestFlagsInAnyPosition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantURL  string
		wantRest []string
	}{
		{"flags first", []string{"--database-url", "postgres://h/db", "up"}, "postgres://h/db", []string{"up"}},
		{"flags after the command", []string{"up", "--database-url", "postgres://h/db"}, "postgres://h/db", []string{"up"}},
		{"flags between arguments", []string{"force", "--database-url=postgres://h/db", "3"}, "postgres://h/db", []string{"force", "3"}},
		{"after -- all positional", []string{"force", "--", "--database-url"}, "", []string{"force", "--database-url"}},
		{"no arguments", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, rest, err := Parse("test", tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DatabaseURL != tt.wantURL || !slices.Equal(rest, tt.wantRest) {
				t.Errorf("Parse(%q): database_url %q, rest %q; want %q, %q", tt.args, cfg.DatabaseURL, rest, tt.wantURL, tt.wantRest)
			}
		})
	}
	if _, _, err := Parse("test", []string{"up", "--no-such-flag"}); err == nil {
		t.Error("an unknown flag after a positional argument was accepted")
	}
}
