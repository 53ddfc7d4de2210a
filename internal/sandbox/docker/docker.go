// Package docker is the sandbox.Runtime on Docker Engine: one container per
// sandbox, with aether-agent bind-mounted read-only as PID 1 and reached over a
// unix socket in a per-sandbox host directory (so it works with networking
// off). Containers carry labels naming their owner, so List finds them again
// after a crash and the reconciler can remove orphans.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// Label keys set on every container this runtime creates.
const (
	LabelManaged = "io.aetherium.managed"
	LabelSandbox = "io.aetherium.sandbox-id"
	LabelOwner   = "io.aetherium.owner"
	LabelName    = "io.aetherium.name"
)

// In-container paths. The socket directory is the only host directory the
// sandbox sees besides the agent binary.
const (
	agentPath  = "/.aether/aether-agent"
	waiterPath = "/.aether/aether-waiter"
	socketDir  = "/run/aether"
	socketName = "agent.sock"
)

// Config configures a Runtime.
type Config struct {
	// AgentPath is the host path of a static aether-agent binary. Required.
	AgentPath string
	// WaiterPath is the host path of aether-waiter, the static program that
	// holds an idle sandbox's PID 1 while its agent is dormant (see
	// cmd/aether-waiter). Empty means aether-waiter beside AgentPath, and
	// agents that never go dormant when there is none.
	WaiterPath string
	// AgentIdle is how long aetherd keeps an agent connection no operation
	// uses (sandbox.AgentIdler); the agent goes dormant AgentDormantAfter
	// after the host let go of it. Zero means 30s; negative keeps every
	// connection, and every agent awake.
	AgentIdle time.Duration
	// AgentDormantAfter is the agent's own wait (--dormant-after); zero
	// means 5s. Tests shorten both.
	AgentDormantAfter time.Duration
	// StateDir holds one directory per sandbox for its agent socket. Required.
	StateDir string
	// Owner marks containers as this runtime instance's (the worker ID), so
	// two daemons on one Docker host never adopt or reap each other's. Required.
	Owner string
	// Network is the Docker network sandboxes join, which the runtime
	// creates (a bridge of the same name, inter-container traffic off) and
	// guards with an nftables table of the same name (see
	// network.Firewall): each sandbox's egress policy, no host access.
	// "" means aether-docker; "none" gives every sandbox no network.
	// At most 15 characters (it names the bridge).
	Network string
	// Subnet is the sandbox network's; the zero Prefix means 10.78.0.0/16.
	Subnet netip.Prefix
	// Resolver resolves allowlisted hostnames at Create; nil means the
	// host's resolver.
	Resolver egress.Resolver
	// PidsLimit caps processes per sandbox; 0 means 4096, -1 means no limit.
	PidsLimit int64
	// DiskMB caps what a sandbox writes to its filesystem: a quota where the
	// storage driver has one, else DiskOverruns reports it (see disk.go).
	// 0 means no limit.
	DiskMB int64
	// Host is the Docker daemon address; empty means the environment's
	// (DOCKER_HOST) or the default socket.
	Host string
	// Logger receives the isolation found on the Docker host (once); nil
	// means slog.Default().
	Logger *slog.Logger
	// Unhardened runs containers with Docker's default capabilities and
	// privileges instead of the reduced set (see hardening). Only for
	// measuring what hardening costs; aetherd never sets it.
	Unhardened bool
	// SharedPids leaves the workload in the container's pids cgroup with the
	// agent (no workload group, as on cgroup v2 hosts). Only for measuring
	// what the group costs; aetherd never sets it.
	SharedPids bool
}

