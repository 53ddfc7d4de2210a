// Package qemu is the sandbox.Runtime on QEMU microVMs: one daemonized QEMU
// process per sandbox (the microvm machine with KVM, q35 under TCG; see
// machineFor) booting the guest that package image builds (Debian kernel,
// initramfs, ext4 root with aether-agent as PID 1).
// The agent is reached over vhost-vsock where the host has it, else over a
// virtio-serial port backed by a unix socket in the sandbox's directory, so
// no guest networking is needed. The lifecycle is microvm.Machine's, which
// the Firecracker runtime shares; QEMU's part is its microvm.VMM (vmm.go).
//
// KVM is used when it really works here, found by booting a probe guest with
// accel=kvm (a /dev/kvm that exists but cannot run a stock kernel, as on
// PVM-only hosts, hangs it); otherwise TCG (software emulation).
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// Guests makes bootable guests from image references (*image.GuestBuilder).
type Guests interface {
	microvm.Guests
	ProbeBoot() (*image.Guest, error)
}

// Config configures a Runtime.
type Config struct {
	// Binary is qemu-system-x86_64; "" means found in PATH.
	Binary string
	// StateDir holds one directory per sandbox. Required.
	StateDir string
	// Owner marks sandboxes as this runtime instance's. Required.
	Owner string
	// Guests builds the kernel, initramfs and root disk. Required.
	Guests Guests
	// Network gives each sandbox a NIC on a TAP; nil means no network.
	Network microvm.Network
	// Accel is auto (probe KVM by booting, else TCG), kvm or tcg; "" means auto.
	Accel string
	// AgentChannel is how the host reaches the agent: vsock (vhost-vsock, a
	// host-wide unique guest CID per sandbox), serial (a virtio-serial port
	// on a unix socket) or auto (vsock when /dev/vhost-vsock opens); ""
	// means auto.
	AgentChannel string
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// agentPort is the vsock port aether-agent listens on in the guest.
const agentPort = 1024

// stopGrace is how long QEMU may take to end after SIGTERM before Stop
// kills it.
const stopGrace = 5 * time.Second

// Runtime is a sandbox.Runtime on QEMU microVMs. Its lifecycle methods
// (everything but Health and Accel) are microvm.Machine's, on the QEMU
// specifics in vmm. It is safe for concurrent use.
type Runtime struct {
	*microvm.Machine
	cfg  Config
	log  *slog.Logger
	dirs *microvm.Dirs

	accelOnce sync.Once
	accel     string
}

var (
	_ sandbox.Runtime       = (*Runtime)(nil)
	_ sandbox.ConsoleLogger = (*Runtime)(nil)
	_ sandbox.Pauser        = (*Runtime)(nil)
	_ sandbox.Committer     = (*Runtime)(nil)
	_ sandbox.ImageRemover  = (*Runtime)(nil)
)

// New returns a Runtime. It fails with ErrFailedPrecondition when the QEMU
// binary is missing, and names the field of an invalid Config.
func New(cfg Config) (*Runtime, error) {
	if cfg.Binary == "" {
		cfg.Binary = "qemu-system-x86_64"
	}
	if cfg.Accel == "" {
		cfg.Accel = "auto"
	}
	switch cfg.AgentChannel {
	case "", "auto":
		cfg.AgentChannel = "serial"
		if f, err := os.OpenFile("/dev/vhost-vsock", os.O_RDWR, 0); err == nil {
			f.Close()
			cfg.AgentChannel = "vsock"
		}
	case "vsock", "serial":
	default:
		return nil, fmt.Errorf("qemu runtime: AgentChannel must be auto, vsock or serial, not %q", cfg.AgentChannel)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.StateDir == "" || cfg.Owner == "" || cfg.Guests == nil:
		return nil, errors.New("qemu runtime: StateDir, Owner and Guests are required")
	case cfg.Accel != "auto" && cfg.Accel != "kvm" && cfg.Accel != "tcg":
		return nil, fmt.Errorf("qemu runtime: Accel must be auto, kvm or tcg, not %q", cfg.Accel)
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, errdefs.FailedPrecondition("qemu runtime: %s not found (apt-get install qemu-system-x86)", cfg.Binary)
	}
	cfg.Binary = bin
	dirs, err := microvm.NewDirs(cfg.StateDir, cfg.Owner)
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger.With("component", "qemu"), dirs: dirs}
	if r.Machine, err = microvm.New(microvm.Config{Name: "qemu", Dirs: r.dirs, Guests: cfg.Guests, VMM: &vmm{r: r},
		Network: cfg.Network, Vsock: cfg.AgentChannel == "vsock", StopGrace: stopGrace}); err != nil {
		return nil, err
	}
	return r, nil
}

// Accel returns kvm or tcg: the configured one, or under auto whether a
// probe guest boots with KVM, found out once and logged.
func (r *Runtime) Accel(ctx context.Context) string {
	if r.cfg.Accel != "auto" {
		return r.cfg.Accel
	}
	r.accelOnce.Do(func() {
		r.accel = "tcg"
		if ok, why := r.probeKVM(ctx); ok {
			r.accel = "kvm"
			r.log.Info("qemu: KVM works here; microVMs run with hardware virtualization")
		} else {
			r.log.Info("qemu: using TCG (software emulation)", slog.String("why", why))
		}
	})
	return r.accel
}

// probeKVM boots the probe guest with accel=kvm. Only a boot proves KVM: a
// /dev/kvm that cannot run a stock kernel hangs instead.
func (r *Runtime) probeKVM(ctx context.Context) (bool, string) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return false, "no /dev/kvm"
	}
	probe, err := r.cfg.Guests.ProbeBoot()
	if err != nil {
		return false, "no probe guest: " + err.Error()
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(pctx, r.cfg.Binary, "-M", "microvm,accel=kvm", "-cpu", "host", "-m", "256",
		"-nodefaults", "-no-user-config", "-nographic", "-display", "none", "-no-reboot",
		"-kernel", probe.Kernel, "-initrd", probe.Initrd, "-append", "console=ttyS0 quiet panic=-1 aether.probe=1",
		"-serial", "stdio").CombinedOutput()
	if strings.Contains(string(out), "AETHER-PROBE-OK") {
		return true, ""
	}
	if pctx.Err() != nil {
		return false, "a KVM guest did not boot within 20s (/dev/kvm exists but cannot run this kernel)"
	}
	return false, "KVM guest failed: " + microvm.LastLine(string(out))
}

// Health implements sandbox.Runtime.
func (r *Runtime) Health(ctx context.Context) error {
	if _, err := os.Stat(r.cfg.Binary); err != nil {
		return errdefs.Unavailable("qemu: %v", err)
	}
	return nil
}
