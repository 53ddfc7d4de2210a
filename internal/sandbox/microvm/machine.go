package microvm

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// Network attaches sandboxes to the host's microVM network
// (*network.Manager).
type Network interface {
	Attach(ctx context.Context, id string, policy egress.Policy) (*network.Endpoint, error)
	Detach(ctx context.Context, id string) error
}

// Guests makes bootable guests from image references and keeps committed
// ones (*image.GuestBuilder).
type Guests interface {
	Build(ctx context.Context, ref string) (*image.Guest, error)
	Commit(ref string, from *image.Guest, rootfs string) (*image.Guest, error)
	Remove(ref string) error
	Collect(inUse func(dir string) bool)
}

// ErrCIDTaken is what VMM.Launch wraps when the host refused the sandbox's
// guest CID because another VMM holds it; Machine then launches again with
// the next free one.
var ErrCIDTaken = errors.New("guest CID taken")

// VMM is what differs between microVM runtimes: making a sandbox's disk,
// launching and controlling its VMM process, and reaching its agent.
// Machine calls it only for sandboxes this instance owns, with their meta as
// meta.json holds it, and with the sandbox's directory in place. Its methods
// must be safe for concurrent use on different sandboxes.
type VMM interface {
	// Prepare makes a new sandbox's disk (and whatever else the VMM needs
	// besides the directory) from guest, and records in m what it decides.
	// On error Machine calls Remove and deletes the directory.
	Prepare(ctx context.Context, m *Meta, guest *image.Guest) error
	// Launch starts the sandbox's VMM process, which outlives aetherd, and
	// boots the guest with m's resources, address (on ep; nil without a
	// network) and guest CID, as meta.json records them. It returns once
	// the pid file names the process; on error no process is left. An error
	// wrapping ErrCIDTaken makes Machine try the next free CID.
	Launch(ctx context.Context, m *Meta, ep *network.Endpoint) error
	// Stopped releases what the runtime holds for the sandbox's VMM process
	// while it runs. It is called after every Stop, also when none ran.
	Stopped(ctx context.Context, m *Meta)
	// Remove deletes what the runtime made for the sandbox outside its
	// directory; nothing there is not an error.
	Remove(ctx context.Context, m *Meta) error
	// Dial opens a new stream to the agent of the running guest, failing
	// fast while the agent is not listening.
	Dial(ctx context.Context, m *Meta) (net.Conn, error)
	// Paused says whether the running guest's vCPUs are stopped; false when
	// the VMM does not answer.
	Paused(ctx context.Context, m *Meta) bool
	// SetPaused stops (true) or resumes (false) the running guest's vCPUs;
	// memory is kept.
	SetPaused(ctx context.Context, m *Meta, paused bool) error
	// ExportDisk writes the sandbox's disk to dst as a raw, sparse ext4
	// image. The guest is paused or not running.
	ExportDisk(ctx context.Context, m *Meta, dst string) error
}

// Config configures a Machine.
type Config struct {
	// Name is the runtime's name ("qemu"), which prefixes Info.RuntimeID
	// ("qemu:<pid>") and errors. Required.
	Name string
	// Dirs holds the sandboxes' directories. Required.
	Dirs *Dirs
	// Guests builds guests and keeps committed ones. Required.
	Guests Guests
	// VMM does what differs between runtimes. Required.
	VMM VMM
	// Network gives each new sandbox a NIC on a TAP; nil means no network.
	Network Network
	// Vsock gives each new sandbox a guest CID (see Machine); false means
	// none (CID 0).
	Vsock bool
	// StopGrace is how long Stop waits for the VMM to end after SIGTERM
	// before it sends SIGKILL; 0 means SIGKILL at once.
	StopGrace time.Duration
}

func (c *Config) validate() error {
	if c.Name == "" || c.Dirs == nil || c.Guests == nil || c.VMM == nil {
		return errors.New("microvm: Name, Dirs, Guests and VMM are required")
	}
	return nil
}