func (c *Config) withDefaults() {
	if c.Network == "" {
		c.Network = "aether-docker"
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.78.0.0/16")
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AgentIdle == 0 {
		c.AgentIdle = 30 * time.Second
	}
	if c.AgentDormantAfter == 0 {
		c.AgentDormantAfter = 5 * time.Second
	}
}

func (c *Config) validate() error {
	switch {
	case c.AgentPath == "":
		return errors.New("docker runtime: AgentPath is required")
	case c.StateDir == "":
		return errors.New("docker runtime: StateDir is required")
	case c.Owner == "":
		return errors.New("docker runtime: Owner is required")
	case len(c.Network) > 15 || c.Network == "bridge" || c.Network == "host":
		return fmt.Errorf("docker runtime: Network %q must be a network of aetherd's own of at most 15 characters, or none", c.Network)
	case !c.Subnet.Addr().Is4():
		return fmt.Errorf("docker runtime: Subnet %s is not IPv4", c.Subnet)
	}
	if fi, err := os.Stat(c.AgentPath); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("docker runtime: AgentPath %s is not a file (build it with `make build`)", c.AgentPath)
	}
	return nil
}

// Runtime is a sandbox.Runtime on Docker. It is safe for concurrent use.
type Runtime struct {
	cfg Config
	cli *client.Client
	fw  *network.Firewall // nil with Network none
	// pidsGroups: each sandbox's workload runs in a pids group of its own
	// (cgroup v1 hosts; see cgroup.go).
	pidsGroups bool
	noQuota    atomic.Bool // the daemon refused StorageOpt size

	isoMu sync.Mutex
	iso   *Isolation // nil until the daemon answered

	pruneOnce sync.Once // workload groups of vanished containers
	// containers maps a sandbox id to its container's full id, kept from
	// the create or an inspection, so AdoptAgent asks dockerd nothing on
	// a create's path.
	containers sync.Map

	netMu    sync.Mutex
	netReady bool // the network and firewall are set up
	// static is the half of the subnet whose addresses Create claims
	// (network.Firewall.Claim) and gives containers itself; Docker hands
	// out only the other half (the network's IP range). Invalid on a
	// network made before there was a range: Docker picks every address.
	static   netip.Prefix
	reserved []netip.Addr // in static, never given: the network's address, the gateway
}

var (
	_ sandbox.Runtime    = (*Runtime)(nil)
	_ sandbox.AgentIdler = (*Runtime)(nil)
)

// findWaiter returns aether-waiter's absolute path: path, which must be a
// file, or else the one beside the agent, or "" (agents stay awake) when
// there is none.
func findWaiter(path, agent string, log *slog.Logger) (string, error) {
	beside := path == ""
	if beside {
		path = filepath.Join(filepath.Dir(agent), "aether-waiter")
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		if beside {
			log.Info("agents never go dormant: no aether-waiter beside the agent (make build)", slog.String("agent", agent))
			return "", nil
		}
		return "", fmt.Errorf("docker runtime: WaiterPath %s is not a file (build it with `make build`)", path)
	}
	return filepath.Abs(path)
}

// AgentIdle is how long an unused agent connection stays open, or 0 when
// agents cannot go dormant (no aether-waiter) and connections stay.
func (r *Runtime) AgentIdle() time.Duration {
	if r.cfg.WaiterPath == "" || r.cfg.AgentIdle < 0 {
		return 0
	}
	return r.cfg.AgentIdle
}

