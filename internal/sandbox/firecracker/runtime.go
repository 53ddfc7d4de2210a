package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	Vmlinux(g *image.Guest) (string, error)
	ProbeBoot() (*image.Guest, error)
}

// Config configures a Runtime.
type Config struct {
	// Binary is the firecracker executable; "" means found in PATH.
	Binary string
	// Jailer is the jailer executable. "" means the jailer beside Binary,
	// else in PATH; when there is none, New fails unless Unjailed.
	Jailer string
	// Unjailed runs Firecracker without the jailer: as aetherd's user, not
	// chrooted, with no cgroup limits of its own. Only an explicit true
	// does that (development hosts without a jailer); Jailer is ignored.
	Unjailed bool
	// UID is the base of the jails' uids: each jailed VMM runs as UID plus
	// its guest CID (3 and up, unique among this runtime's sandboxes), so no
	// two sandboxes share a uid. 0 means 100000.
	UID int
	// GID is every jail's group, through which jailed VMMs open their TAPs
	// (network.Config.TapGroup); 0 means 65534 (nogroup).
	GID int
	// StateDir holds one directory per sandbox (and the jails). Required.
	StateDir string
	// Owner marks sandboxes as this runtime instance's. Required.
	Owner string
	// Guests builds kernels, initramfs and root disks. Required.
	Guests Guests
	// Network gives each sandbox a NIC on a TAP; nil means no network.
	Network microvm.Network
	// Probes keeps the probe boot's verdict per host (see Probe); nil means
	// a cache file in StateDir.
	Probes *hostprobe.Cache
	// ProbeTimeout bounds the probe boot; 0 means 10s.
	ProbeTimeout time.Duration
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Runtime is a sandbox.Runtime on Firecracker microVMs: one Firecracker
// process per sandbox (jailed when the jailer is present), configured
// through its API socket, with the agent reached over hybrid vsock. The
// processes outlive aetherd. Its lifecycle methods (everything but Health
// and Probe) are microvm.Machine's, on the Firecracker specifics in vmm. It
// is safe for concurrent use.
type Runtime struct {
	*microvm.Machine
	cfg  Config
	log  *slog.Logger
	dirs *microvm.Dirs

	mu     sync.Mutex        // guards drains
	drains map[string]func() // sandbox ID → stops copying its log/metrics fifos
}

var (
	_ sandbox.Runtime        = (*Runtime)(nil)
	_ sandbox.Pauser         = (*Runtime)(nil)
	_ sandbox.ConsoleLogger  = (*Runtime)(nil)
	_ sandbox.ConsoleTrimmer = (*Runtime)(nil)
	_ sandbox.Committer      = (*Runtime)(nil)
	_ sandbox.ImageRemover   = (*Runtime)(nil)
)

// New returns a Runtime. It fails with ErrFailedPrecondition when the
// firecracker binary is missing.
func New(cfg Config) (*Runtime, error) {
	if cfg.StateDir == "" || cfg.Owner == "" || cfg.Guests == nil {
		return nil, errors.New("firecracker runtime: StateDir, Owner and Guests are required")
	}
	if cfg.Binary == "" {
		cfg.Binary = "firecracker"
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, errdefs.FailedPrecondition("firecracker runtime: %s not found (set firecracker.binary or FIRECRACKER_BIN)", cfg.Binary)
	}
	cfg.Binary = bin
	if cfg.Unjailed {
		cfg.Jailer = ""
	} else if cfg.Jailer, err = findJailer(cfg.Jailer, bin); err != nil {
		return nil, err
	}
	if cfg.Jailer != "" && !strings.Contains(filepath.Base(bin), "firecracker") {
		return nil, errdefs.InvalidArgument("firecracker runtime: the jailer only execs a binary whose name contains \"firecracker\", not %s", bin)
	}
	if cfg.UID == 0 {
		cfg.UID = 100000
	}
	if cfg.GID == 0 {
		cfg.GID = 65534
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dirs, err := microvm.NewDirs(cfg.StateDir, cfg.Owner)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = dirs.Root
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.Probes == nil {
		cfg.Probes = hostprobe.NewCache(filepath.Join(cfg.StateDir, "probes.json"))
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger.With("component", "firecracker"), drains: map[string]func(){}, dirs: dirs}
	// Hybrid vsock is a unix socket per VMM, so guest CIDs need not be
	// unique host-wide; each sandbox still gets its own.
	if r.Machine, err = microvm.New(microvm.Config{Name: "firecracker", Dirs: r.dirs, Guests: cfg.Guests, VMM: &vmm{r: r},
		Network: cfg.Network, Vsock: true}); err != nil {
		return nil, err
	}
	r.adopt()
	return r, nil
}

// findJailer resolves Config.Jailer: "" looks beside firecracker, then in
// PATH. No jailer is an error: running unjailed takes Config.Unjailed.
func findJailer(jailer, firecracker string) (string, error) {
	if jailer == "" {
		if p := filepath.Join(filepath.Dir(firecracker), "jailer"); isExecutable(p) {
			return p, nil
		}
		if p, err := exec.LookPath("jailer"); err == nil {
			return p, nil
		}
		return "", errdefs.FailedPrecondition("firecracker runtime: no jailer beside %s or in PATH; install it, or set firecracker.unjailed: true to run VMMs unconfined", firecracker)
	}
	p, err := exec.LookPath(jailer)
	if err != nil {
		return "", errdefs.FailedPrecondition("firecracker runtime: jailer %s not found", jailer)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// adopt resumes copying the fifos of microVMs that kept running while
// aetherd was down.
func (r *Runtime) adopt() {
	entries, _ := os.ReadDir(r.cfg.StateDir)
	for _, e := range entries {
		if m, err := r.dirs.Read(e.Name()); err == nil && r.dirs.PID(m.ID) != 0 {
			r.startDrains(m)
		}
	}
}

// jail describes the sandbox's jail; it is meaningful when m.Jailed.
func (r *Runtime) jail(m *microvm.Meta) *JailerConfig {
	v := hostCgroupVersion()
	return &JailerConfig{Binary: r.cfg.Jailer, FirecrackerBinary: r.cfg.Binary, ID: m.ID, UID: r.jailUID(m), GID: r.cfg.GID,
		ChrootBase: filepath.Join(r.cfg.StateDir, "jail"), CgroupVersion: v, Cgroups: jailCgroups(v, m)}
}

// jailUID is the uid of a sandbox's jailed VMM: the base plus its CID.
func (r *Runtime) jailUID(m *microvm.Meta) int { return r.cfg.UID + int(m.CID) }

// vmmOverheadMB is what a Firecracker process needs beyond its guest's
// memory (its own heap, device emulation), inside the jail's memory limit.
const vmmOverheadMB = 128

// jailCgroups bounds a jail to its sandbox's vCPUs and memory (plus the
// VMM's own overhead), on either cgroup version.
func jailCgroups(version string, m *microvm.Meta) []string {
	vcpus, mem := max(m.VCPUs, 1), (max(m.MemoryMB, 128)+vmmOverheadMB)<<20
	if version == "1" {
		return []string{fmt.Sprintf("memory.limit_in_bytes=%d", mem), "cpu.cfs_period_us=100000",
			fmt.Sprintf("cpu.cfs_quota_us=%d", vcpus*100000)}
	}
	return []string{fmt.Sprintf("memory.max=%d", mem), fmt.Sprintf("cpu.max=%d 100000", vcpus*100000)}
}

// hostCgroupVersion is "2" on a unified hierarchy, else "1".
func hostCgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "2"
	}
	return "1"
}

// root is the directory the VMM sees files in: the jail's chroot, or the
// sandbox's own directory (Firecracker then runs with it as working
// directory, so both cases use short relative paths and no socket path
// outgrows the 108-byte limit).
func (r *Runtime) root(m *microvm.Meta) string {
	if m.Jailed {
		return r.jail(m).ChrootDir()
	}
	return filepath.Join(r.dirs.Dir(m.ID), "root")
}

// vmmPath is name as the VMM opens it.
func vmmPath(m *microvm.Meta, name string) string {
	if m.Jailed {
		return "/" + name
	}
	return name
}

// Health implements sandbox.Runtime.
func (r *Runtime) Health(ctx context.Context) error {
	if _, err := os.Stat(r.cfg.Binary); err != nil {
		return errdefs.Unavailable("firecracker: %v", err)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return errdefs.Unavailable("firecracker: /dev/kvm: %v", err)
	}
	return f.Close()
}

func (r *Runtime) client(m *microvm.Meta) *Client {
	return NewClient(filepath.Join(r.root(m), "api.sock"))
}

// probeName names the probe boot's verdicts in Config.Probes.
const probeName = "firecracker-kvm"

// probeKey is what the probe's verdict depends on: the host kernel, this
// firecracker binary and the /dev/kvm device.
func (r *Runtime) probeKey() string {
	return hostprobe.Key(hostprobe.Kernel(), hostprobe.File(r.cfg.Binary), hostprobe.Device("/dev/kvm"))
}

// ProbeVerdict returns what is known about booting Firecracker guests here
// without probing; ok is false until a probe of this host has finished.
func (r *Runtime) ProbeVerdict() (v hostprobe.Verdict, ok bool) {
	return r.cfg.Probes.Get(probeName, r.probeKey())
}

// Probe reports whether a guest boots in Firecracker here: nil, or an
// ErrUnavailable saying why not. It boots the probe guest once per host
// (bounded by Config.ProbeTimeout) and then answers from Config.Probes.
// When ctx ends first, its error is returned and nothing is known.
func (r *Runtime) Probe(ctx context.Context) error {
	v, err := r.cfg.Probes.Run(ctx, probeName, r.probeKey(), r.cfg.ProbeTimeout, r.bootProbe)
	if err != nil {
		return err
	}
	if !v.OK {
		return errdefs.Unavailable("firecracker: a probe guest did not boot: %s", v.Why)
	}
	return nil
}

// bootProbe boots the probe guest (see image.GuestBuilder.ProbeBoot) in a
// throwaway Firecracker without API socket and waits for its marker until
// ctx ends: only a boot proves that KVM works here (a PVM-only /dev/kvm
// exists but cannot run a stock kernel).
func (r *Runtime) bootProbe(ctx context.Context) error {
	if err := r.Health(ctx); err != nil {
		return err
	}
	probe, err := r.cfg.Guests.ProbeBoot()
	if err != nil {
		return err
	}
	vmlinux, err := r.cfg.Guests.Vmlinux(probe)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(r.cfg.StateDir, ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg, _ := json.Marshal(map[string]any{
		"boot-source":    &BootSource{KernelImagePath: vmlinux, InitrdPath: probe.Initrd, BootArgs: "console=ttyS0 reboot=k panic=1 pci=off aether.probe=1"},
		"machine-config": &MachineConfig{VCPUCount: 1, MemSizeMiB: 256},
	})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, r.cfg.Binary, "--no-api", "--config-file", filepath.Join(dir, "config.json"))
	cmd.WaitDelay = time.Second
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for !strings.Contains(out.String(), "AETHER-PROBE-OK") {
		select {
		case <-ctx.Done():
		case <-exited:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	cmd.Process.Kill()
	<-exited
	if strings.Contains(out.String(), "AETHER-PROBE-OK") {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New(microvm.LastLine(out.String()))
}

// syncBuffer is a strings.Builder a process may write while it is read.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
