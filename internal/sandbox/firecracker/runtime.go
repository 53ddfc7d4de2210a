package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/hostprobe"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// Guests makes bootable guests from image references (*image.GuestBuilder).
type Guests interface {
	Build(ctx context.Context, ref string) (*image.Guest, error)
	Vmlinux(g *image.Guest) (string, error)
	ProbeBoot() (*image.Guest, error)
	Commit(ref string, from *image.Guest, rootfs string) (*image.Guest, error)
	Remove(ref string) error
	Collect(inUse func(dir string) bool)
}

// Config configures a Runtime.
type Config struct {
	// Binary is the firecracker executable; "" means found in PATH.
	Binary string
	// Jailer is the jailer executable. "" means the jailer beside Binary or
	// in PATH when there is one (jailing is on by default), "none" disables.
	Jailer string
	// UID and GID the jailed VMM runs as; 0 means 65534 (nobody/nogroup).
	UID, GID int
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
// processes outlive aetherd. It is safe for concurrent use.
type Runtime struct {
	cfg  Config
	log  *slog.Logger
	dirs *microvm.Dirs

	mu     sync.Mutex        // guards CID allocation and drains
	drains map[string]func() // sandbox ID → stops copying its log/metrics fifos
}

var (
	_ sandbox.Runtime       = (*Runtime)(nil)
	_ sandbox.Pauser        = (*Runtime)(nil)
	_ sandbox.ConsoleLogger = (*Runtime)(nil)
	_ sandbox.Committer     = (*Runtime)(nil)
	_ sandbox.ImageRemover  = (*Runtime)(nil)
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
	if cfg.Jailer, err = findJailer(cfg.Jailer, bin); err != nil {
		return nil, err
	}
	if cfg.Jailer != "" && !strings.Contains(filepath.Base(bin), "firecracker") {
		return nil, errdefs.InvalidArgument("firecracker runtime: the jailer only execs a binary whose name contains \"firecracker\", not %s", bin)
	}
	if cfg.UID == 0 {
		cfg.UID = 65534
	}
	if cfg.GID == 0 {
		cfg.GID = 65534
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.Probes == nil {
		cfg.Probes = hostprobe.NewCache(filepath.Join(cfg.StateDir, "probes.json"))
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger.With("component", "firecracker"), drains: map[string]func(){},
		dirs: &microvm.Dirs{Root: cfg.StateDir, Owner: cfg.Owner}}
	r.adopt()
	return r, nil
}

// findJailer resolves Config.Jailer: "" looks beside firecracker, then in
// PATH, and runs unjailed when there is none.
func findJailer(jailer, firecracker string) (string, error) {
	switch jailer {
	case "none":
		return "", nil
	case "":
		if p := filepath.Join(filepath.Dir(firecracker), "jailer"); isExecutable(p) {
			return p, nil
		}
		p, _ := exec.LookPath("jailer")
		return p, nil
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
		if m, err := r.readMeta(e.Name()); err == nil && r.dirs.PID(m.ID) != 0 {
			r.startDrains(m)
		}
	}
}

// meta is what restarts, List and Dial need to know about a sandbox.
type meta struct {
	microvm.Base
	Jailed bool `json:"jailed"`
}

func (r *Runtime) dir(id string) string { return r.dirs.Dir(id) }

func (r *Runtime) readMeta(id string) (*meta, error) {
	var m meta
	return &m, r.dirs.Read(id, &m)
}

// Create implements sandbox.Runtime.
func (r *Runtime) Create(ctx context.Context, spec *sandbox.Spec) (*sandbox.Info, error) {
	base, err := microvm.NewBase(spec, r.cfg.Owner, r.cfg.Network != nil)
	if err != nil {
		return nil, err
	}
	if r.dirs.Exists(spec.ID) {
		if err := r.Start(ctx, spec.ID); err != nil { // an earlier attempt made it
			return nil, err
		}
		return r.Inspect(ctx, spec.ID)
	}
	guest, err := r.cfg.Guests.Build(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	vmlinux, err := r.cfg.Guests.Vmlinux(guest)
	if err != nil {
		return nil, err
	}
	m := &meta{Base: *base, Jailed: r.cfg.Jailer != ""}
	m.SetGuest(guest)
	if err := r.prepare(ctx, m, guest, vmlinux); err != nil {
		r.removeFiles(m)
		return nil, err
	}
	if err := r.launch(ctx, m); err != nil {
		return nil, err
	}
	return r.Inspect(ctx, spec.ID)
}

// prepare lays out the sandbox: its root (the jail's chroot, or a plain
// directory) holds the kernel, initramfs and a copy-on-write clone of the
// template rootfs; meta.json, written last under the CID lock, makes it exist.
func (r *Runtime) prepare(ctx context.Context, m *meta, guest *image.Guest, vmlinux string) error {
	root := r.root(m)
	for _, d := range []string{r.dir(m.ID), root} { // the jail's root is elsewhere
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := image.LinkOrCopy(vmlinux, filepath.Join(root, "vmlinux")); err != nil {
		return err
	}
	if err := image.LinkOrCopy(guest.Initrd, filepath.Join(root, "initrd.gz")); err != nil {
		return err
	}
	disk := filepath.Join(root, "rootfs.ext4")
	if err := image.CloneDisk(ctx, guest.Rootfs, disk); err != nil {
		return err
	}
	if m.Jailed {
		if err := os.Chown(disk, r.cfg.UID, r.cfg.GID); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.CID = r.freeCID()
	return r.dirs.Write(m)
}

// freeCID is the lowest guest CID no sandbox of this runtime has (0-2 are
// reserved). The seed gave every VM CID 3; with vhost-vsock that collides.
// Callers hold r.mu.
func (r *Runtime) freeCID() uint32 {
	used := r.dirs.UsedCIDs("")
	cid := uint32(3)
	for used[cid] {
		cid++
	}
	return cid
}

// jail describes the sandbox's jail; it is meaningful when m.Jailed.
func (r *Runtime) jail(m *meta) *JailerConfig {
	return &JailerConfig{Binary: r.cfg.Jailer, FirecrackerBinary: r.cfg.Binary, ID: m.ID, UID: r.cfg.UID, GID: r.cfg.GID,
		ChrootBase: filepath.Join(r.cfg.StateDir, "jail"), CgroupVersion: hostCgroupVersion()}
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
func (r *Runtime) root(m *meta) string {
	if m.Jailed {
		return r.jail(m).ChrootDir()
	}
	return filepath.Join(r.dir(m.ID), "root")
}

// vmmPath is name as the VMM opens it.
func vmmPath(m *meta, name string) string {
	if m.Jailed {
		return "/" + name
	}
	return name
}

// Start implements sandbox.Runtime: a stopped sandbox boots again from its
// disk in a new Firecracker process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	m, err := r.readMeta(id)
	if err != nil {
		return err
	}
	if r.pid(m) != 0 {
		return nil
	}
	return r.launch(ctx, m)
}

// pid returns the sandbox's Firecracker process, or 0 when none runs.
func (r *Runtime) pid(m *meta) int { return r.dirs.PID(m.ID) }

// Stop implements sandbox.Runtime: Firecracker is ended; the disk stays.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	m, err := r.readMeta(id)
	if err != nil {
		return err
	}
	defer r.stopDrains(id)
	pid := r.pid(m)
	if pid == 0 {
		return nil
	}
	// No guest shutdown to wait for: the agent, as init, syncs every second,
	// and Firecracker has no ACPI power button anyway.
	syscall.Kill(pid, syscall.SIGKILL)
	return r.dirs.WaitExit(ctx, id)
}

// Delete implements sandbox.Runtime.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	m, err := r.readMeta(id)
	if err != nil {
		return nil // already gone
	}
	if err := r.Stop(ctx, id); err != nil {
		return err
	}
	if err := microvm.Detach(ctx, r.cfg.Network, m); err != nil {
		return err
	}
	return r.removeFiles(m)
}

// removeFiles deletes the jail (and its cgroup) and the sandbox directory.
func (r *Runtime) removeFiles(m *meta) error {
	if m.Jailed {
		os.RemoveAll(filepath.Dir(r.jail(m).ChrootDir()))
		// The jailer's cgroups: <base>/<binary name>/<id>, per controller on v1.
		name := filepath.Base(r.cfg.Binary)
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name, m.ID))
		for _, d := range append(dirs, filepath.Join("/sys/fs/cgroup", name, m.ID)) {
			os.Remove(d)
		}
	}
	return os.RemoveAll(r.dir(m.ID))
}

// Inspect implements sandbox.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (*sandbox.Info, error) {
	m, err := r.readMeta(id)
	if err != nil {
		return nil, err
	}
	state := sandbox.StateStopped
	pid := r.pid(m)
	if pid != 0 {
		state = sandbox.StateRunning
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if info, err := r.client(m).Describe(ictx); err == nil && info.State == "Paused" {
			state = sandbox.StatePaused
		}
		cancel()
	}
	return &sandbox.Info{ID: id, RuntimeID: "firecracker:" + strconv.Itoa(pid), State: state, Image: m.Image, CreatedAt: m.Created,
		Address: m.Address}, nil
}

