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

func setSeedSecrets(t *testing.T) {
	for _, k := range []string{"GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET", "GITHUB_APP_ID", "GITHUB_INSTALLATION_ID",
		"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_BOT_TOKEN", "DISCORD_GUILD_ID", "DISCORD_CHANNEL_ID"} {
		t.Setenv(k, "secret-"+strings.ToLower(k))
	}
}

// TestSeedConfig loads the seed project's example config file and checks
// what each of its settings means here. Not parallel: it sets environment
// variables.
func TestSeedConfig(t *testing.T) {
	setSeedSecrets(t)
	cfg, _, err := Parse("test", []string{"--config", "testdata/seed-config.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"server host:port → listen", cfg.Listen, "0.0.0.0:8080"},
		{"task_queue redis → redis_addr", cfg.RedisAddr, "localhost:6379"},
		{"storage postgres → database_url", cfg.DatabaseURL, "postgres://aetherium:aetherium@localhost:5432/aetherium?sslmode=disable"},
		{"vmm provider → runtime", cfg.Runtime, "firecracker"},
		{"vmm firecracker jailer_path → firecracker.jailer", cfg.Firecracker.Jailer, "/usr/bin/jailer"},
		{"logging provider → providers", strings.Join(cfg.Logging.Providers, ","), "loki"},
		{"logging loki url", cfg.Logging.Loki.URL, "http://localhost:3100"},
		{"logging loki batch", fmt.Sprint(cfg.Logging.Loki.BatchSize, cfg.Logging.Loki.BatchWait), "1000 1s"},
		{"logging stdout format", cfg.Logging.Stdout.Format, "json"},
		{"integrations enabled", strings.Join(cfg.Integrations.Enabled, ","), "github,slack"},
		{"github token from ${VAR}", cfg.Integrations.GitHub.Token, "secret-github_token"},
		{"github webhook secret", cfg.Integrations.GitHub.WebhookSecret, "secret-github_webhook_secret"},
		{"slack token", cfg.Integrations.Slack.Token, "secret-slack_bot_token"},
		{"slack channel", cfg.Integrations.Slack.DefaultChannel, "#aetherium-agents"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	notices := strings.Join(cfg.Notices, "\n")
	for _, want := range []string{"max_retry", "queue_name", "max_connections", "kernel_path", "socket_dir", "default_vcpu"} {
		if !strings.Contains(notices, want) {
			t.Errorf("notices do not mention %s:\n%s", want, notices)
		}
	}
}

// TestSeedConfigProviders switches the seed file's providers through its own
// ${VAR:-default} variables: supported ones map onto our keys, the others
// fail naming our equivalent.
func TestSeedConfigProviders(t *testing.T) {
	tests := []struct {
		env     map[string]string
		check   func(*Config) string // "" when right
		wantErr string
	}{
		{env: map[string]string{"TASK_QUEUE_PROVIDER": "memory"}, check: func(c *Config) string {
			if c.RedisAddr != "" {
				return "memory queue kept redis_addr " + c.RedisAddr
			}
			return ""
		}},
		{env: map[string]string{"EVENT_BUS_PROVIDER": "redis", "REDIS_URL": "redis://10.0.0.5:6380"}, check: func(c *Config) string {
			if c.RedisAddr != "10.0.0.5:6380" {
				return "redis_addr " + c.RedisAddr
			}
			return ""
		}},
		{env: map[string]string{"VMM_PROVIDER": "qemu"}, check: func(c *Config) string {
			if c.Runtime != "qemu" || c.QEMU.Binary != "/usr/bin/qemu-system-x86_64" {
				return "qemu runtime " + c.Runtime + " binary " + c.QEMU.Binary
			}
			return ""
		}},
		{env: map[string]string{"VMM_PROVIDER": "docker", "DOCKER_NETWORK": "bridge", "DOCKER_HOST": "unix:///run/d.sock"}, check: func(c *Config) string {
			if c.Runtime != "docker" || c.Docker.Host != "unix:///run/d.sock" {
				return "docker runtime " + c.Runtime + " host " + c.Docker.Host
			}
			return ""
		}},
		{env: map[string]string{"LOGGING_PROVIDER": "stdout"}, check: func(c *Config) string {
			if strings.Join(c.Logging.Providers, ",") != "stdout" {
				return fmt.Sprint("providers ", c.Logging.Providers)
			}
			return ""
		}},
		{env: map[string]string{"TASK_QUEUE_PROVIDER": "kafka"}, wantErr: "redis_addr"},
		{env: map[string]string{"STORAGE_PROVIDER": "mysql"}, wantErr: "database_url"},
		{env: map[string]string{"VMM_PROVIDER": "kata"}, wantErr: "runtime"},
		{env: map[string]string{"VMM_PROVIDER": "docker"}, check: func(c *Config) string {
			if c.Runtime != "docker" || !strings.Contains(strings.Join(c.Notices, "\n"), "docker.network") {
				return fmt.Sprintf("runtime %q, notices %q: want docker, with a notice naming docker.network", c.Runtime, c.Notices)
			}
			return ""
		}},
		{env: map[string]string{"EVENT_BUS_PROVIDER": "nats"}, wantErr: "redis_addr"},
		{env: map[string]string{"LOGGING_PROVIDER": "elasticsearch"}, wantErr: "logging.providers"},
		{env: map[string]string{"REDIS_URL": "redis://:pw@localhost:6379"}, wantErr: "redis_addr"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			setSeedSecrets(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, _, err := Parse("test", []string{"--config", "testdata/seed-config.yaml"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(cfg); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestLoggingAndIntegrationErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"unknown provider", "logging:\n  providers: [kafka]\n", "logging.providers"},
		{"loki without url", "logging:\n  providers: [loki]\n", "logging.loki.url"},
		{"tiny line cap", "logging:\n  max_line_bytes: 10\n", "logging.max_line_bytes"},
		{"bad log format", "log_format: xml\n", "log_format"},
		{"unsupported integration", "integrations:\n  enabled: [discord]\n", "integrations.enabled"},
		{"github without secret", "integrations:\n  enabled: [github]\n  github:\n    token: t\n", "integrations.github.webhook_secret"},
		{"slack without tokens", "integrations:\n  enabled: [slack]\n", "integrations.slack"},
		{"repo without commands", "integrations:\n  enabled: [github]\n  github:\n    token: t\n    webhook_secret: s\n    repos:\n      a/b: {template: go}\n",
			"integrations.github.repos.a/b.commands"},
		{"repo with a bad egress", "integrations:\n  enabled: [github]\n  github:\n    token: t\n    webhook_secret: s\n    repos:\n      a/b: {commands: [make], egress: \"10.0.0.0/99\"}\n",
			"integrations.github.repos.a/b.egress"},
		{"default does not hide a typo", "server:\n  hots: x\n", "hots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