// Machine is the lifecycle every microVM runtime shares; a runtime embeds it
// and adds Health. It implements sandbox.Runtime (but Health),
// sandbox.Pauser, sandbox.Committer, sandbox.ImageRemover and
// sandbox.ConsoleLogger, with their contracts. Sandboxes with a vsock get
// the lowest guest CID, from 3, that no other sandbox of this instance holds
// and the host accepts; a sandbox keeps its CID across restarts while it is
// free. It is safe for concurrent use.
type Machine struct {
	cfg   Config
	dirs  *Dirs
	cidMu sync.Mutex // serializes choosing a CID with recording it
}

// New returns a Machine, or an error naming a missing required field.
func New(cfg Config) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Machine{cfg: cfg, dirs: cfg.Dirs}, nil
}

const (
	firstCID    = 3  // 0-2 are reserved
	maxCIDTries = 64 // refusals by the host before Launch gives up
)

// Create implements sandbox.Runtime. A sandbox of the same ID that an
// earlier attempt made is started (if needed) and returned. A failure
// before the sandbox's meta.json is written leaves nothing behind.
func (m *Machine) Create(ctx context.Context, spec *sandbox.Spec) (*sandbox.Info, error) {
	meta, err := NewMeta(spec, m.dirs.Owner, m.cfg.Network != nil)
	if err != nil {
		return nil, err
	}
	if m.dirs.Exists(spec.ID) {
		if err := m.Start(ctx, spec.ID); err != nil {
			return nil, err
		}
		return m.Inspect(ctx, spec.ID)
	}
	guest, err := m.cfg.Guests.Build(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	meta.SetGuest(guest)
	if m.cfg.Vsock {
		meta.CID = firstCID
	}
	if err := m.prepare(ctx, meta, guest); err != nil {
		return nil, err
	}
	if err := m.launch(ctx, meta); err != nil {
		return nil, err
	}
	return m.Inspect(ctx, spec.ID)
}

// prepare lays out a new sandbox: its directory, what the VMM makes, and
// meta.json last, which makes it exist. On failure nothing is left.
func (m *Machine) prepare(ctx context.Context, meta *Meta, guest *image.Guest) error {
	if err := os.MkdirAll(m.dirs.Dir(meta.ID), 0o755); err != nil {
		return err
	}
	err := m.cfg.VMM.Prepare(ctx, meta, guest)
	if err == nil {
		err = m.claimCID(meta, nil)
	}
	if err != nil {
		return errors.Join(err, m.remove(ctx, meta))
	}
	return nil
}

// launch attaches the sandbox to the network and has the VMM boot it,
// moving it to another guest CID while the host refuses its own.
func (m *Machine) launch(ctx context.Context, meta *Meta) error {
	ep, err := m.attach(ctx, meta)
	if err != nil {
		return err
	}
	refused := map[uint32]bool{}
	for range maxCIDTries {
		if err := m.claimCID(meta, refused); err != nil {
			return err
		}
		err := m.cfg.VMM.Launch(ctx, meta, ep)
		if meta.CID == 0 || !errors.Is(err, ErrCIDTaken) {
			return err
		}
		refused[meta.CID] = true
	}
	return errdefs.Unavailable("%s: no free vsock guest CID", m.cfg.Name)
}

// claimCID writes the sandbox's meta.json, first moving a sandbox with a
// vsock to the lowest CID from its own up that no other sandbox of this
// instance holds and the host has not refused.
func (m *Machine) claimCID(meta *Meta, refused map[uint32]bool) error {
	if meta.CID == 0 {
		return m.dirs.Write(meta)
	}
	m.cidMu.Lock()
	defer m.cidMu.Unlock()
	used := m.dirs.UsedCIDs(meta.ID)
	for used[meta.CID] || refused[meta.CID] {
		meta.CID++
	}
	return m.dirs.Write(meta)
}

// attach connects a sandbox created with a network (nil endpoint without
// one) and records its address in meta. It is idempotent: a restart finds
// the TAP (or, after a host reboot, makes it again) with the same address.
func (m *Machine) attach(ctx context.Context, meta *Meta) (*network.Endpoint, error) {
	if !meta.Network {
		return nil, nil
	}
	if m.cfg.Network == nil {
		return nil, errdefs.FailedPrecondition("sandbox %s was created with a network, and none is configured now", meta.ID)
	}
	policy, err := egress.Parse(meta.Egress)
	if err != nil {
		return nil, err
	}
	ep, err := m.cfg.Network.Attach(ctx, meta.ID, policy)
	if err != nil {
		return nil, err
	}
	meta.Address = ep.Address.Addr().String()
	return ep, nil
}

// Start implements sandbox.Runtime: a stopped sandbox boots again from its
// disk in a new VMM process.
func (m *Machine) Start(ctx context.Context, id string) error {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return err
	}
	if m.dirs.PID(id) != 0 {
		return nil
	}
	return m.launch(ctx, meta)
}

