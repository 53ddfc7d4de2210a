package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/mdlayher/vsock"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// vmm is QEMU's part of the machine skeleton (microvm.VMM): one daemonized
// QEMU per sandbox, controlled over QMP, booting from a qcow2 overlay on
// the guest's root filesystem.
type vmm struct{ r *Runtime }

var _ microvm.VMM = (*vmm)(nil)

func (v *vmm) path(m *microvm.Meta, name string) string {
	return filepath.Join(v.r.dirs.Dir(m.ID), name)
}

// Prepare makes the sandbox's disk: a qcow2 overlay on the guest's root
// filesystem (copy-on-write, so nothing is copied).
func (v *vmm) Prepare(ctx context.Context, m *microvm.Meta, guest *image.Guest) error {
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", guest.Rootfs,
		v.path(m, "disk.qcow2")).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img: %v: %s", err, out)
	}
	return nil
}

// Launch runs QEMU, which daemonizes (writing the pid file) once the
// machine is set up, so it outlives aetherd.
func (v *vmm) Launch(ctx context.Context, m *microvm.Meta, ep *network.Endpoint) error {
	dir := v.r.dirs.Dir(m.ID)
	os.Remove(filepath.Join(dir, "agent.sock"))
	accel := v.r.Accel(ctx)
	args := append(qemuArgs(m, dir, accel), confinement(v.r.cfg.UID, v.r.cfg.GID)...)
	if ep != nil {
		_, bus := machineFor(accel)
		args = withNIC(args, ep, bus)
	}
	out, err := exec.CommandContext(ctx, "setpriv", append([]string{"--no-new-privs", "--", v.r.cfg.Binary}, args...)...).CombinedOutput()
	if err == nil {
		return nil
	}
	err = fmt.Errorf("qemu: %v: %s", err, strings.TrimSpace(string(out)))
	if m.CID != 0 && strings.Contains(string(out), "guest cid") {
		return fmt.Errorf("%w: %w", microvm.ErrCIDTaken, err)
	}
	return err
}

// Stopped implements microvm.VMM: QEMU holds nothing in aetherd.
func (v *vmm) Stopped(context.Context, *microvm.Meta) {}

// Remove implements microvm.VMM: everything is in the sandbox's directory.
func (v *vmm) Remove(context.Context, *microvm.Meta) error { return nil }

// Dial reaches the agent over vhost-vsock when the sandbox has a CID, else
// on the virtio-serial port's unix socket.
func (v *vmm) Dial(ctx context.Context, m *microvm.Meta) (net.Conn, error) {
	if m.CID != 0 {
		return vsock.Dial(m.CID, agentPort, nil)
	}
	return sandbox.DialUnix(ctx, v.path(m, "agent.sock"))
}

// Paused asks QMP whether the vCPUs are stopped.
func (v *vmm) Paused(ctx context.Context, m *microvm.Meta) bool {
	var status struct {
		Return struct{ Status string } `json:"return"`
	}
	out, err := v.qmp(m, "query-status")
	return err == nil && json.Unmarshal(out, &status) == nil && status.Return.Status == "paused"
}

// SetPaused stops or continues the vCPUs over QMP.
func (v *vmm) SetPaused(ctx context.Context, m *microvm.Meta, paused bool) error {
	command := "cont"
	if paused {
		command = "stop"
	}
	_, err := v.qmp(m, command)
	return err
}

// ExportDisk flattens the qcow2 overlay with its backing file into a sparse
// raw image.
func (v *vmm) ExportDisk(ctx context.Context, m *microvm.Meta, dst string) error {
	// -U: QEMU holds the image open; the guest is frozen or off. -S: sparse.
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-U", "-S", "4k", "-f", "qcow2", "-O", "raw",
		v.path(m, "disk.qcow2"), dst).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img convert: %v: %s", err, out)
	}
	return nil
}

// qmp runs one command on the sandbox's QMP monitor. The socket is named
// through /proc/self/fd so its path never outgrows the 108-byte limit.
func (v *vmm) qmp(m *microvm.Meta, command string) ([]byte, error) {
	dir, err := os.Open(v.r.dirs.Dir(m.ID))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	mon, err := qmp.NewSocketMonitor("unix", fmt.Sprintf("/proc/self/fd/%d/qmp.sock", dir.Fd()), 2*time.Second)
	if err != nil {
		return nil, errdefs.Unavailable("qemu monitor of %s: %v", m.ID, err)
	}
	if err := mon.Connect(); err != nil {
		return nil, errdefs.Unavailable("qemu monitor of %s: %v", m.ID, err)
	}
	defer mon.Disconnect()
	out, err := mon.Run([]byte(`{"execute":"` + command + `"}`))
	if err != nil {
		return nil, fmt.Errorf("qemu %s on %s: %w", command, m.ID, err)
	}
	return out, nil
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

// sandboxOpts is QEMU's seccomp filter: obsolete system calls and changing
// resource limits or scheduling are refused (the process is killed). Two
// switches stay allowed because QEMU 7.2 kills itself otherwise, as tested
// here: elevateprivileges, since -runas calls setuid/setgid after the filter
// is in place; spawn, since -daemonize forks after it too. What they would
// deny is covered instead: -runas leaves every uid unprivileged, with no
// capability to regain root, and QEMU starts with no_new_privs (setpriv),
// so no setuid binary it could exec gains anything. (spawn=deny needs QEMU
// started undaemonized, aetherd detaching it itself: a follow-up.)
const sandboxOpts = "on,obsolete=deny,elevateprivileges=allow,spawn=allow,resourcecontrol=deny"

// confinement is QEMU's seccomp filter and its drop to uid:gid once set up
// (uid -1: stays root).
func confinement(uid, gid int) []string {
	args := []string{"-sandbox", sandboxOpts}
	if uid >= 0 {
		args = append(args, "-runas", fmt.Sprintf("%d:%d", uid, max(gid, 0)))
	}
	return args
}

// qemuArgs is QEMU's command line for the sandbox whose directory is dir.
func qemuArgs(m *microvm.Meta, dir, accel string) []string {
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
