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
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/hostprobe"
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
	// Probes keeps the KVM probe's verdict per host, so auto probes once per
	// host, not per start; nil means a cache file in StateDir.
	Probes *hostprobe.Cache
	// ProbeTimeout bounds the KVM probe boot (a working KVM boots it in
	// about a second); 0 means 10s.
	ProbeTimeout time.Duration
	// AgentChannel is how the host reaches the agent: vsock (vhost-vsock, a
	// host-wide unique guest CID per sandbox), serial (a virtio-serial port
	// on a unix socket) or auto (vsock when /dev/vhost-vsock opens); ""
	// means auto.
	AgentChannel string
	// UID and GID are what QEMU drops to once the machine is set up (TAP,
	// disk, sockets and console open): `-runas uid:gid`. 0 means 65534; -1
	// keeps root (only for measuring what the drop costs). Give QEMU a uid
	// nothing else on the host uses.
	UID, GID int
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

	logged atomic.Bool // the KVM verdict was logged
}

var (
	_ sandbox.Runtime        = (*Runtime)(nil)
	_ sandbox.ConsoleLogger  = (*Runtime)(nil)
	_ sandbox.ConsoleTrimmer = (*Runtime)(nil)
	_ sandbox.Pauser         = (*Runtime)(nil)
	_ sandbox.Committer      = (*Runtime)(nil)
	_ sandbox.ImageRemover   = (*Runtime)(nil)
)

// New returns a Runtime. It fails with ErrFailedPrecondition when the QEMU
// binary is missing, and names the field of an invalid Config.
func New(cfg Config) (*Runtime, error) {
	if cfg.Binary == "" {
		cfg.Binary = "qemu-system-x86_64"
	}
	if cfg.UID == 0 {
		cfg.UID = 65534
	}
	if cfg.GID == 0 {
		cfg.GID = 65534
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
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.Probes == nil {
		cfg.Probes = hostprobe.NewCache(filepath.Join(cfg.StateDir, "probes.json"))
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
// probe guest boots with KVM (see ProbeKVM). Under auto the first call may
// wait for the probe, up to Config.ProbeTimeout; later ones do not.
func (r *Runtime) Accel(ctx context.Context) string {
	if r.cfg.Accel != "auto" {
		return r.cfg.Accel
	}
	if v, err := r.ProbeKVM(ctx); err == nil && v.OK {
		return "kvm"
	}
	return "tcg"
}

// kvmProbe names the KVM probe's verdicts in Config.Probes.
const kvmProbe = "qemu-kvm"

// kvmKey is what the KVM verdict depends on: the host kernel, this QEMU
// binary and the /dev/kvm device.
func (r *Runtime) kvmKey() string {
	return hostprobe.Key(hostprobe.Kernel(), hostprobe.File(r.cfg.Binary), hostprobe.Device("/dev/kvm"))
}

// KVMVerdict returns what is known about KVM here without probing; ok is
// false until a probe of this host has finished.
func (r *Runtime) KVMVerdict() (v hostprobe.Verdict, ok bool) {
	return r.cfg.Probes.Get(kvmProbe, r.kvmKey())
}

// ProbeKVM returns whether a guest boots with KVM here, probing (a boot of
// the probe guest, bounded by Config.ProbeTimeout) once per host and logging
// the verdict. The error is ctx's when it ended first; then nothing is known.
func (r *Runtime) ProbeKVM(ctx context.Context) (hostprobe.Verdict, error) {
	v, err := r.cfg.Probes.Run(ctx, kvmProbe, r.kvmKey(), r.cfg.ProbeTimeout, r.bootKVM)
	if err == nil && r.logged.CompareAndSwap(false, true) {
		if v.OK {
			r.log.Info("qemu: KVM works here; microVMs run with hardware virtualization")
		} else {
			r.log.Info("qemu: no working KVM; microVMs run under TCG (software emulation)", slog.String("why", v.Why))
		}
	}
	return v, err
}

// bootKVM boots the probe guest with accel=kvm. Only a boot proves KVM: a
// /dev/kvm that cannot run a stock kernel (PVM-only hosts) either fails at
// once or hangs until ctx ends.
func (r *Runtime) bootKVM(ctx context.Context) error {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return errors.New("no /dev/kvm")
	}
	probe, err := r.cfg.Guests.ProbeBoot()
	if err != nil {
		return fmt.Errorf("no probe guest: %w", err)
	}
	cmd := exec.CommandContext(ctx, r.cfg.Binary, "-M", "microvm,accel=kvm", "-cpu", "host", "-m", "256",
		"-nodefaults", "-no-user-config", "-nographic", "-display", "none", "-no-reboot",
		"-kernel", probe.Kernel, "-initrd", probe.Initrd, "-append", "console=ttyS0 quiet panic=-1 aether.probe=1",
		"-serial", "stdio")
	cmd.WaitDelay = time.Second // a child holding the pipe must not outlive ctx
	out, _ := cmd.CombinedOutput()
	switch {
	case strings.Contains(string(out), "AETHER-PROBE-OK"):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("KVM guest failed: %s", microvm.LastLine(string(out)))
}

// Health implements sandbox.Runtime.
func (r *Runtime) Health(ctx context.Context) error {
	if _, err := os.Stat(r.cfg.Binary); err != nil {
		return errdefs.Unavailable("qemu: %v", err)
	}
	return nil
}