// Stop implements sandbox.Runtime: the VMM process ends; the disk stays.
// With a StopGrace the process is asked first (SIGTERM) and killed when it
// has not ended within the grace. Stop returns ctx's error as soon as ctx
// ends.
func (m *Machine) Stop(ctx context.Context, id string) error {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return err
	}
	defer m.cfg.VMM.Stopped(ctx, meta)
	pid := m.dirs.PID(id)
	if pid == 0 {
		return nil
	}
	// Signals go through a pidfd, checked to pin the VMM, so that its pid
	// reused after it exits (during the grace) is never signalled; without
	// pidfds (Linux before 5.3, a seccomp filter) by number, as PID checked.
	signal := func(sig unix.Signal) {
		if m.dirs.PID(id) == pid { // checked again right before, by number
			unix.Kill(pid, sig)
		}
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
		return nil // exited meanwhile (the pid may name another's thread now)
	case err == nil:
		defer unix.Close(pidfd)
		if m.dirs.PID(id) != pid {
			return nil // exited, and the pid was reused before it was pinned
		}
		signal = func(sig unix.Signal) { unix.PidfdSendSignal(pidfd, sig, nil, 0) }
	}
	if m.cfg.StopGrace > 0 {
		signal(unix.SIGTERM)
		gctx, cancel := context.WithTimeout(ctx, m.cfg.StopGrace)
		err := m.dirs.WaitExit(gctx, id)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
	}
	signal(unix.SIGKILL)
	return m.dirs.WaitExit(ctx, id)
}

// Delete implements sandbox.Runtime: the VMM process ends, the sandbox
// leaves the network, its files go, and so do committed guests that were
// removed and that no sandbox uses any more.
func (m *Machine) Delete(ctx context.Context, id string) error {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return nil // already gone
	}
	if err := m.Stop(ctx, id); err != nil {
		return err
	}
	if meta.Network && m.cfg.Network != nil {
		if err := m.cfg.Network.Detach(ctx, id); err != nil {
			return err
		}
	}
	if err := m.remove(ctx, meta); err != nil {
		return err
	}
	m.cfg.Guests.Collect(m.dirs.Uses)
	return nil
}

// remove deletes the sandbox's files, inside its directory and out.
func (m *Machine) remove(ctx context.Context, meta *Meta) error {
	return errors.Join(m.cfg.VMM.Remove(ctx, meta), m.dirs.Remove(meta.ID))
}

// Inspect implements sandbox.Runtime. RuntimeID is "<Name>:<pid>", the pid
// 0 while stopped.
func (m *Machine) Inspect(ctx context.Context, id string) (*sandbox.Info, error) {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return nil, err
	}
	pid, state := m.state(ctx, meta)
	return &sandbox.Info{ID: id, RuntimeID: m.cfg.Name + ":" + strconv.Itoa(pid), State: state, Image: meta.Image,
		CreatedAt: meta.Created, Address: meta.Address}, nil
}

