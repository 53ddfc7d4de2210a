// Package qemu is the sandbox.Runtime on QEMU microVMs: one daemonized QEMU
// process per sandbox (the microvm machine with KVM, q35 under TCG; see
// machineFor) booting the guest that package image builds (Debian kernel,
// initramfs, ext4 root with aether-agent as PID 1).
// The agent is reached over a virtio-serial port backed by a unix socket in
// the sandbox's directory, so no guest networking is needed.
//
// KVM is used when it really works here, found by booting a probe guest with
// accel=kvm (a /dev/kvm that exists but cannot run a stock kernel, as on
// PVM-only hosts, hangs it); otherwise TCG (software emulation).
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/mdlayher/vsock"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/hostprobe"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// Guests makes bootable guests from image references (*image.GuestBuilder).
type Guests interface {
	Build(ctx context.Context, ref string) (*image.Guest, error)
	ProbeBoot() (*image.Guest, error)
	Commit(ref string, from *image.Guest, rootfs string) (*image.Guest, error)
	Remove(ref string) error
	Collect(inUse func(dir string) bool)
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
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// agentPort is the vsock port aether-agent listens on in the guest.
const agentPort = 1024

// Runtime is a sandbox.Runtime on QEMU microVMs. It is safe for concurrent use.
type Runtime struct {
	cfg  Config
	log  *slog.Logger
	dirs *microvm.Dirs

	logged atomic.Bool // the KVM verdict was logged

	cidMu sync.Mutex // serializes CID choice and the launch that claims it
}

var (
	_ sandbox.Runtime       = (*Runtime)(nil)
	_ sandbox.ConsoleLogger = (*Runtime)(nil)
	_ sandbox.Pauser        = (*Runtime)(nil)
	_ sandbox.Committer     = (*Runtime)(nil)
	_ sandbox.ImageRemover  = (*Runtime)(nil)
)

// New returns a Runtime.
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
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, err
	}
	return &Runtime{cfg: cfg, log: cfg.Logger.With("component", "qemu"), dirs: &microvm.Dirs{Root: cfg.StateDir, Owner: cfg.Owner}}, nil
}

// meta is what restarts, List and Dial need to know about a sandbox.
type meta struct {
	microvm.Base
	// Rootfs backs the sandbox's qcow2 disk.
	Rootfs string `json:"rootfs"`
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
		return r.startAndInspect(ctx, spec.ID) // an earlier attempt made it
	}
	guest, err := r.cfg.Guests.Build(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	m := &meta{Base: *base, Rootfs: guest.Rootfs}
	m.SetGuest(guest)
	if r.cfg.AgentChannel == "vsock" {
		m.CID = 3 // launch finds a free one
	}
	dir := r.dir(spec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Copy-on-write: the per-sandbox disk is a qcow2 overlay on the
	// template rootfs, so creating one copies nothing.
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", guest.Rootfs,
		filepath.Join(dir, "disk.qcow2")).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("qemu-img: %v: %s", err, out)
	}
	if err := r.dirs.Write(m); err != nil {
		return nil, err
	}
	if err := r.launch(ctx, m); err != nil {
		return nil, err
	}
	return r.Inspect(ctx, spec.ID)
}

func (r *Runtime) startAndInspect(ctx context.Context, id string) (*sandbox.Info, error) {
	if err := r.Start(ctx, id); err != nil {
		return nil, err
	}
	return r.Inspect(ctx, id)
}

// launch starts QEMU for the sandbox, daemonized so it outlives aetherd.
func (r *Runtime) launch(ctx context.Context, m *meta) error {
	dir := r.dir(m.ID)
	os.Remove(filepath.Join(dir, "agent.sock"))
	accel := r.Accel(ctx)
	ep, err := microvm.Attach(ctx, r.cfg.Network, m)
	if err != nil {
		return err
	}
	args := func() []string {
		a := r.args(m, dir, accel)
		if ep != nil {
			_, bus := machineFor(accel)
			a = withNIC(a, ep, bus)
		}
		return a
	}
	if m.CID == 0 {
		if err := r.dirs.Write(m); err != nil {
			return err
		}
		return r.run(ctx, args())
	}
	return r.launchVsock(ctx, m, args)
}