// List implements sandbox.Runtime.
func (r *Runtime) List(ctx context.Context) ([]*sandbox.Info, error) {
	return r.dirs.List(ctx, r.Inspect)
}

// Dial implements sandbox.Runtime: one hybrid-vsock handshake to the agent's
// port, failing fast while the guest is still booting (Connect retries).
func (r *Runtime) Dial(ctx context.Context, id string) (net.Conn, error) {
	m, err := r.readMeta(id)
	if err != nil {
		return nil, err
	}
	conn, err := hybridOnce(ctx, filepath.Join(r.root(m), "v.sock"), AgentPort)
	if err != nil {
		return nil, errdefs.Unavailable("agent of sandbox %s not reachable: %v", id, err)
	}
	return conn, nil
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

// Commit implements sandbox.Committer: a sparse copy of the sandbox's root
// disk, taken with the vCPUs paused, becomes the guest image ref.
func (r *Runtime) Commit(ctx context.Context, id, ref string) (string, error) {
	m, err := r.readMeta(id)
	if err != nil {
		return "", err
	}
	info, err := r.Inspect(ctx, id)
	if err != nil {
		return "", err
	}
	if info.State == sandbox.StateRunning {
		if err := r.client(m).SetState(ctx, StatePaused); err != nil {
			return "", err
		}
		defer r.client(m).SetState(context.WithoutCancel(ctx), StateResumed)
	}
	flat := filepath.Join(r.dir(id), "commit.ext4")
	if err := image.CloneDisk(ctx, filepath.Join(r.root(m), "rootfs.ext4"), flat); err != nil {
		return "", err
	}
	guest, err := r.cfg.Guests.Commit(ref, m.Guest(), flat)
	if err != nil {
		os.Remove(flat)
		return "", err
	}
	return guest.Dir, nil
}

// RemoveImage implements sandbox.ImageRemover for committed guests. A
// sandbox's disk is its own copy and its kernel a hard link, so nothing
// keeps a removed guest's files.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	if err := r.cfg.Guests.Remove(ref); err != nil {
		return err
	}
	r.cfg.Guests.Collect(func(string) bool { return false })
	return nil
}

// Pause implements sandbox.Pauser: the vCPUs stop; memory is kept.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.setState(ctx, id, StatePaused)
}

// Resume implements sandbox.Pauser.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.setState(ctx, id, StateResumed)
}

func (r *Runtime) setState(ctx context.Context, id, state string) error {
	m, err := r.readMeta(id)
	if err != nil {
		return err
	}
	if r.pid(m) == 0 {
		return errdefs.FailedPrecondition("sandbox %s is not running", id)
	}
	return r.client(m).SetState(ctx, state)
}

// ConsoleLog implements sandbox.ConsoleLogger: the guest's serial console
// is Firecracker's standard output.
func (r *Runtime) ConsoleLog(ctx context.Context, id string, maxBytes int) ([]byte, error) {
	if _, err := r.readMeta(id); err != nil {
		return nil, err
	}
	return r.dirs.Console(id, maxBytes)
}

func (r *Runtime) client(m *meta) *Client {
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
