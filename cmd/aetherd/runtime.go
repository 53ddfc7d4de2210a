package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/api"
	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/hostprobe"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/sandbox/firecracker"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
)

// runtimes opens each kind of runtime from the configuration and keeps
// what decided the choice. Probes it starts in the background end at close.
type runtimes struct {
	cfg      *config.Config
	workerID string
	agent    string
	guests   *image.GuestBuilder
	net      *network.Manager // nil with network: none
	probes   *hostprobe.Cache
	log      *slog.Logger

	bg      context.Context // background probes' context, ended by close
	stop    context.CancelFunc
	running sync.WaitGroup // background probes

	mu     sync.Mutex
	choice api.RuntimeChoice
}

func newRuntimes(cfg *config.Config, workerID string, images *image.Builder, leases network.Leases, log *slog.Logger) (*runtimes, error) {
	agent, err := agentPath(cfg)
	if err != nil {
		return nil, err
	}
	r := &runtimes{cfg: cfg, workerID: workerID, agent: agent, log: log,
		guests: image.NewGuestBuilder(images, filepath.Join(cfg.DataDir, "guests"), agent),
		probes: hostprobe.NewCache(filepath.Join(cfg.DataDir, "probes.json"))}
	r.bg, r.stop = context.WithCancel(context.Background())
	if cfg.Network.Mode == "bridge" {
		if r.net, err = network.New(networkConfig(cfg), leases); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// open returns the configured runtime. auto never waits for a probe: see auto.
func (r *runtimes) open(ctx context.Context) (sandbox.Runtime, error) {
	var rt sandbox.Runtime
	var err error
	switch r.cfg.Runtime {
	case "docker":
		rt, err = r.docker()
		r.chose("docker", "configured (runtime: docker)", nil)
	case "qemu":
		var q *qemu.Runtime
		if q, err = r.qemu(); err == nil {
			rt = q
			r.chose("qemu", "configured (runtime: qemu)", nil)
			if r.cfg.QEMU.Accel == "auto" { // the first sandbox then waits for less of the probe
				r.background("qemu-kvm", func(ctx context.Context) error { _, err := q.ProbeKVM(ctx); return err })
			}
		}
	case "firecracker":
		rt, err = r.firecracker()
		r.chose("firecracker", "configured (runtime: firecracker)", nil)
	default:
		rt, err = r.auto(ctx)
	}
	if err != nil {
		return nil, err
	}
	if r.choice.Name != "docker" {
		if err := r.setupNetwork(ctx, rt); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// Choice reports the runtime in use, why, and why others were skipped; a
// probe finishing in the background updates what was skipped.
func (r *runtimes) Choice() api.RuntimeChoice {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.choice
	c.Skipped = maps.Clone(c.Skipped)
	return c
}

// close ends background probes (a cut-off probe records nothing) and waits
// for them, so no probe guest outlives aetherd.
func (r *runtimes) close(context.Context) error {
	r.stop()
	r.running.Wait()
	return nil
}

func (r *runtimes) chose(name, why string, skipped map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.choice = api.RuntimeChoice{Name: name, Why: why, Skipped: skipped}
}

func (r *runtimes) skip(name, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.choice.Skipped == nil {
		r.choice.Skipped = map[string]string{}
	}
	r.choice.Skipped[name] = why
}

// background runs a probe off the startup path; its verdict lands in the
// probe cache (for the next start) and in Choice.
func (r *runtimes) background(name string, probe func(context.Context) error) {
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		err := probe(r.bg)
		if r.bg.Err() != nil {
			return
		}
		r.mu.Lock()
		_, skipped := r.choice.Skipped[name]
		inUse := r.choice.Name
		r.mu.Unlock()
		switch {
		case !skipped:
		case err == nil && name == "qemu-kvm" && inUse == "qemu":
			r.skip(name, "works here: new microVMs run with KVM")
		case err == nil:
			r.skip(name, "works here (found after startup): runtime auto prefers it from the next start unless sandboxes remain in "+inUse)
		default:
			r.skip(name, "no: "+err.Error())
		}
		r.log.Info("runtime probe finished", slog.String("runtime", name), slog.Bool("works", err == nil), slog.Any("err", err))
	}()
}

// option is a usable runtime for auto, in preference order.
type option struct {
	label string // firecracker, qemu-kvm, docker or qemu-tcg
	name  string // the runtime's name
	rt    sandbox.Runtime
	why   string
}

// auto picks the strongest isolation that works on this host, without ever
// waiting for a probe: Firecracker, then QEMU with KVM, when this host's
// cached probe verdict says a guest boots; else Docker when its daemon
// answers; else QEMU under TCG (emulation is 10-50x slower than a container,
// so a working Docker wins over it). Hosts without a verdict are probed in
// the background and the verdict kept for the next start. A runtime that
// still holds this worker's sandboxes is kept over a stronger one, so a new
// verdict never strands them. A signal during startup cannot make Docker
// lose: its health check does not use ctx.
func (r *runtimes) auto(ctx context.Context) (sandbox.Runtime, error) {
	skipped := map[string]string{}
	var opts []option
	var pending []probed
	q, qerr := r.qemu()
	for _, p := range r.hardware(q, qerr) {
		if p.err != nil {
			skipped[p.label] = p.err.Error()
			continue
		}
		switch v, known := p.verdict(); {
		case known && v.OK:
			opts = append(opts, option{p.label, p.name, p.rt, "a probe guest booted with KVM on this host"})
		case known:
			skipped[p.label] = "no: " + v.Why
		default:
			skipped[p.label] = "probing in the background; the verdict is kept for the next start"
			pending = append(pending, p)
		}
	}
	d, derr := r.docker()
	if derr == nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		derr = d.Health(hctx)
		cancel()
	}
	if derr == nil {
		opts = append(opts, option{"docker", "docker", d, "its daemon answers, and no hardware virtualization is known to work here"})
	} else {
		skipped["docker"] = derr.Error()
	}
	if qerr == nil {
		opts = append(opts, option{"qemu-tcg", "qemu", q, "nothing stronger is usable; TCG (software emulation) unless the KVM probe succeeds"})
	}
	if len(opts) == 0 {
		return nil, fmt.Errorf("runtime auto: nothing usable here: %v", skipped)
	}
	chosen := r.keep(ctx, opts)
	for _, o := range opts {
		if o.label != chosen.label && skipped[o.label] == "" {
			skipped[o.label] = "usable, but " + chosen.label + " was chosen"
		}
	}
	r.chose(chosen.name, chosen.why, skipped)
	r.log.Info("runtime auto: using "+chosen.label, slog.String("why", chosen.why), slog.Any("skipped", skipped))
	for _, p := range pending {
		r.background(p.label, p.probe)
	}
	return chosen.rt, nil
}

// keep returns the option to use: the first (strongest), unless it holds no
// sandboxes of this worker and a later one does.
func (r *runtimes) keep(ctx context.Context, opts []option) option {
	if len(opts) == 1 || r.holds(ctx, opts[0].rt) {
		return opts[0]
	}
	for _, o := range opts[1:] {
		if o.name != opts[0].name && r.holds(ctx, o.rt) {
			o.why = "it holds this worker's sandboxes (" + opts[0].label + " would be preferred; delete them or set runtime to switch)"
			return o
		}
	}
	return opts[0]
}

// holds reports whether rt has machines of this worker.
func (r *runtimes) holds(ctx context.Context, rt sandbox.Runtime) bool {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	list, err := rt.List(lctx)
	return err == nil && len(list) > 0
}

// probed is a runtime whose usability a probe boot decides.
type probed struct {
	label, name string
	rt          sandbox.Runtime
	err         error // why it cannot be used at all
	verdict     func() (hostprobe.Verdict, bool)
	probe       func(context.Context) error
}

// hardware lists the runtimes a probe boot decides: Firecracker, then QEMU
// with KVM.
func (r *runtimes) hardware(q *qemu.Runtime, qerr error) []probed {
	fc, fcerr := r.firecracker()
	ps := []probed{{label: "firecracker", name: "firecracker", rt: fc, err: fcerr}}
	if fcerr == nil {
		ps[0].verdict, ps[0].probe = fc.ProbeVerdict, fc.Probe
	}
	kvm := probed{label: "qemu-kvm", name: "qemu", rt: q, err: qerr}
	switch {
	case qerr != nil:
	case r.cfg.QEMU.Accel == "tcg":
		kvm.err = errors.New("qemu.accel is tcg")
	case r.cfg.QEMU.Accel == "kvm":
		kvm.verdict = func() (hostprobe.Verdict, bool) { return hostprobe.Verdict{OK: true}, true }
	default:
		kvm.verdict = q.KVMVerdict
		kvm.probe = func(ctx context.Context) error {
			v, err := q.ProbeKVM(ctx)
			if err == nil && !v.OK {
				err = errors.New(v.Why)
			}
			return err
		}
	}
	return append(ps, kvm)
}

func (r *runtimes) docker() (*docker.Runtime, error) {
	c := docker.Config{AgentPath: r.agent, StateDir: filepath.Join(r.cfg.DataDir, "sandboxes"),
		Owner: r.workerID, Network: r.cfg.Docker.Network, PidsLimit: r.cfg.Docker.PidsLimit, DiskMB: r.cfg.Docker.DiskMB,
		Host: r.cfg.Docker.Host, AgentIdle: r.cfg.Docker.AgentIdle, Logger: r.log}
	if r.cfg.Docker.Network != "none" {
		c.Subnet = netip.MustParsePrefix(r.cfg.Docker.Subnet)
	}
	return docker.New(c)
}

func (r *runtimes) qemu() (*qemu.Runtime, error) {
	c := qemu.Config{Binary: r.cfg.QEMU.Binary, Accel: r.cfg.QEMU.Accel, AgentChannel: r.cfg.QEMU.AgentChannel, UID: r.cfg.QEMU.UID, GID: r.cfg.QEMU.GID,
		StateDir: filepath.Join(r.cfg.DataDir, "vms"),
		Owner:    r.workerID, Guests: r.guests, Probes: r.probes, ProbeTimeout: r.cfg.ProbeTimeout, Logger: r.log}
	if r.net != nil {
		c.Network = r.net
	}
	return qemu.New(c)
}

func (r *runtimes) firecracker() (*firecracker.Runtime, error) {
	bin := r.cfg.Firecracker.Binary
	if bin == "" {
		bin = os.Getenv("FIRECRACKER_BIN")
	}
	c := firecracker.Config{Binary: bin, Jailer: r.cfg.Firecracker.Jailer, Unjailed: r.cfg.Firecracker.Unjailed,
		UID: r.cfg.Firecracker.UID, GID: r.cfg.Firecracker.GID,
		StateDir: filepath.Join(r.cfg.DataDir, "firecracker"), Owner: r.workerID, Guests: r.guests, Probes: r.probes,
		ProbeTimeout: r.cfg.ProbeTimeout, Logger: r.log}
	if r.net != nil {
		c.Network = r.net
	}
	return firecracker.New(c)
}

func networkConfig(cfg *config.Config) network.Config {
	return network.Config{Bridge: cfg.Network.Bridge, Subnet: netip.MustParsePrefix(cfg.Network.Subnet), NAT: cfg.Network.NAT,
		HostAccess: cfg.Network.HostAccess,
		DNS:        cfg.Network.DNS, TapOwner: cfg.Network.TapOwner, TapGroup: tapGroup(cfg), TapPool: cfg.Network.TapPool,
		ClaimDir: filepath.Join(cfg.DataDir, "network", "claims")}
}

// tapGroup is the group TAPs are made for: the one jailed Firecrackers run
// in (each with a uid of its own), or none for the other runtimes.
func tapGroup(cfg *config.Config) int {
	switch {
	case cfg.Runtime == "docker" || cfg.Runtime == "qemu":
		return 0
	case cfg.Firecracker.GID != 0:
		return cfg.Firecracker.GID
	}
	return 65534
}

// setupNetwork makes the microVMs' bridge and NAT and removes TAPs of
// sandboxes this runtime no longer has (deleted while aetherd was down).
func (r *runtimes) setupNetwork(ctx context.Context, rt sandbox.Runtime) error {
	if r.net == nil {
		return nil
	}
	if err := r.net.Setup(ctx); err != nil {
		return fmt.Errorf("%w (or set network.mode: none)", err)
	}
	list, err := rt.List(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, info := range list {
		known[info.ID] = true
	}
	if err := r.net.Prune(ctx, func(id string) bool { return known[id] }); err != nil {
		r.log.Warn("network: removing leftover TAPs", slog.Any("err", err))
	}
	r.log.Info("network: microVMs on bridge", slog.String("bridge", r.net.Bridge()), slog.String("gateway", r.net.Gateway().String()))
	return nil
}