// state is the sandbox's VMM process (0 when none runs) and its state.
func (m *Machine) state(ctx context.Context, meta *Meta) (int, string) {
	pid := m.dirs.PID(meta.ID)
	switch {
	case pid == 0:
		return 0, sandbox.StateStopped
	case m.cfg.VMM.Paused(ctx, meta):
		return pid, sandbox.StatePaused
	}
	return pid, sandbox.StateRunning
}

// List implements sandbox.Runtime.
func (m *Machine) List(ctx context.Context) ([]*sandbox.Info, error) {
	entries, err := os.ReadDir(m.dirs.Root)
	if err != nil {
		return nil, err
	}
	var out []*sandbox.Info
	for _, e := range entries {
		if info, err := m.Inspect(ctx, e.Name()); err == nil {
			out = append(out, info)
		}
	}
	return out, nil
}

// Dial implements sandbox.Runtime: ErrNotFound for an unknown sandbox,
// ErrUnavailable while its agent does not answer.
func (m *Machine) Dial(ctx context.Context, id string) (net.Conn, error) {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return nil, err
	}
	conn, err := m.cfg.VMM.Dial(ctx, meta)
	if err != nil {
		return nil, errdefs.Unavailable("agent of sandbox %s not reachable: %v", id, err)
	}
	return conn, nil
}

// Pause implements sandbox.Pauser: the vCPUs stop; memory is kept.
// ErrFailedPrecondition when the sandbox is not running.
func (m *Machine) Pause(ctx context.Context, id string) error {
	return m.setPaused(ctx, id, true)
}

// Resume implements sandbox.Pauser.
func (m *Machine) Resume(ctx context.Context, id string) error {
	return m.setPaused(ctx, id, false)
}

func (m *Machine) setPaused(ctx context.Context, id string, paused bool) error {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return err
	}
	if m.dirs.PID(id) == 0 {
		return errdefs.FailedPrecondition("sandbox %s is not running", id)
	}
	return m.cfg.VMM.SetPaused(ctx, meta, paused)
}

// Commit implements sandbox.Committer: the sandbox's disk, exported as a
// new root filesystem, becomes the guest image ref, booting the sandbox's
// kernel and initramfs. A running sandbox is paused while its disk is
// copied, and resumed after.
func (m *Machine) Commit(ctx context.Context, id, ref string) (string, error) {
	meta, err := m.dirs.Read(id)
	if err != nil {
		return "", err
	}
	if _, state := m.state(ctx, meta); state == sandbox.StateRunning {
		if err := m.cfg.VMM.SetPaused(ctx, meta, true); err != nil {
			return "", err
		}
		defer m.cfg.VMM.SetPaused(context.WithoutCancel(ctx), meta, false)
	}
	flat := filepath.Join(m.dirs.Dir(id), "commit.ext4")
	if err := m.cfg.VMM.ExportDisk(ctx, meta, flat); err != nil {
		os.Remove(flat)
		return "", err
	}
	guest, err := m.cfg.Guests.Commit(ref, meta.Guest(), flat)
	if err != nil {
		os.Remove(flat)
		return "", err
	}
	return guest.Dir, nil
}

// RemoveImage implements sandbox.ImageRemover for committed guests: the
// guest is forgotten at once, and its files go once no sandbox of this
// instance was made from them.
func (m *Machine) RemoveImage(ctx context.Context, ref string) error {
	if err := m.cfg.Guests.Remove(ref); err != nil {
		return err
	}
	m.cfg.Guests.Collect(m.dirs.Uses)
	return nil
}

// ConsoleLog implements sandbox.ConsoleLogger: the tail of the guest's
// serial console, for debugging a failed boot.
func (m *Machine) ConsoleLog(ctx context.Context, id string, maxBytes int) ([]byte, error) {
	if _, err := m.dirs.Read(id); err != nil {
		return nil, err
	}
	return m.dirs.Console(id, maxBytes)
}

// TrimConsoles implements sandbox.ConsoleTrimmer: every sandbox's console
// log keeps its last ConsoleKeep bytes (a capped ring; see ConsoleKeep).
func (m *Machine) TrimConsoles(ctx context.Context) error { return m.dirs.TrimConsoles() }