func (r *Runtime) run(ctx context.Context, args []string) error {
	if out, err := exec.CommandContext(ctx, r.cfg.Binary, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// launchVsock starts QEMU with a vhost-vsock device. Guest CIDs are unique
// host-wide, and other VMMs on the host take them too, so a CID the kernel
// refuses is skipped for the next free one.
func (r *Runtime) launchVsock(ctx context.Context, m *meta, args func() []string) error {
	r.cidMu.Lock()
	defer r.cidMu.Unlock()
	used := r.dirs.UsedCIDs(m.ID)
	for tries := 0; tries < 64; tries++ {
		for used[m.CID] {
			m.CID++
		}
		if err := r.dirs.Write(m); err != nil {
			return err
		}
		err := r.run(ctx, args())
		if err == nil || !strings.Contains(err.Error(), "guest cid") {
			return err
		}
		used[m.CID] = true
	}
	return errdefs.Unavailable("qemu: no free vsock guest CID")
}

// withNIC adds a virtio-net device on the endpoint's TAP and the guest's
// address to the kernel command line.
func withNIC(args []string, ep *network.Endpoint, bus string) []string {
	for i, a := range args {
		if strings.HasPrefix(a, "console=") {
			args[i] = a + " " + ep.KernelArgs()
		}
	}
	return append(args,
		"-netdev", "tap,id=net0,ifname="+ep.Tap+",script=no,downscript=no",
		"-device", "virtio-net-"+bus+",netdev=net0,mac="+ep.MAC.String())
}

func (r *Runtime) args(m *meta, dir, accel string) []string {
	host := (&sandbox.Spec{ID: m.ID, Name: m.Name}).Hostname()
	machine, bus := machineFor(accel)
	listen, channel := "serial:aether", []string{
		"-chardev", "socket,id=agent,path=" + filepath.Join(dir, "agent.sock") + ",server=on,wait=off",
		"-device", "virtio-serial-" + bus, "-device", "virtserialport,chardev=agent,name=aether"}
	if m.CID != 0 {
		listen, channel = fmt.Sprintf("vsock:%d", agentPort), []string{"-device", fmt.Sprintf("vhost-vsock-%s,guest-cid=%d", bus, m.CID)}
	}
	return append([]string{
		"-M", machine + ",accel=" + accel, "-cpu", cpuFor(accel), "-m", strconv.Itoa(m.MemoryMB), "-smp", strconv.Itoa(m.VCPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-display", "none",
		"-kernel", m.Kernel, "-initrd", m.Initrd,
		// No "quiet": the console log is how a failed boot is debugged.
		"-append", "console=ttyS0 panic=-1 aether.listen=" + listen + " aether.hostname=" + host,
		"-no-reboot",
		"-serial", "file:" + filepath.Join(dir, "console.log"),
		"-drive", "id=root,file=" + filepath.Join(dir, "disk.qcow2") + ",format=qcow2,if=none,cache=unsafe",
		"-device", "virtio-blk-" + bus + ",drive=root",
		// Entropy from the host: without it the guest's CRNG (and anything
		// reading it, the agent included) can wait long under emulation.
		"-object", "rng-random,id=rng,filename=/dev/urandom", "-device", "virtio-rng-" + bus + ",rng=rng",
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off",
		"-daemonize", "-pidfile", filepath.Join(dir, "pid"),
	}, channel...)
}

// machineFor picks the machine type and its virtio bus. With KVM, microvm:
// no firmware, no PCI, the fastest boot. Under TCG, q35: on a loaded host
// the guest kernel cannot calibrate its TSC, and microvm offers no other
// clock reference (no HPET, no PM timer), so boots stalled with time standing
// still; q35's HPET keeps them going (6 of 6 concurrent TCG boots here, 0 of
// 6 with microvm).
func machineFor(accel string) (machine, bus string) {
	if accel == "kvm" {
		return "microvm", "device"
	}
	return "q35", "pci"
}

func cpuFor(accel string) string {
	if accel == "kvm" {
		return "host"
	}
	return "max"
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

// pid returns the QEMU process of a sandbox, or 0 when none runs.
func (r *Runtime) pid(id string) int { return r.dirs.PID(id) }

// Start implements sandbox.Runtime.
func (r *Runtime) Start(ctx context.Context, id string) error {
	m, err := r.readMeta(id)
	if err != nil {
		return err
	}
	if r.pid(id) != 0 {
		return nil
	}
	return r.launch(ctx, m)
}

// Stop implements sandbox.Runtime: QEMU is ended; the disk stays.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	if _, err := r.readMeta(id); err != nil {
		return err
	}
	pid := r.pid(id)
	if pid == 0 {
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r.pid(id) == 0 {
			return nil
		}
	}
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
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return err
	}
	r.cfg.Guests.Collect(r.inUse)
	return nil
}

// Commit implements sandbox.Committer: the sandbox's disk, flattened into a
// new root filesystem, becomes the guest image ref. A running sandbox is
// frozen while its disk is copied.
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
		if err := r.control(id, "stop"); err != nil {
			return "", err
		}
		defer r.control(id, "cont")
	}
	flat := filepath.Join(r.dir(id), "commit.ext4")
	// -U: QEMU holds the image open; the guest is frozen or off. -S: sparse.
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-U", "-S", "4k", "-f", "qcow2", "-O", "raw",
		filepath.Join(r.dir(id), "disk.qcow2"), flat).CombinedOutput()
	if err != nil {
		os.Remove(flat)
		return "", fmt.Errorf("qemu-img convert: %v: %s", err, out)
	}
	guest, err := r.cfg.Guests.Commit(ref, m.Guest(), flat)
	if err != nil {
		os.Remove(flat)
		return "", err
	}
	return guest.Dir, nil
}

