package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/sandbox/firecracker"
	"github.com/aetherium/aetherium/internal/sandbox/qemu"
)

// runtimes opens each kind of runtime from the configuration.
type runtimes struct {
	cfg      *config.Config
	workerID string
	agent    string
	guests   *image.GuestBuilder
	net      *network.Manager // nil with network: none
	log      *slog.Logger
}

// openRuntime picks the runtime by name. auto picks the strongest isolation
// that works on this host, and logs why: Firecracker when a probe guest
// boots in it, else QEMU when a probe guest boots with KVM, else Docker when
// its daemon answers, else QEMU under TCG (emulation is 10-50x slower than
// a container, so a working Docker wins over it).
func openRuntime(ctx context.Context, cfg *config.Config, workerID string, images *image.Builder, leases network.Leases, log *slog.Logger) (sandbox.Runtime, string, error) {
	agent, err := agentPath(cfg)
	if err != nil {
		return nil, "", err
	}
	r := &runtimes{cfg: cfg, workerID: workerID, agent: agent, log: log,
		guests: image.NewGuestBuilder(images, filepath.Join(cfg.DataDir, "guests"), agent)}
	if cfg.Network.Mode == "bridge" {
		if r.net, err = network.New(networkConfig(cfg), leases); err != nil {
			return nil, "", err
		}
	}
	var rt sandbox.Runtime
	name := cfg.Runtime
	switch cfg.Runtime {
	case "docker":
		rt, err = r.docker()
	case "qemu":
		rt, err = r.qemu()
	case "firecracker":
		rt, err = r.firecracker()
	default:
		rt, name, err = r.auto(ctx)
	}
	if err != nil {
		return nil, "", err
	}
	if name != "docker" {
		if err := r.setupNetwork(ctx, rt); err != nil {
			return nil, "", err
		}
	}
	return rt, name, nil
}

func (r *runtimes) auto(ctx context.Context) (sandbox.Runtime, string, error) {
	fc, err := r.firecracker()
	if err == nil {
		if err = fc.Probe(ctx); err == nil {
			r.log.Info("runtime auto: using firecracker (a probe guest booted with KVM)")
			return fc, "firecracker", nil
		}
	}
	why := fmt.Sprintf("firecracker: %v", err)
	q, qerr := r.qemu()
	if qerr == nil && q.Accel(ctx) == "kvm" {
		r.log.Info("runtime auto: using qemu with KVM", slog.String("skipped", why))
		return q, "qemu", nil
	}
	why += "; qemu: no working KVM"
	d, err := r.docker()
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = d.Health(hctx)
		cancel()
		if err == nil {
			r.log.Info("runtime auto: using docker (no hardware virtualization works here; its daemon answers)", slog.String("skipped", why))
			return d, "docker", nil
		}
	}
	if qerr != nil {
		return nil, "", fmt.Errorf("runtime auto: nothing usable: %s; docker: %v; qemu: %v", why, err, qerr)
	}
	r.log.Info("runtime auto: using qemu under TCG (software emulation)", slog.String("skipped", why+"; docker: "+err.Error()))
	return q, "qemu", nil
}

func (r *runtimes) docker() (*docker.Runtime, error) {
	return docker.New(docker.Config{AgentPath: r.agent, StateDir: filepath.Join(r.cfg.DataDir, "sandboxes"),
		Owner: r.workerID, Network: r.cfg.Docker.Network, PidsLimit: r.cfg.Docker.PidsLimit, Host: r.cfg.Docker.Host})
}

func (r *runtimes) qemu() (*qemu.Runtime, error) {
	c := qemu.Config{Binary: r.cfg.QEMU.Binary, Accel: r.cfg.QEMU.Accel, AgentChannel: r.cfg.QEMU.AgentChannel, StateDir: filepath.Join(r.cfg.DataDir, "vms"),
		Owner: r.workerID, Guests: r.guests, Logger: r.log}
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
	c := firecracker.Config{Binary: bin, Jailer: r.cfg.Firecracker.Jailer, UID: r.cfg.Firecracker.UID, GID: r.cfg.Firecracker.GID,
		StateDir: filepath.Join(r.cfg.DataDir, "firecracker"), Owner: r.workerID, Guests: r.guests, Logger: r.log}
	if r.net != nil {
		c.Network = r.net
	}
	return firecracker.New(c)
}

func networkConfig(cfg *config.Config) network.Config {
	return network.Config{Bridge: cfg.Network.Bridge, Subnet: netip.MustParsePrefix(cfg.Network.Subnet), NAT: cfg.Network.NAT,
		HostAccess: cfg.Network.HostAccess,
		DNS:        cfg.Network.DNS, TapOwner: tapOwner(cfg), TapPool: cfg.Network.TapPool,
		ClaimDir: filepath.Join(cfg.DataDir, "network", "claims")}
}

// tapOwner is the uid TAPs are made for: the configured one, else the uid a
// jailed Firecracker opens them as.
func tapOwner(cfg *config.Config) int {
	switch {
	case cfg.Network.TapOwner != 0:
		return cfg.Network.TapOwner
	case cfg.Firecracker.UID != 0:
		return cfg.Firecracker.UID
	case cfg.Runtime == "docker" || cfg.Runtime == "qemu":
		return 0
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
