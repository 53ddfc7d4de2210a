// Package config loads aetherd's settings. Every setting has a YAML key; the
// operator-facing ones also have a flag and an AETHER_* environment variable.
// Precedence: flag > environment > file > default. The file may reference
// environment variables as ${NAME}. Load validates the result and names the
// key to fix in every error.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aetherium/aetherium/internal/egress"
)

// Config is aetherd's complete configuration.
type Config struct {
	// Listen is the API's address.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite store, the queue and per-sandbox state.
	DataDir string `yaml:"data_dir"`
	// Role is all, api or worker.
	Role string `yaml:"role"`
	// Runtime is auto, docker, qemu or firecracker.
	Runtime string `yaml:"runtime"`
	// DatabaseURL empty means SQLite in DataDir; postgres://… means PostgreSQL.
	DatabaseURL string `yaml:"database_url"`
	// RedisAddr empty means the embedded queue; host:port means Asynq on Redis.
	RedisAddr string `yaml:"redis_addr"`
	// RedisPassword authenticates to Redis (queue and event bus); empty
	// means none. Env AETHER_REDIS_PASSWORD.
	RedisPassword string `yaml:"redis_password"`
	// RedisTLS connects to Redis over TLS (system roots).
	RedisTLS bool `yaml:"redis_tls"`
	// WorkerID names this worker; empty means the hostname.
	WorkerID string `yaml:"worker_id"`
	// Advertise is the internal address other roles dial; empty means Listen.
	Advertise string `yaml:"advertise"`
	// AgentPath is the aether-agent binary; empty means next to aetherd.
	AgentPath string `yaml:"agent_path"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json: how aetherd writes its own logs to stderr.
	LogFormat string `yaml:"log_format"`
	// InternalToken is the shared secret aetherd processes present to each
	// other's internal endpoints. Required when sandboxes live on more than
	// one host; empty disables the internal endpoints.
	InternalToken string `yaml:"internal_token"`
	// Capacity caps how many sandboxes this worker accepts; 0 means no cap
	// by count (Overcommit budgets their resources).
	Capacity int `yaml:"capacity"`
	// Overcommit sets this worker's resource budget: the sandboxes' vCPUs
	// and memory limits, summed, may reach the host's CPUs and RAM times
	// these ratios.
	Overcommit Overcommit `yaml:"overcommit"`
	// WorkerDeadAfter is how long a worker may miss heartbeats before its
	// sandboxes are marked lost.
	WorkerDeadAfter time.Duration `yaml:"worker_dead_after"`
	// ReconcileInterval is how often a worker sweeps orphans, lost messages
	// and dead workers.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// RequeueAfter is how old a pending task must be before the reconciler
	// re-sends its message (after Redis lost it, say).
	RequeueAfter time.Duration `yaml:"requeue_after"`
	// ShutdownTimeout bounds draining in-flight work on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ProbeTimeout bounds one probe boot that tells whether hardware
	// virtualization works here (runtime auto, qemu.accel auto). Probes run
	// in the background, once per host; their verdicts are kept in the data
	// dir. Default 10s; a working KVM boots the probe guest in about 1s.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`

	Store   Store   `yaml:"store"`
	Tools   Tools   `yaml:"tools"`
	Sandbox Sandbox `yaml:"sandbox"`
	Docker  Docker  `yaml:"docker"`
	QEMU    QEMU    `yaml:"qemu"`
	// Firecracker configures the Firecracker runtime.
	Firecracker Firecracker `yaml:"firecracker"`
	// Network is the microVMs' network (QEMU and Firecracker).
	Network    Network    `yaml:"network"`
	API        API        `yaml:"api"`
	Queue      Queue      `yaml:"queue"`
	Executions Executions `yaml:"executions"`
	// Logging is the log pipeline: local store, providers.
	Logging Logging `yaml:"logging"`
	// Integrations configures outside services (github, slack).
	Integrations Integrations `yaml:"integrations"`

	// Notices are settings of the seed's config file that load but have
	// nothing to set in aetherd, each saying what governs it here; aetherd
	// logs them at start.
	Notices []string `yaml:"-"`
}