// RemoveImage implements sandbox.ImageRemover for committed guests; their
// files stay while a sandbox's disk is backed by them.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	if err := r.cfg.Guests.Remove(ref); err != nil {
		return err
	}
	r.cfg.Guests.Collect(r.inUse)
	return nil
}

// inUse says whether a sandbox boots from or is backed by files under dir.
func (r *Runtime) inUse(dir string) bool {
	entries, _ := os.ReadDir(r.cfg.StateDir)
	for _, e := range entries {
		if m, err := r.readMeta(e.Name()); err == nil {
			for _, f := range []string{m.Rootfs, m.Kernel, m.Initrd} {
				if strings.HasPrefix(f, dir+string(filepath.Separator)) {
					return true
				}
			}
		}
	}
	return false
}

// Inspect implements sandbox.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (*sandbox.Info, error) {
	m, err := r.readMeta(id)
	if err != nil {
		return nil, err
	}
	state := sandbox.StateStopped
	pid := r.pid(id)
	if pid != 0 {
		state = sandbox.StateRunning
		var status struct {
			Return struct{ Status string } `json:"return"`
		}
		if out, err := r.qmp(id, "query-status"); err == nil && json.Unmarshal(out, &status) == nil && status.Return.Status == "paused" {
			state = sandbox.StatePaused
		}
	}
	return &sandbox.Info{ID: id, RuntimeID: "qemu:" + strconv.Itoa(pid), State: state, Image: m.Image, CreatedAt: m.Created,
		Address: m.Address}, nil
}

// List implements sandbox.Runtime.
func (r *Runtime) List(ctx context.Context) ([]*sandbox.Info, error) {
	return r.dirs.List(ctx, r.Inspect)
}

// Dial implements sandbox.Runtime.
func (r *Runtime) Dial(ctx context.Context, id string) (net.Conn, error) {
	m, err := r.readMeta(id)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	if m.CID != 0 {
		conn, err = vsock.Dial(m.CID, agentPort, nil)
	} else {
		conn, err = sandbox.DialUnix(ctx, filepath.Join(r.dir(id), "agent.sock"))
	}
	if err != nil {
		return nil, errdefs.Unavailable("agent of sandbox %s not reachable: %v", id, err)
	}
	return conn, nil
}

// Health implements sandbox.Runtime.
func (r *Runtime) Health(ctx context.Context) error {
	if _, err := os.Stat(r.cfg.Binary); err != nil {
		return errdefs.Unavailable("qemu: %v", err)
	}
	return nil
}

// Pause implements sandbox.Pauser: QEMU stops the vCPUs; memory is kept.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	return r.control(id, "stop")
}

// Resume implements sandbox.Pauser.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	return r.control(id, "cont")
}

func (r *Runtime) control(id, command string) error {
	if _, err := r.readMeta(id); err != nil {
		return err
	}
	if r.pid(id) == 0 {
		return errdefs.FailedPrecondition("sandbox %s is not running", id)
	}
	_, err := r.qmp(id, command)
	return err
}

// qmp runs one command on the sandbox's QMP monitor. The socket is named
// through /proc/self/fd so its path never outgrows the 108-byte limit.
func (r *Runtime) qmp(id, command string) ([]byte, error) {
	dir, err := os.Open(r.dir(id))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	mon, err := qmp.NewSocketMonitor("unix", fmt.Sprintf("/proc/self/fd/%d/qmp.sock", dir.Fd()), 2*time.Second)
	if err != nil {
		return nil, errdefs.Unavailable("qemu monitor of %s: %v", id, err)
	}
	if err := mon.Connect(); err != nil {
		return nil, errdefs.Unavailable("qemu monitor of %s: %v", id, err)
	}
	defer mon.Disconnect()
	out, err := mon.Run([]byte(`{"execute":"` + command + `"}`))
	if err != nil {
		return nil, fmt.Errorf("qemu %s on %s: %w", command, id, err)
	}
	return out, nil
}

// ConsoleLog returns the tail of a sandbox's serial console, for debugging a
// failed boot.
func (r *Runtime) ConsoleLog(ctx context.Context, id string, maxBytes int) ([]byte, error) {
	if _, err := r.readMeta(id); err != nil {
		return nil, err
	}
	return r.dirs.Console(id, maxBytes)
}
