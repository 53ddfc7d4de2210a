package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The seed project's config file (techsavvyash/aetherium config/config.yaml)
// has sections of its own: server, task_queue, storage, vmm and event_bus,
// each `provider` plus `config.<provider>`. They load here and mean what
// they say: the selected provider's settings map onto our keys, a provider
// we do not have fails naming ours, and settings of the seed's own
// implementation that have nothing to set here are reported as Notices
// (logged at start). Sections of providers not selected are, as in the
// seed, not read.

type seedServer struct {
	Host string `yaml:"host"`
	Port string `yaml:"port"`
}

type seedSection struct {
	Provider string               `yaml:"provider"`
	Config   map[string]yaml.Node `yaml:"config"`
}

type seedRedis struct {
	URL           string `yaml:"url"`
	MaxRetry      *int   `yaml:"max_retry"`
	QueueName     string `yaml:"queue_name"`
	ChannelPrefix string `yaml:"channel_prefix"`
}

type seedPostgres struct {
	URL                string `yaml:"url"`
	MaxConnections     *int   `yaml:"max_connections"`
	MaxIdleConnections *int   `yaml:"max_idle_connections"`
}

type seedVMM struct {
	// firecracker
	KernelPath string `yaml:"kernel_path"`
	SocketDir  string `yaml:"socket_dir"`
	JailerPath string `yaml:"jailer_path"`
	// docker
	Socket  string `yaml:"socket"`
	Network string `yaml:"network"`
	// qemu
	BinaryPath string `yaml:"binary_path"`
	// all
	DefaultVCPU     *int `yaml:"default_vcpu"`
	DefaultMemoryMB *int `yaml:"default_memory_mb"`
}

type seedMemory struct {
	BufferSize *int `yaml:"buffer_size"`
}

// seedKeys are the seed's top-level sections that are not ours.
var seedKeys = []string{"server", "task_queue", "storage", "vmm", "event_bus"}