// Tools configures tool installation.
type Tools struct {
	// Recipes is a YAML file of extra or overriding tool recipes (format of
	// internal/tools/recipes.yaml); empty means only the built-in ones.
	Recipes string `yaml:"recipes"`
	// Defaults are installed in every new sandbox, like the seed's
	// git/nodejs/bun/claude-code; empty by default so creation stays fast
	// (bake tools into templates instead).
	Defaults []string `yaml:"defaults"`
	// Provider installs the tools named without a backend: recipes (the
	// default: built-in and Recipes) or mise. Names with a mise backend
	// (npm:cowsay, go:golang.org/x/example/hello) or the mise: prefix
	// (mise:python@3.12) always go through mise.
	Provider string `yaml:"provider"`
	// Providers overrides Provider per tool: {python: mise}.
	Providers map[string]string `yaml:"providers"`
	// Mise configures mise inside sandboxes.
	Mise Mise `yaml:"mise"`
}

// Mise configures the mise tool installer inside sandboxes.
type Mise struct {
	// Version is the mise release installed (npm package
	// @jdxcode/mise-linux-x64); empty means the built-in recipe's pin.
	Version string `yaml:"version"`
	// Settings are mise settings, passed to mise as MISE_* variables while it
	// installs: the mirrors of backends that download from outside the
	// registries a sandbox reaches: node.mirror_url, go.download_mirror, or
	// url_replacements (a JSON object rewriting any download URL, such as
	// GitHub release assets, to a mirror). Empty keeps mise's defaults,
	// except npm.package_manager, which is npm.
	Settings map[string]string `yaml:"settings"`
}

// Store configures the embedded SQLite store.
type Store struct {
	// Synchronous is full (default: every acknowledged write survives power
	// loss) or normal (the last commits may be lost on power loss, never on a
	// process crash; lower tail latency).
	Synchronous string `yaml:"synchronous"`
}

// Sandbox holds limits and defaults for sandboxes.
type Sandbox struct {
	DefaultImage string `yaml:"default_image"`
	// CACertificates is a glob of host PEM files baked into built images as
	// trusted roots; empty means Debian's locally added CAs, "-" none.
	CACertificates string `yaml:"ca_certificates"`
	MaxVCPUs       int    `yaml:"max_vcpus"`
	MaxMemoryMB    int    `yaml:"max_memory_mb"`
}

// Docker configures the Docker runtime.
type Docker struct {
	// Network is the Docker network aetherd creates for sandboxes (a bridge
	// of that name, at most 15 characters, inter-container traffic off,
	// guarded by an nftables table of that name), or none (no network).
	Network string `yaml:"network"`
	// Subnet is that network's IPv4 subnet.
	Subnet string `yaml:"subnet"`
	// Host is the Docker daemon address; empty means DOCKER_HOST or the default socket.
	Host string `yaml:"host"`
	// PidsLimit caps processes per sandbox; -1 means no limit.
	PidsLimit int64 `yaml:"pids_limit"`
	// DiskMB caps what a sandbox writes to its filesystem: a quota where
	// the storage driver has one (overlay2 on xfs with pquota), else the
	// worker measures every reconcile and fails and stops a sandbox over it.
	// 0 means no limit.
	DiskMB int64 `yaml:"disk_mb"`
	// AgentIdle is how long aetherd keeps a sandbox's agent connection that
	// no operation uses; 5 s after it closes, the agent goes dormant (PID 1
	// becomes aether-waiter until the next operation). 0 means 30s;
	// negative keeps connections and agents for good.
	AgentIdle time.Duration `yaml:"agent_idle"`
}

// QEMU configures the QEMU microVM runtime.
type QEMU struct {
	// Binary is qemu-system-x86_64; empty means found in PATH.
	Binary string `yaml:"binary"`
	// Accel is auto (KVM if a probe guest boots with it, else TCG), kvm or tcg.
	Accel string `yaml:"accel"`
	// AgentChannel is auto (vsock when /dev/vhost-vsock opens), vsock or serial.
	AgentChannel string `yaml:"agent_channel"`
	// UID and GID QEMU drops to once set up (-runas); 0 means 65534.
	UID int `yaml:"uid"`
	GID int `yaml:"gid"`
}

