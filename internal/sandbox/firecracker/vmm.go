package firecracker

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// vmm is Firecracker's part of the machine skeleton (microvm.VMM): one
// Firecracker process per sandbox (jailed when the jailer is present),
// configured and controlled through its API socket, booting from a raw
// clone of the guest's root filesystem, its agent reached over hybrid vsock.
type vmm struct{ r *Runtime }

var _ microvm.VMM = (*vmm)(nil)

// Prepare lays out the sandbox's root (the jail's chroot, or a plain
// directory): the ELF kernel, the initramfs and a copy-on-write clone of
// the guest's root filesystem.
func (v *vmm) Prepare(ctx context.Context, m *microvm.Meta, guest *image.Guest) error {
	r := v.r
	vmlinux, err := r.cfg.Guests.Vmlinux(guest)
	if err != nil {
		return err
	}
	m.Jailed = r.cfg.Jailer != ""
	root := r.root(m)
	if err := os.MkdirAll(root, 0o755); err != nil { // the jail's root is outside the sandbox's directory
		return err
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
	return nil // a jailed disk is chowned to the jail's uid at each launch
}

// Launch starts Firecracker, configures the microVM and boots it.
func (v *vmm) Launch(ctx context.Context, m *microvm.Meta, ep *network.Endpoint) error {
	return v.r.launch(ctx, m, ep)
}

// Stopped stops copying the VMM's log and metrics fifos.
func (v *vmm) Stopped(ctx context.Context, m *microvm.Meta) { v.r.stopDrains(m.ID) }

// Remove deletes the jail (and the jailer's cgroups) of a jailed sandbox.
func (v *vmm) Remove(ctx context.Context, m *microvm.Meta) error {
	if !m.Jailed {
		return nil
	}
	os.RemoveAll(filepath.Dir(v.r.jail(m).ChrootDir()))
	// The jailer's cgroups: <base>/<binary name>/<id>, per controller on v1.
	name := filepath.Base(v.r.cfg.Binary)
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name, m.ID))
	for _, d := range append(dirs, filepath.Join("/sys/fs/cgroup", name, m.ID)) {
		os.Remove(d)
	}
	return nil
}

// Dial is one hybrid-vsock handshake to the agent's port, failing fast
// while the guest is still booting.
func (v *vmm) Dial(ctx context.Context, m *microvm.Meta) (net.Conn, error) {
	return hybridOnce(ctx, filepath.Join(v.r.root(m), "v.sock"), AgentPort)
}

// Paused asks the API whether the microVM is paused, for at most 2 s.
func (v *vmm) Paused(ctx context.Context, m *microvm.Meta) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := v.r.client(m).Describe(ctx)
	return err == nil && info.State == "Paused"
}

// SetPaused is PATCH /vm.
func (v *vmm) SetPaused(ctx context.Context, m *microvm.Meta, paused bool) error {
	state := StateResumed
	if paused {
		state = StatePaused
	}
	return v.r.client(m).SetState(ctx, state)
}

// ExportDisk is a sparse copy of the raw root disk.
func (v *vmm) ExportDisk(ctx context.Context, m *microvm.Meta, dst string) error {
	return image.CloneDisk(ctx, filepath.Join(v.r.root(m), "rootfs.ext4"), dst)
}