// takeSeed removes the seed's sections from the document's top-level
// mapping and applies them to c.
func (c *Config) takeSeed(doc *yaml.Node) error {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	sections := map[string]*yaml.Node{}
	var kept []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i].Value; slices.Contains(seedKeys, k) {
			sections[k] = m.Content[i+1]
			continue
		}
		kept = append(kept, m.Content[i], m.Content[i+1])
	}
	m.Content = kept
	for _, k := range seedKeys { // in a fixed order
		if n := sections[k]; n != nil {
			if err := c.applySeed(k, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func (c *Config) note(format string, args ...any) {
	c.Notices = append(c.Notices, fmt.Sprintf(format, args...))
}

func (c *Config) applySeed(key string, n *yaml.Node) error {
	if key == "server" {
		var s seedServer
		if err := decodeStrict(n, &s); err != nil {
			return fmt.Errorf("config: server: %w (seed keys: host, port; ours: listen)", err)
		}
		c.Listen = net.JoinHostPort(s.Host, s.Port)
		return nil
	}
	var s seedSection
	if err := decodeStrict(n, &s); err != nil {
		return fmt.Errorf("config: %s: %w (seed layout: provider, config.<provider>)", key, err)
	}
	sel, ok := s.Config[s.Provider]
	sub := func(v any) error {
		if !ok {
			return nil
		}
		if err := decodeStrict(&sel, v); err != nil {
			return fmt.Errorf("config: %s.config.%s: %w", key, s.Provider, err)
		}
		return nil
	}
	unsupported := func(ours string) error {
		return fmt.Errorf("config: %s.provider: %q is not supported; %s", key, s.Provider, ours)
	}
	switch key + "/" + s.Provider {
	case "task_queue/memory":
		c.RedisAddr = "" // the embedded queue (durable, in the data dir)
		var m seedMemory
		if err := sub(&m); err != nil {
			return err
		}
		if m.BufferSize != nil {
			c.note("task_queue.config.memory.buffer_size has no effect: the embedded queue is on disk and unbounded; queue.concurrency sets parallelism")
		}
	case "task_queue/redis", "event_bus/redis":
		var r seedRedis
		if err := sub(&r); err != nil {
			return err
		}
		addr, err := redisAddr(r.URL)
		if err != nil {
			return fmt.Errorf("config: %s.config.redis.url: %w (ours: redis_addr, host:port)", key, err)
		}
		if key == "event_bus" && c.RedisAddr != "" && c.RedisAddr != addr {
			return fmt.Errorf("config: event_bus.config.redis.url: %s differs from the task queue's %s; aetherd uses one Redis (redis_addr) for both", addr, c.RedisAddr)
		}
		c.RedisAddr = addr
		if r.MaxRetry != nil {
			c.note("task_queue.config.redis.max_retry has no effect: retries are per task kind (vm:create 3, vm:delete 5, commands never; see docs/ARCHITECTURE.md Policies)")
		}
		if r.QueueName != "" || r.ChannelPrefix != "" {
			c.note("%s.config.redis queue_name/channel_prefix have no effect: aetherd names its Redis keys itself", key)
		}
	case "event_bus/memory":
		// In process: the default when redis_addr is empty. With Redis as
		// the task queue, events go through Redis too (every process needs them).
		var m seedMemory
		if err := sub(&m); err != nil {
			return err
		}
		if c.RedisAddr != "" {
			c.note("event_bus.provider memory: with a Redis task queue aetherd publishes events through Redis (redis_addr), so every process sees them")
		}
	case "storage/postgres":
		var p seedPostgres
		if err := sub(&p); err != nil {
			return err
		}
		c.DatabaseURL = p.URL
		if p.MaxConnections != nil || p.MaxIdleConnections != nil {
			c.note("storage.config.postgres.max_connections/max_idle_connections have no effect: aetherd sizes its pool itself")
		}
	case "vmm/docker", "vmm/firecracker", "vmm/qemu":
		c.Runtime = s.Provider
		var v seedVMM
		if err := sub(&v); err != nil {
			return err
		}
		if err := c.applyVMM(s.Provider, &v); err != nil {
			return err
		}
	case "task_queue/rabbitmq", "task_queue/kafka":
		return unsupported("use redis (redis_addr) or memory (the embedded queue)")
	case "storage/mysql", "storage/mongodb", "storage/dynamodb":
		return unsupported("use postgres (database_url) or leave it out for SQLite in data_dir")
	case "vmm/kata":
		return unsupported("use firecracker, qemu, docker or auto (runtime)")
	case "event_bus/nats", "event_bus/kafka":
		return unsupported("use memory (in process) or redis (redis_addr)")
	default:
		return fmt.Errorf("config: %s.provider: %q is not a provider the seed or aetherd knows", key, s.Provider)
	}
	return nil
}

func (c *Config) applyVMM(provider string, v *seedVMM) error {
	switch provider {
	case "docker":
		if v.Socket != "" {
			c.Docker.Host = v.Socket
		}
		switch v.Network {
		case "":
		case "none":
			c.Docker.Network = "none"
		default:
			c.note("vmm.config.docker.network %q has no effect: sandboxes use aetherd's own network (docker.network, %q), where each sandbox's egress policy applies", v.Network, c.Docker.Network)
		}
	case "firecracker":
		if v.JailerPath != "" {
			c.Firecracker.Jailer = v.JailerPath
		}
		if v.KernelPath != "" {
			c.note("vmm.config.firecracker.kernel_path has no effect: aetherd extracts vmlinux from the host's Debian kernel (/boot) for each guest")
		}
		if v.SocketDir != "" {
			c.note("vmm.config.firecracker.socket_dir has no effect: sockets live in each sandbox's dir under data_dir")
		}
	case "qemu":
		if v.BinaryPath != "" {
			c.QEMU.Binary = v.BinaryPath
		}
	}
	if v.DefaultVCPU != nil || v.DefaultMemoryMB != nil {
		c.note("vmm.config.%s default_vcpu/default_memory_mb have no effect: a create request without them gets 1 vCPU and 512 MB; sandbox.max_vcpus and sandbox.max_memory_mb bound requests", provider)
	}
	return nil
}

// redisAddr turns redis://host:port[/0] into host:port.
func redisAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		return "", fmt.Errorf("%q is not a redis://host:port URL", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("a password in the URL is not supported")
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return "", fmt.Errorf("database %s: aetherd uses database 0", db)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}