// New connects to the Docker daemon (API version negotiated) and returns a
// Runtime. It does not fail when the daemon is down; Health reports that.
func New(cfg Config) (*Runtime, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	agent, err := filepath.Abs(cfg.AgentPath)
	if err != nil {
		return nil, err
	}
	cfg.AgentPath = agent
	if cfg.WaiterPath, err = findWaiter(cfg.WaiterPath, agent, cfg.Logger); err != nil {
		return nil, err
	}
	// Bind mounts need absolute host paths; a relative one is read by Docker
	// as a volume name.
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, cli: cli, pidsGroups: cfg.PidsLimit > 0 && !cfg.SharedPids && hasPidsV1()}
	if cfg.Network != "none" {
		// Docker's embedded DNS asks the host's resolvers from inside the
		// container's namespace: those queries need the DNS exception.
		if r.fw, err = network.NewFirewall(network.FirewallConfig{Table: cfg.Network, Interfaces: []string{cfg.Network},
			Deny: []netip.Prefix{cfg.Subnet}, DNS: network.HostResolvers()}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Close releases the Docker client.
func (r *Runtime) Close() error { return r.cli.Close() }

func containerName(id string) string { return "aether-" + id }

func (r *Runtime) sandboxDir(id string) string { return filepath.Join(r.cfg.StateDir, id) }

// Create implements sandbox.Runtime.
func (r *Runtime) Create(ctx context.Context, spec *sandbox.Spec) (*sandbox.Info, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, "/.") {
		return nil, errdefs.InvalidArgument("sandbox id %q is not valid", spec.ID)
	}
	dir := r.sandboxDir(spec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if r.fw != nil && spec.Egress.Mode != egress.None {
		if err := r.ensureNetwork(ctx); err != nil {
			return nil, err
		}
	}
	allow, err := egress.Resolve(ctx, r.cfg.Resolver, spec.Egress)
	if err != nil {
		return nil, errdefs.InvalidArgument("sandbox %s: %v", spec.ID, err)
	}
	if err := r.ensureWorkloadGroup(spec.ID); err != nil {
		return nil, err
	}
	iso, err := r.Isolation(ctx)
	if err != nil {
		return nil, err
	}
	r.pruneOnce.Do(func() {
		if err := r.pruneWorkloadGroups(ctx); err != nil {
			r.cfg.Logger.WarnContext(ctx, "docker: prune workload pids groups", slog.Any("err", err))
		}
	})
	addr, err := r.claim(ctx, spec, allow)
	if err != nil {
		return nil, errors.Join(err, r.removeWorkloadGroup(spec.ID))
	}
	if addr.IsValid() { // made and started within the claim's hold, or not at all
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, network.ClaimHold)
		defer cancel()
	}
	runtimeID, err := r.createContainer(ctx, spec, dir, allow, iso, addr)
	for wait := 50 * time.Millisecond; errors.Is(err, errdefs.ErrConflict); wait = min(2*wait, time.Second) {
		// A previous attempt created it (at-least-once delivery): adopt it
		// (its egress rules follow the address it has).
		info, aerr := r.startAndInspect(ctx, spec.ID)
		if !errors.Is(aerr, errdefs.ErrNotFound) {
			return info, aerr
		}
		// The name is taken but there is no container yet: a create that
		// a killed process asked for is still under way in dockerd. Wait
		// for it to finish (or vanish), then adopt or create.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		runtimeID, err = r.createContainer(ctx, spec, dir, allow, iso, addr)
	}
	if err != nil {
		// No container to run in it (Start makes it again for one that
		// exists after all).
		return nil, errors.Join(err, r.removeWorkloadGroup(spec.ID), r.unclaim(ctx, spec.ID, addr))
	}
	r.containers.Store(spec.ID, runtimeID)
	if !addr.IsValid() {
		return r.startAndInspect(ctx, spec.ID)
	}
	// The rules for the claimed address are in place: start it, no
	// inspection needed.
	reattached, err := r.startContainer(ctx, spec.ID)
	if err != nil {
		return nil, r.mapErr(err, spec.ID)
	}
	if reattached { // the network was made again: Docker chose the address
		return r.startAndInspect(ctx, spec.ID)
	}
	return &sandbox.Info{ID: spec.ID, RuntimeID: runtimeID, State: sandbox.StateRunning, Image: spec.Image,
		CreatedAt: time.Now(), Address: addr.String()}, nil
}

// claim takes a sandbox's address from the static half of the network and
// installs its egress rules for it, before its container exists (so the
// guest never runs without them, and the start needs no inspection); the
// zero Addr without a network or on a network without the static half.
func (r *Runtime) claim(ctx context.Context, spec *sandbox.Spec, allow []netip.Prefix) (netip.Addr, error) {
	if r.fw == nil || spec.Egress.Mode == egress.None {
		return netip.Addr{}, nil
	}
	r.netMu.Lock()
	static, reserved := r.static, r.reserved
	r.netMu.Unlock()
	if !static.IsValid() {
		return netip.Addr{}, nil
	}
	return r.fw.Claim(ctx, &network.Rule{ID: spec.ID, Policy: spec.Egress, Allow: allow}, static, reserved...)
}

// unclaim frees a claimed address whose container was never made.
func (r *Runtime) unclaim(ctx context.Context, id string, addr netip.Addr) error {
	if !addr.IsValid() {
		return nil
	}
	return r.fw.Remove(context.WithoutCancel(ctx), id)
}

// Labels recording a sandbox's egress policy and its resolved allowlist,
// so Start installs the same rules again.
const (
	labelEgress = "io.aetherium.egress"
	labelAllow  = "io.aetherium.egress-allow"
)

// ensureNetwork creates the sandbox network (once it exists, it is
// checked) and sets the firewall up, removing entries of sandboxes that no
// longer have a container. Until it succeeds, every Create tries again.
func (r *Runtime) ensureNetwork(ctx context.Context) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.netReady {
		return nil
	}
	// Every aetherd on the host makes the same network: dockerd refuses
	// the second of two concurrent creates ("Pool overlaps").
	defer network.LockHost("docker-network-" + r.cfg.Network)()
	n, err := r.cli.NetworkInspect(ctx, r.cfg.Network, dnetwork.InspectOptions{})
	if client.IsErrNotFound(err) {
		static, dynamic := halves(r.cfg.Subnet)
		_, err = r.cli.NetworkCreate(ctx, r.cfg.Network, dnetwork.CreateOptions{Driver: "bridge",
			IPAM: &dnetwork.IPAM{Config: []dnetwork.IPAMConfig{{Subnet: r.cfg.Subnet.String(), IPRange: dynamic.String(),
				Gateway: static.Addr().Next().String()}}},
			Options: map[string]string{"com.docker.network.bridge.name": r.cfg.Network,
				"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.enable_ip_masquerade": "true"},
			Labels: map[string]string{LabelManaged: "true"}})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("docker: create network %s: %w", r.cfg.Network, err)
		}
		n, err = r.cli.NetworkInspect(ctx, r.cfg.Network, dnetwork.InspectOptions{})
	}
	if err != nil {
		return r.mapErr(err, "")
	}
	if n.Options["com.docker.network.bridge.enable_icc"] != "false" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != r.cfg.Subnet.String() {
		return errdefs.FailedPrecondition("docker: network %s exists without inter-container traffic off or with another subnet than %s; remove it", r.cfg.Network, r.cfg.Subnet)
	}
	r.static, r.reserved = staticHalf(r.cfg.Subnet, n.IPAM.Config[0])
	if err := r.fw.Setup(ctx); err != nil {
		return err
	}
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))})
	if err != nil {
		return r.mapErr(err, "")
	}
	live := map[string]bool{}
	for _, c := range cs {
		live[c.Labels[LabelSandbox]] = true
	}
	if err := r.fw.Prune(ctx, func(id string) bool { return live[id] }); err != nil {
		return err
	}
	if err := r.keepClaims(ctx, cs); err != nil {
		return err
	}
	r.netReady = true
	return nil
}