// Firecracker configures the Firecracker microVM runtime.
type Firecracker struct {
	// Binary is the firecracker executable; empty means $FIRECRACKER_BIN,
	// else found in PATH.
	Binary string `yaml:"binary"`
	// Jailer is the jailer executable; empty means beside firecracker or in
	// PATH. Without one aetherd refuses Firecracker unless Unjailed.
	Jailer string `yaml:"jailer"`
	// Unjailed runs Firecracker without the jailer (no chroot, uid drop or
	// cgroup limits): only for development hosts, and only when set.
	Unjailed bool `yaml:"unjailed"`
	// UID is the base of the jails' uids: each VMM runs as uid + its guest
	// CID (3 and up), one uid per sandbox; 0 means 100000.
	UID int `yaml:"uid"`
	// GID is every jail's group, which may open the TAPs; 0 means 65534.
	GID int `yaml:"gid"`
}

// Network configures microVM networking.
type Network struct {
	// Mode is bridge (a TAP per VM on Bridge, addresses from Subnet, NAT
	// out) or none (no NIC).
	Mode string `yaml:"mode"`
	// Bridge is the Linux bridge the TAPs join.
	Bridge string `yaml:"bridge"`
	// Subnet is where guest addresses come from; its first address is the
	// bridge's (the guests' gateway).
	Subnet string `yaml:"subnet"`
	// NAT masquerades guest traffic out of the host's other interfaces.
	NAT bool `yaml:"nat"`
	// HostAccess lets guests connect to the host's own services; off, only
	// replies to the host's connections reach it.
	HostAccess bool `yaml:"host_access"`
	// DNS servers for guests; empty means the host's non-loopback ones.
	DNS []string `yaml:"dns"`
	// TapPool uses the TAPs `aetherd network prepare` made (as root) instead
	// of creating them, so aetherd runs without CAP_NET_ADMIN.
	TapPool bool `yaml:"tap_pool"`
	// Egress is the sandboxes' default egress policy (Docker and microVMs),
	// when neither the create request nor its template gives one: internet
	// (the public internet only), none, or a comma-separated allowlist of
	// IPv4 addresses, CIDRs and hostnames.
	Egress string `yaml:"egress"`
	// TapOwner is the uid TAPs are created for (the user an unprivileged
	// aetherd with a TAP pool runs as); 0 means root. Jailed Firecrackers
	// open TAPs through their group (firecracker.gid).
	TapOwner int `yaml:"tap_owner"`
}

// Queue configures task delivery.
type Queue struct {
	Concurrency int `yaml:"concurrency"`
	// PollInterval is how often the embedded queue looks for retries coming
	// due (local enqueues wake workers at once).
	PollInterval time.Duration `yaml:"poll_interval"`
	// RedisPollInterval is how often an idle Asynq server asks Redis for work:
	// the floor of pickup latency in distributed mode, at one Redis call per
	// interval per idle worker.
	RedisPollInterval time.Duration  `yaml:"redis_poll_interval"`
	Weights           map[string]int `yaml:"weights"`
}

// API configures the REST API's protections (see docs/ARCHITECTURE.md,
// "API security").
type API struct {
	// MetricsToken, when set, may read /metrics as "Authorization: Bearer
	// <token>" besides admin keys. Env AETHER_METRICS_TOKEN.
	MetricsToken string `yaml:"metrics_token"`
	// SecureCookies marks the dashboard's session cookie Secure always: set
	// it when users reach aetherd over https through a proxy.
	SecureCookies bool `yaml:"secure_cookies"`
	// AllowedHosts are host names requests may carry in Host besides IP
	// literals, "localhost", the listen host and the advertise host; "*"
	// allows any name (behind a proxy that checks it). Names not allowed
	// get 421: the defence against DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// PreviewDomain, when set, makes {port}-{sandbox ID}.{preview_domain}
	// preview hosts: each proxies one sandbox port at the root of its own
	// origin, to an API key of the sandbox's project or a preview token.
	// Point a wildcard DNS record (*.preview_domain) at aetherd. It may not
	// be, or be a parent or child of, the API's host names (Validate); one
	// that shares their registrable domain gets a warning. Empty means off.
	PreviewDomain string `yaml:"preview_domain"`
	// RateLimits are per-key token buckets by route class; a rate of 0
	// means no limit.
	RateLimits RateLimits `yaml:"rate_limits"`
	// MaxConns caps open client connections; 0 means 1024.
	MaxConns int `yaml:"max_conns"`
	// MaxStreams caps each key's open event streams and task long-polls;
	// 0 means 16.
	MaxStreams int `yaml:"max_streams"`
	// ReadTimeout and WriteTimeout bound reading a request and writing its
	// response (exec, file transfers and event streams lift them for
	// themselves); IdleTimeout bounds a kept-alive connection's wait.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	// KeyCacheTTL bounds how long a key is trusted without reading the
	// store: how long a revocation through another aetherd takes to apply.
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
}

