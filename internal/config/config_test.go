package config

import (
	"flag"
	"os"
	"path/filepath"
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
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	get := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return get()
}

// Not parallel: these tests set process environment variables.
func TestPrecedence(t *testing.T) {
	t.Setenv("AETHER_ROLE", "worker")
	t.Setenv("LISTEN_PORT", "9000")
	file := "listen: 127.0.0.1:${LISTEN_PORT}\nrole: api\nruntime: docker\ndocker:\n  network: none\nqueue:\n  poll_interval: 20ms\n"
	cfg, err := load(t, file, "--runtime", "auto")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"file with ${ENV}", cfg.Listen, "127.0.0.1:9000"},
		{"env over file", cfg.Role, "worker"},
		{"flag over file", cfg.Runtime, "auto"},
		{"nested file key", cfg.Docker.Network, "none"},
		{"default", cfg.DataDir, "./aether-data"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
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
		{"bad sync", "store:\n  synchronous: off\n", nil, "store.synchronous"},
		{"bad database url", "", []string{"--database-url", "mysql://x"}, "database_url"},
		{"unset env var", "listen: ${AETHER_TEST_UNSET_VAR}\n", nil, "AETHER_TEST_UNSET_VAR"},
		{"wrong type (by line)", "queue:\n  concurrency: many\n", nil, "line 2"},
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