// keepClaims installs the rules of containers that hold an address of the
// static half but have none (the tables were lost, as at a reboot, while
// the containers stayed): until then a Claim could give their address to
// another sandbox, and they could not start again.
func (r *Runtime) keepClaims(ctx context.Context, cs []container.Summary) error {
	if !r.static.IsValid() {
		return nil
	}
	have, err := r.fw.Sandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		id := c.Labels[LabelSandbox]
		if c.NetworkSettings == nil || c.NetworkSettings.Networks[r.cfg.Network] == nil || slices.Contains(have, id) {
			continue
		}
		ipam := c.NetworkSettings.Networks[r.cfg.Network].IPAMConfig
		if ipam == nil {
			continue
		}
		if addr, err := netip.ParseAddr(ipam.IPv4Address); err == nil && r.static.Contains(addr) {
			rule, err := ruleOf(id, addr, c.Labels)
			if err == nil {
				err = r.fw.Apply(ctx, rule)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// halves splits the sandbox subnet: the lower half for the addresses Create
// claims, the upper for Docker to choose from (the network's IP range).
func halves(subnet netip.Prefix) (static, dynamic netip.Prefix) {
	subnet = subnet.Masked()
	static = netip.PrefixFrom(subnet.Addr(), subnet.Bits()+1)
	upper := subnet.Addr().As4()
	host := 32 - subnet.Bits() - 1 // host bits of a half
	upper[3-host/8] |= 1 << (host % 8)
	return static, netip.PrefixFrom(netip.AddrFrom4(upper), subnet.Bits()+1)
}

// staticHalf is the part of the network's subnet Create may claim
// addresses in, and the addresses there it must not give: only on a
// network whose IP range is the upper half (a network made before had
// none; there Docker chooses every address and Create inspects for it).
func staticHalf(subnet netip.Prefix, ipam dnetwork.IPAMConfig) (netip.Prefix, []netip.Addr) {
	static, dynamic := halves(subnet)
	if subnet.Bits() > 28 || ipam.IPRange != dynamic.String() {
		return netip.Prefix{}, nil
	}
	reserved := []netip.Addr{static.Addr(), static.Addr().Next()} // the network's address; Docker's default gateway
	if gw, err := netip.ParseAddr(ipam.Gateway); err == nil {
		reserved = append(reserved, gw)
	}
	return static, reserved
}

// applyEgress installs a started sandbox's policy for the address Docker
// gave it this time (a restart may change it); c is its inspection after
// the start.
func (r *Runtime) applyEgress(ctx context.Context, id string, c *container.InspectResponse) error {
	if c.HostConfig == nil || string(c.HostConfig.NetworkMode) != r.cfg.Network || r.fw == nil {
		return nil // no network
	}
	if err := r.ensureNetwork(ctx); err != nil {
		return err
	}
	var addr netip.Addr
	if c.NetworkSettings != nil {
		if ep := c.NetworkSettings.Networks[r.cfg.Network]; ep != nil {
			addr, _ = netip.ParseAddr(ep.IPAddress)
		}
	}
	if !addr.Is4() {
		return fmt.Errorf("docker: sandbox %s has no address on %s", id, r.cfg.Network)
	}
	rule, err := ruleOf(id, addr, c.Config.Labels)
	if err != nil {
		return err
	}
	return r.fw.Apply(ctx, rule)
}

// ruleOf is a sandbox's egress rule for addr from its container's labels.
func ruleOf(id string, addr netip.Addr, labels map[string]string) (*network.Rule, error) {
	policy, err := egress.Parse(labels[labelEgress])
	if err != nil {
		return nil, err
	}
	var allow []netip.Prefix
	for _, a := range strings.Fields(labels[labelAllow]) {
		if p, err := netip.ParsePrefix(a); err == nil {
			allow = append(allow, p)
		}
	}
	return &network.Rule{ID: id, Addr: addr, Policy: policy, Allow: allow}, nil
}

// createContainer creates the sandbox's container; addr, when valid, is
// its address on the network (claimed), else Docker chooses one at start.
func (r *Runtime) createContainer(ctx context.Context, spec *sandbox.Spec, dir string, allow []netip.Prefix, iso Isolation, addr netip.Addr) (string, error) {
	mode := r.cfg.Network
	if spec.Egress.Mode == egress.None {
		mode = "none"
	}
	var allowed []string
	for _, p := range allow {
		allowed = append(allowed, p.String())
	}
	vcpus, mem := spec.VCPUs, spec.MemoryMB
	if vcpus == 0 {
		vcpus = 1
	}
	if mem == 0 {
		mem = 512
	}
	pids := r.cfg.PidsLimit
	if pids < 0 {
		pids = 0
	}
	entrypoint := []string{agentPath, "--listen", "unix:" + socketDir + "/" + socketName}
	binds := []string{r.cfg.AgentPath + ":" + agentPath + ":ro", dir + ":" + socketDir}
	if r.AgentIdle() > 0 {
		entrypoint = append(entrypoint, "--dormant-after", r.cfg.AgentDormantAfter.String(), "--waiter", waiterPath)
		binds = append(binds, r.cfg.WaiterPath+":"+waiterPath+":ro")
	}
	if r.workloadGroup(spec.ID) != "" {
		// The container's cgroup holds only the agent; the host moves the
		// agent's forking thread into the workload group (AdoptAgent).
		pids, _ = pidsSplit(pids)
		entrypoint = append(entrypoint, "--workload-group")
	}
	h := hardening(!r.cfg.Unhardened)
	cfg := &container.Config{
		Image:      spec.Image,
		Entrypoint: entrypoint,
		Cmd:        []string{},
		Hostname:   spec.Hostname(),
		WorkingDir: "/",
		Labels: map[string]string{
			LabelManaged: "true", LabelSandbox: spec.ID, LabelOwner: r.cfg.Owner, LabelName: spec.Name,
			labelEgress: spec.Egress.String(), labelAllow: strings.Join(allowed, " "),
		},
	}
	host := &container.HostConfig{
		Binds:       binds,
		NetworkMode: container.NetworkMode(mode),
		CapDrop:     h.capDrop,
		CapAdd:      h.capAdd,
		SecurityOpt: h.securityOpt,
		// No negative OomScoreAdj for the agent: hosts whose dockerd runs with
		// a score floor refuse it. The agent raises its children's score
		// instead, which makes the workload the OOM killer's choice.
		Resources: container.Resources{
			NanoCPUs:   int64(vcpus) * 1e9,
			Memory:     int64(mem) << 20,
			MemorySwap: int64(mem) << 20, // no swap: the limit is the limit
			PidsLimit:  &pids,
			Ulimits:    append(h.ulimits, nprocLimit(iso, r.cfg.PidsLimit)...),
		},
		StorageOpt: r.storageOpt(),
	}
	var endpoints *dnetwork.NetworkingConfig
	if addr.IsValid() {
		endpoints = &dnetwork.NetworkingConfig{EndpointsConfig: map[string]*dnetwork.EndpointSettings{
			mode: {IPAMConfig: &dnetwork.EndpointIPAMConfig{IPv4Address: addr.String()}}}}
	}
	resp, err := r.cli.ContainerCreate(ctx, cfg, host, endpoints, nil, containerName(spec.ID))
	if host.StorageOpt != nil && quotaRefused(err) {
		r.noQuota.Store(true) // no quota in this storage driver: DiskOverruns watches instead
		host.StorageOpt = nil
		resp, err = r.cli.ContainerCreate(ctx, cfg, host, endpoints, nil, containerName(spec.ID))
	}
	if client.IsErrNotFound(err) {
		return "", errdefs.FailedPrecondition("image %q is not present on this Docker host; build it with `aether image build` or pull it", spec.Image)
	}
	if err != nil {
		return "", r.mapErr(err, spec.ID)
	}
	return resp.ID, nil
}

// Capabilities a sandbox keeps: what a root workload needs to install
// packages and manage its own files and processes (apt drops to _apt,
// dpkg chowns and sets modes, servers bind low ports, the agent runs
// commands as other users and signals them). Everything else Docker grants
// by default is dropped: NET_RAW (ARP and packet spoofing on the bridge),
// MKNOD, SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE.
var sandboxCaps = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"}

// maxOpenFiles is a sandbox's RLIMIT_NOFILE: 65536, or less where the host
// allows less (runc cannot raise a hard limit once capabilities are
// dropped; aetherd's own hard limit stands in for dockerd's). Processes are
// bounded by the pids cgroup (PidsLimit), not RLIMIT_NPROC: without a user
// namespace a container's root is the host's, whose process count
// RLIMIT_NPROC would share with the whole host.
var maxOpenFiles = func() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < 65536 {
		return int64(rl.Max)
	}
	return 65536
}()

type containerHardening struct {
	capDrop, capAdd, securityOpt []string
	ulimits                      []*container.Ulimit
}

// hardening is what Create adds to Docker's defaults: every capability
// dropped but sandboxCaps, no-new-privileges (setuid binaries gain nothing),
// and an open-files limit.
func hardening(on bool) containerHardening {
	if !on {
		return containerHardening{}
	}
	return containerHardening{capDrop: []string{"ALL"}, capAdd: sandboxCaps, securityOpt: []string{"no-new-privileges"},
		ulimits: []*container.Ulimit{{Name: "nofile", Soft: maxOpenFiles, Hard: maxOpenFiles}}}
}

// startAndInspect starts a sandbox and describes it from the one
// inspection the start made (a create costs create, start and one inspect).
func (r *Runtime) startAndInspect(ctx context.Context, id string) (*sandbox.Info, error) {
	c, err := r.start(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.info(id, c)
}

// Start implements sandbox.Runtime. The sandbox's egress rules are
// installed again for the address it has now; until then it reaches
// nothing.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.start(ctx, id)
	return err
}

// start starts the container, inspects it once and applies its egress
// rules for the address the inspection shows.
func (r *Runtime) start(ctx context.Context, id string) (*container.InspectResponse, error) {
	if err := r.ensureWorkloadGroup(id); err != nil {
		return nil, err
	}
	if _, err := r.startContainer(ctx, id); err != nil {
		return nil, r.mapErr(err, id)
	}
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return nil, r.mapErr(err, id)
	}
	r.containers.Store(id, c.ID)
	return &c, r.applyEgress(ctx, id, &c)
}

// startContainer starts the container, joining it to the network again
// (reattached) when someone removed the network.
func (r *Runtime) startContainer(ctx context.Context, id string) (reattached bool, err error) {
	err = r.cli.ContainerStart(ctx, containerName(id), container.StartOptions{})
	if r.networkGone(err) {
		return true, r.reattachNetwork(ctx, id)
	}
	return false, err
}

// networkGone reports whether err is dockerd's answer to starting a
// container whose network no longer exists (named, before its first start;
// by ID after). A sandbox joins no other network than the runtime's.
func (r *Runtime) networkGone(err error) bool {
	return err != nil && r.fw != nil && client.IsErrNotFound(err) &&
		strings.Contains(err.Error(), "network ") && strings.HasSuffix(err.Error(), " not found")
}

// reattachNetwork makes the sandbox network again (someone removed it
// after it was checked: it survives restarts, so an operator's cleanup or
// a test's can), joins the container to it and starts it.
func (r *Runtime) reattachNetwork(ctx context.Context, id string) error {
	r.netMu.Lock()
	r.netReady = false
	r.netMu.Unlock()
	if err := r.ensureNetwork(ctx); err != nil {
		return err
	}
	name := containerName(id)
	r.cli.NetworkDisconnect(ctx, r.cfg.Network, name, true) // the stale endpoint, if any
	if err := r.cli.NetworkConnect(ctx, r.cfg.Network, name, nil); err != nil {
		return err
	}
	return r.cli.ContainerStart(ctx, name, container.StartOptions{})
}

// Stop implements sandbox.Runtime.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	timeout := 5
	err := r.cli.ContainerStop(ctx, containerName(id), container.StopOptions{Timeout: &timeout})
	return r.mapErr(err, id)
}