// RateLimits are the per-key token buckets of each route class.
type RateLimits struct {
	// Default covers every route not in another class.
	Default Rate `yaml:"default"`
	// Create covers creating sandboxes, templates, snapshots, images, jobs.
	Create Rate `yaml:"create"`
	// Exec covers exec, execute and file transfers.
	Exec Rate `yaml:"exec"`
	// Preview covers each preview token's requests to its preview host.
	Preview Rate `yaml:"preview"`
}

// Rate is a token bucket.
type Rate struct {
	// PerSecond is the sustained rate; 0 means no limit.
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket's size; 0 means max(1, per_second).
	Burst int `yaml:"burst"`
}

// Executions configures execution records.
type Executions struct {
	// MaxOutputBytes caps the stdout and stderr kept per execution.
	MaxOutputBytes int `yaml:"max_output_bytes"`
	// Retention is how long finished executions, tasks and jobs (and audit
	// entries) are kept; the worker's reconcile loop deletes older ones in
	// batches. Default 720h (30 days); 0 keeps them forever.
	Retention time.Duration `yaml:"retention"`
}

// Default returns the built-in defaults.
func Default() *Config {
	return &Config{
		Listen:            "127.0.0.1:8080",
		DataDir:           "./aether-data",
		Role:              "all",
		Runtime:           "auto",
		LogLevel:          "info",
		LogFormat:         "text",
		Overcommit:        Overcommit{CPU: 0, Memory: 12},
		WorkerDeadAfter:   30 * time.Second,
		ReconcileInterval: 30 * time.Second,
		RequeueAfter:      15 * time.Second,
		ShutdownTimeout:   30 * time.Second,
		ProbeTimeout:      10 * time.Second,
		Store:             Store{Synchronous: "full"},
		Tools:             Tools{Provider: "recipes"},
		Sandbox:           Sandbox{DefaultImage: "aetherium/base:bookworm", MaxVCPUs: 16, MaxMemoryMB: 65536},
		Docker:            Docker{Network: "aether-docker", Subnet: "10.78.0.0/16", PidsLimit: 4096, DiskMB: 10240, AgentIdle: 30 * time.Second},
		QEMU:              QEMU{Accel: "auto", AgentChannel: "auto"},
		Network:           Network{Mode: "bridge", Bridge: "aetherium0", Subnet: "10.77.0.0/16", NAT: true, Egress: "internet"},
		Queue:             Queue{Concurrency: 16, PollInterval: time.Second, RedisPollInterval: 5 * time.Millisecond},
		Executions:        Executions{MaxOutputBytes: 64 << 10, Retention: 720 * time.Hour},
		API: API{MaxConns: 1024, MaxStreams: 16, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute,
			IdleTimeout: 2 * time.Minute, KeyCacheTTL: 5 * time.Second,
			RateLimits: RateLimits{Default: Rate{PerSecond: 100, Burst: 200}, Create: Rate{PerSecond: 10, Burst: 50},
				Exec: Rate{PerSecond: 1000, Burst: 2000}, Preview: Rate{PerSecond: 50, Burst: 200}}},
		Logging: Logging{MaxLineBytes: 8192, Retention: 7 * 24 * time.Hour, MaxRecords: 2_000_000, Buffer: 65536, ExecOutput: true,
			Stdout: LogStdout{Format: "json"}, Loki: Loki{BatchSize: 1000, BatchWait: time.Second, Buffer: 100_000}},
	}
}

// setting is one operator-facing setting: its flag, env var and field.
type setting struct {
	flag, env, usage string
	field            func(*Config) *string
}

var settings = []setting{
	{"config", "AETHER_CONFIG", "YAML config file", nil},
	{"listen", "AETHER_LISTEN", "API listen address", func(c *Config) *string { return &c.Listen }},
	{"data-dir", "AETHER_DATA_DIR", "data directory", func(c *Config) *string { return &c.DataDir }},
	{"role", "AETHER_ROLE", "all, api or worker", func(c *Config) *string { return &c.Role }},
	{"runtime", "AETHER_RUNTIME", "auto, docker, qemu or firecracker", func(c *Config) *string { return &c.Runtime }},
	{"network", "AETHER_NETWORK", "microVM network: bridge or none", func(c *Config) *string { return &c.Network.Mode }},
	{"qemu-accel", "AETHER_QEMU_ACCEL", "QEMU accelerator: auto (KVM if a probe guest boots), kvm or tcg", func(c *Config) *string { return &c.QEMU.Accel }},
	{"database-url", "AETHER_DATABASE_URL", "empty = SQLite in the data dir; postgres://… = PostgreSQL", func(c *Config) *string { return &c.DatabaseURL }},
	{"redis-addr", "AETHER_REDIS_ADDR", "empty = embedded queue; host:port = Asynq on Redis", func(c *Config) *string { return &c.RedisAddr }},
	{"worker-id", "AETHER_WORKER_ID", "worker ID (default: hostname)", func(c *Config) *string { return &c.WorkerID }},
	{"advertise", "AETHER_ADVERTISE", "internal address other roles dial", func(c *Config) *string { return &c.Advertise }},
	{"agent-path", "AETHER_AGENT_PATH", "aether-agent binary (default: next to aetherd)", func(c *Config) *string { return &c.AgentPath }},
	{"log-level", "AETHER_LOG_LEVEL", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }},
	{"log-format", "AETHER_LOG_FORMAT", "text or json (aetherd's own logs on stderr)", func(c *Config) *string { return &c.LogFormat }},
	{"internal-token", "AETHER_INTERNAL_TOKEN", "shared secret between aetherd processes", func(c *Config) *string { return &c.InternalToken }},
	{"redis-password", "AETHER_REDIS_PASSWORD", "Redis password (queue and event bus)", func(c *Config) *string { return &c.RedisPassword }},
	{"metrics-token", "AETHER_METRICS_TOKEN", "bearer token that may read /metrics besides admin keys", func(c *Config) *string { return &c.API.MetricsToken }},
	{"preview-domain", "AETHER_PREVIEW_DOMAIN", "serve {port}-{sandbox ID}.DOMAIN as preview hosts (empty: off)", func(c *Config) *string { return &c.API.PreviewDomain }},
}

// Parse parses a command's arguments (operator flags and positional
// arguments, in any order: `migrate up --database-url …` and
// `--database-url … migrate up` mean the same) and loads the validated
// configuration, with DataDir made absolute. It returns the positional
// arguments; everything after "--" is positional.
func Parse(name string, args []string) (*Config, []string, error) {
	return ParseWith(name, flag.NewFlagSet(name, flag.ContinueOnError), args)
}

// ParseWith is Parse with a command's own flags, already defined on fs,
// parsed together with the operator flags.
func ParseWith(name string, fs *flag.FlagSet, args []string) (*Config, []string, error) {
	load := flags(fs)
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		left := fs.Args()
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			rest = append(rest, left...)
			break
		}
		if len(left) == 0 {
			break
		}
		rest, args = append(rest, left[0]), left[1:]
	}
	cfg, err := load()
	if err != nil {
		return nil, nil, err
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, nil, fmt.Errorf("config: data_dir: %w", err)
	}
	return cfg, rest, nil
}