// Delete implements sandbox.Runtime. When dockerd cannot end the
// container (a fork bomb outruns its kill), the host kills the workload
// group's processes itself and removes the container again.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	r.containers.Delete(id)
	remove := func() error {
		err := r.cli.ContainerRemove(ctx, containerName(id), container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !client.IsErrNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
			return r.mapErr(err, id)
		}
		return nil
	}
	if err := remove(); err != nil {
		if r.workloadGroup(id) == "" {
			return err
		}
		killGroup(r.workloadGroup(id))
		if err := remove(); err != nil {
			return err
		}
	}
	if err := r.removeWorkloadGroup(id); err != nil {
		return err
	}
	if r.fw != nil {
		if err := r.fw.Remove(ctx, id); err != nil {
			return err
		}
	}
	return os.RemoveAll(r.sandboxDir(id))
}

// Inspect implements sandbox.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (*sandbox.Info, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return nil, r.mapErr(err, id)
	}
	return r.info(id, &c)
}

// info describes a sandbox from its container's inspection; a container
// of another owner is not found.
func (r *Runtime) info(id string, c *container.InspectResponse) (*sandbox.Info, error) {
	if c.Config == nil || c.Config.Labels[LabelOwner] != r.cfg.Owner {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	created, _ := time.Parse(time.RFC3339Nano, c.Created)
	status := ""
	if c.State != nil {
		status = c.State.Status
	}
	addr := ""
	if c.NetworkSettings != nil {
		for _, n := range c.NetworkSettings.Networks {
			if n != nil && n.IPAddress != "" {
				addr = n.IPAddress
			}
		}
	}
	return &sandbox.Info{ID: id, RuntimeID: c.ID, State: state(status), Image: c.Config.Image, CreatedAt: created, Address: addr}, nil
}

// state maps Docker's container status ("running", "paused", "created",
// "exited"…, the same words in inspect and list answers) to a sandbox state.
func state(status string) string {
	switch status {
	case "running":
		return sandbox.StateRunning
	case "paused":
		return sandbox.StatePaused
	case "created":
		return sandbox.StateCreated
	}
	return sandbox.StateStopped
}

// List implements sandbox.Runtime.
func (r *Runtime) List(ctx context.Context) ([]*sandbox.Info, error) {
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelOwner+"="+r.cfg.Owner),
	)})
	if err != nil {
		return nil, r.mapErr(err, "")
	}
	out := make([]*sandbox.Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, &sandbox.Info{ID: c.Labels[LabelSandbox], RuntimeID: c.ID, State: state(c.State), Image: c.Image,
			CreatedAt: time.Unix(c.Created, 0)})
	}
	return out, nil
}