// flags registers the operator flags on fs and returns a function that loads
// the configuration after fs.Parse.
func flags(fs *flag.FlagSet) func() (*Config, error) {
	vals := map[string]*string{}
	for _, s := range settings {
		vals[s.flag] = fs.String(s.flag, "", s.usage+" (env "+s.env+")")
	}
	return func() (*Config, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		path := os.Getenv("AETHER_CONFIG")
		if set["config"] {
			path = *vals["config"]
		}
		cfg := Default()
		if path != "" {
			if err := cfg.loadFile(path); err != nil {
				return nil, err
			}
		}
		for _, s := range settings[1:] {
			if v, ok := os.LookupEnv(s.env); ok {
				*s.field(cfg) = v
			}
			if set[s.flag] {
				*s.field(cfg) = *vals[s.flag]
			}
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
}

func (c *Config) loadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Expand ${NAME} inside values only (not comments or keys), then decode
	// strictly so unknown keys are errors.
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if doc.Kind == 0 {
		return nil // empty file: defaults
	}
	var missing []string
	expandScalars(&doc, &missing)
	if len(missing) > 0 {
		return fmt.Errorf("config %s: environment variable %s is referenced but not set (write ${NAME:-default} for a default)", path, strings.Join(missing, ", "))
	}
	if err := c.takeSeed(&doc); err != nil {
		return err
	}
	expanded, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return c.Logging.normalize(c)
}

// envRef is ${NAME} or ${NAME:-default} (the default used when NAME is
// unset or empty, as in the shell).
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

func expandScalars(n *yaml.Node, missing *[]string) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			v, ok := os.LookupEnv(m[1])
			switch {
			case m[2] != "" && v == "":
				return m[3]
			case !ok:
				*missing = append(*missing, m[1])
			}
			return v
		})
		if n.Style == 0 {
			n.Tag = "" // re-resolve: "${PORT}" was a string, "9000" may be an int
		}
	}
	for _, c := range n.Content {
		expandScalars(c, missing)
	}
}

// Validate checks every field and names the key of the first bad one.
func (c *Config) Validate() error {
	oneOf := func(key, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("config: %s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
	}
	checks := []error{
		oneOf("role", c.Role, "all", "api", "worker"),
		oneOf("runtime", c.Runtime, "auto", "docker", "qemu", "firecracker"),
		oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error"),
		oneOf("log_format", c.LogFormat, "text", "json"),
		oneOf("store.synchronous", c.Store.Synchronous, "full", "normal"),
		oneOf("qemu.accel", c.QEMU.Accel, "auto", "kvm", "tcg"),
		oneOf("qemu.agent_channel", c.QEMU.AgentChannel, "auto", "vsock", "serial"),
		oneOf("network.mode", c.Network.Mode, "bridge", "none"),
	}
	if n := c.Docker.Network; n == "" || len(n) > 15 || n == "bridge" || n == "host" {
		checks = append(checks, fmt.Errorf("config: docker.network: %q must be none or a name of 1 to 15 characters for aetherd's own network (not Docker's bridge or host)", n))
	}
	if p, err := netip.ParsePrefix(c.Docker.Subnet); c.Docker.Network != "none" && (err != nil || !p.Addr().Is4()) {
		checks = append(checks, fmt.Errorf("config: docker.subnet: %q is not an IPv4 CIDR, like 10.78.0.0/16", c.Docker.Subnet))
	}
	if c.Docker.DiskMB < 0 {
		checks = append(checks, fmt.Errorf("config: docker.disk_mb: %d must be 0 (no limit) or more", c.Docker.DiskMB))
	}
	if p, err := egress.Parse(c.Network.Egress); err != nil || p.IsZero() {
		checks = append(checks, fmt.Errorf("config: network.egress: %q: want internet, none or a comma-separated allowlist (%v)", c.Network.Egress, err))
	}
	if p, err := netip.ParsePrefix(c.Network.Subnet); err != nil || !p.Addr().Is4() || p.Bits() > 29 {
		checks = append(checks, fmt.Errorf("config: network.subnet: %q is not an IPv4 CIDR of /29 or larger, like 10.77.0.0/16", c.Network.Subnet))
	}
	if c.Network.Bridge == "" || len(c.Network.Bridge) > 15 {
		checks = append(checks, fmt.Errorf("config: network.bridge: %q must be 1 to 15 characters", c.Network.Bridge))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		checks = append(checks, fmt.Errorf("config: listen: %q is not host:port", c.Listen))
	}
	if c.DataDir == "" {
		checks = append(checks, errors.New("config: data_dir: must not be empty"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		checks = append(checks, fmt.Errorf("config: database_url: %q must be empty (SQLite) or a postgres:// URL", c.DatabaseURL))
	}
	for _, r := range []struct {
		key string
		r   Rate
	}{{"api.rate_limits.default", c.API.RateLimits.Default}, {"api.rate_limits.create", c.API.RateLimits.Create}, {"api.rate_limits.exec", c.API.RateLimits.Exec},
		{"api.rate_limits.preview", c.API.RateLimits.Preview}} {
		if r.r.PerSecond < 0 || r.r.Burst < 0 {
			checks = append(checks, fmt.Errorf("config: %s: per_second and burst must not be negative", r.key))
		}
	}
	if c.API.MaxConns < 0 || c.API.MaxStreams < 0 || c.API.ReadTimeout < 0 || c.API.WriteTimeout < 0 || c.API.IdleTimeout < 0 || c.API.KeyCacheTTL < 0 {
		checks = append(checks, errors.New("config: api: max_conns, max_streams, timeouts and key_cache_ttl must not be negative"))
	}
	if c.Capacity < 0 || c.Overcommit.CPU < 0 || c.Overcommit.Memory < 0 {
		checks = append(checks, errors.New("config: capacity and overcommit ratios must not be negative"))
	}
	if c.ReconcileInterval < 100*time.Millisecond || c.RequeueAfter < 100*time.Millisecond {
		checks = append(checks, errors.New("config: reconcile_interval and requeue_after: must be at least 100ms"))
	}
	if c.WorkerDeadAfter < time.Second {
		checks = append(checks, errors.New("config: worker_dead_after: must be at least 1s, like 30s"))
	}
	if c.InternalToken != "" && len(c.InternalToken) < 16 {
		checks = append(checks, errors.New("config: internal_token: use at least 16 characters"))
	}
	if c.ProbeTimeout < 100*time.Millisecond {
		checks = append(checks, errors.New("config: probe_timeout: must be at least 100ms, like 10s"))
	}
	if c.ShutdownTimeout <= 0 {
		checks = append(checks, errors.New("config: shutdown_timeout: must be positive, like 30s"))
	}
	if c.Sandbox.MaxVCPUs < 1 || c.Sandbox.MaxMemoryMB < 128 {
		checks = append(checks, errors.New("config: sandbox.max_vcpus must be >= 1 and sandbox.max_memory_mb >= 128"))
	}
	if c.Sandbox.DefaultImage == "" {
		checks = append(checks, errors.New("config: sandbox.default_image: must not be empty"))
	}
	if c.Queue.Concurrency < 1 || c.Queue.PollInterval < time.Millisecond || c.Queue.RedisPollInterval < time.Millisecond {
		checks = append(checks, errors.New("config: queue.concurrency must be >= 1, queue.poll_interval and queue.redis_poll_interval >= 1ms"))
	}
	if c.Executions.MaxOutputBytes < 0 {
		checks = append(checks, errors.New("config: executions.max_output_bytes: must not be negative"))
	}
	if c.Executions.Retention < 0 {
		checks = append(checks, errors.New("config: executions.retention: must not be negative (0 keeps history forever)"))
	}
	if warning, err := c.API.checkPreviewDomain(c.Listen, c.Advertise); err != nil {
		checks = append(checks, err)
	} else if warning != "" {
		slog.Warn(warning)
	}
	checks = append(checks, c.Logging.validate()...)
	checks = append(checks, c.Integrations.validate()...)
	return errors.Join(checks...)
}

// Overcommit ratios turn a host's CPUs and RAM into a worker's budget for
// its sandboxes' limits. A limit is a ceiling, not a reservation: an idle
// sandbox uses a few MiB of its memory limit and no CPU, so the budget may
// exceed the host; the cgroup of each sandbox still bounds what it can use.
// 0 means no budget of that kind.
type Overcommit struct {
	// CPU multiplies the host's CPUs; 0 (the default) leaves vCPUs unbudgeted,
	// since CPU is time-shared and a vCPU limit only caps a sandbox.
	CPU float64 `yaml:"cpu"`
	// Memory multiplies the host's RAM; the default 12 admits 576 sandboxes of
	// 512 MiB on a 24 GiB host.
	Memory float64 `yaml:"memory"`
}