// Dial implements sandbox.Runtime.
func (r *Runtime) Dial(ctx context.Context, id string) (net.Conn, error) {
	conn, err := sandbox.DialUnix(ctx, filepath.Join(r.sandboxDir(id), socketName))
	if err != nil {
		if _, serr := os.Stat(r.sandboxDir(id)); os.IsNotExist(serr) {
			return nil, errdefs.NotFound("sandbox %s has no agent directory on this host", id)
		}
		return nil, errdefs.Unavailable("agent of sandbox %s not reachable: %v", id, err)
	}
	return conn, nil
}

// Health implements sandbox.Runtime.
func (r *Runtime) Health(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return errdefs.Unavailable("docker daemon: %v", err)
	}
	return nil
}

// mapErr translates Docker errors into errdefs classes.
func (r *Runtime) mapErr(err error, id string) error {
	switch {
	case err == nil:
		return nil
	case client.IsErrNotFound(err):
		return errdefs.NotFound("sandbox %s not found: %v", id, err)
	case strings.Contains(err.Error(), "Conflict") || strings.Contains(err.Error(), "is already in use"):
		return errdefs.Conflict("sandbox %s: %v", id, err)
	case cerrdefs.IsInvalidArgument(err):
		return errdefs.InvalidArgument("sandbox %s: %v", id, err)
	case client.IsErrConnectionFailed(err):
		return errdefs.Unavailable("docker daemon: %v", err)
	}
	return fmt.Errorf("docker: %w", err)
}

var (
	_ sandbox.Committer    = (*Runtime)(nil)
	_ sandbox.ImageRemover = (*Runtime)(nil)
	_ sandbox.Pauser       = (*Runtime)(nil)
)

// Commit implements sandbox.Committer. The container is paused for the
// duration of the commit so the image is consistent.
func (r *Runtime) Commit(ctx context.Context, id, ref string) (string, error) {
	resp, err := r.cli.ContainerCommit(ctx, containerName(id), container.CommitOptions{Reference: ref, Pause: true,
		Comment: "aetherium sandbox " + id})
	if err != nil {
		return "", r.mapErr(err, id)
	}
	return resp.ID, nil
}

// RemoveImage implements sandbox.ImageRemover.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	_, err := r.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !client.IsErrNotFound(err) {
		return r.mapErr(err, ref)
	}
	return nil
}

// Pause implements sandbox.Pauser (the cgroup freezer).
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.mapErr(r.cli.ContainerPause(ctx, containerName(id)), id)
}

// Resume implements sandbox.Pauser.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.mapErr(r.cli.ContainerUnpause(ctx, containerName(id)), id)
}

// Network is the sandbox network's name (and its bridge's and nftables
// table's); "none" without one.
func (r *Runtime) Network() string { return r.cfg.Network }
