// Package microvm is the machine skeleton the QEMU and Firecracker runtimes
// share: Machine implements the sandbox lifecycle (create, start, stop,
// delete, inspect, list, dial, pause, commit, console) once, on one
// directory per sandbox holding its meta.json (which names the owning
// runtime instance), the VMM's pid file and the serial console log, and on
// the microVM network; a runtime supplies only what differs, as a VMM.
// Only sandbox/qemu and sandbox/firecracker import it.
package microvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// Meta is a sandbox's meta.json: what restarts, List, Dial and commits need
// to know about it. Its presence in a sandbox's directory, naming this
// runtime instance as Owner, is what makes the sandbox exist.
type Meta struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Name     string `json:"name"`
	Image    string `json:"image"`
	VCPUs    int    `json:"vcpus"`
	MemoryMB int    `json:"memory_mb"`
	// Network says the sandbox was created with a NIC.
	Network bool `json:"network"`
	// Address is the guest's address once attached.
	Address string `json:"address,omitempty"`
	// Egress is the sandbox's egress policy (egress.Policy's text; ""
	// means internet), installed again at every attach.
	Egress string `json:"egress,omitempty"`
	// CID is the guest's vsock context ID; 0 means none (QEMU's agent on
	// virtio-serial).
	CID uint32 `json:"cid,omitempty"`
	// Jailed says the VMM runs under a jailer (Firecracker's), chrooted.
	Jailed bool `json:"jailed,omitempty"`
	// The guest the sandbox was made from: its kernel (bzImage), initramfs
	// and root filesystem. Commits reuse the kernel and initramfs; a QEMU
	// sandbox's qcow2 disk is backed by the root filesystem.
	Kernel        string    `json:"kernel"`
	Initrd        string    `json:"initrd"`
	Rootfs        string    `json:"rootfs"`
	KernelVersion string    `json:"kernel_version"`
	Created       time.Time `json:"created"`
}

// Guest is the guest the sandbox boots, as far as its meta records it.
func (m *Meta) Guest() *image.Guest {
	return &image.Guest{Kernel: m.Kernel, Initrd: m.Initrd, Rootfs: m.Rootfs, KernelVersion: m.KernelVersion}
}

// SetGuest records the guest the sandbox is made from.
func (m *Meta) SetGuest(g *image.Guest) {
	m.Kernel, m.Initrd, m.Rootfs, m.KernelVersion = g.Kernel, g.Initrd, g.Rootfs, g.KernelVersion
}

// NewMeta validates spec and fills a Meta for it (512 MiB, 1 vCPU by
// default). Errors: ErrInvalidArgument for an ID that is no plain name.
func NewMeta(spec *sandbox.Spec, owner string, withNetwork bool) (*Meta, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, "/.") {
		return nil, errdefs.InvalidArgument("sandbox id %q is not valid", spec.ID)
	}
	m := &Meta{ID: spec.ID, Owner: owner, Name: spec.Name, Image: spec.Image, VCPUs: max(spec.VCPUs, 1),
		MemoryMB: spec.MemoryMB, Network: withNetwork, Egress: spec.Egress.String(), Created: time.Now().UTC()}
	if m.MemoryMB == 0 {
		m.MemoryMB = 512
	}
	return m, nil
}

// Dirs keeps one directory per sandbox under Root; a directory is this
// runtime instance's when its meta.json names Owner. Its methods are safe
// for concurrent use; writers of one sandbox's meta.json serialize
// themselves. What spans every sandbox (CIDs in use, guests in use,
// console trimming every second) reads an index of the metas kept in
// memory, filled from the disk once and kept by Write and Remove, so a
// call costs no file read per sandbox.
type Dirs struct {
	Root  string
	Owner string

	mu    sync.Mutex
	index map[string]Meta // nil until the first metas call
}

// NewDirs returns the Dirs of owner's sandboxes under root, which it makes
// absolute and creates when missing.
func NewDirs(root, owner string) (*Dirs, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return &Dirs{Root: root, Owner: owner}, nil
}

// Dir is the sandbox's directory.
func (d *Dirs) Dir(id string) string { return filepath.Join(d.Root, id) }

// Read loads the sandbox's meta.json: ErrNotFound when it is missing or
// another runtime instance owns it.
func (d *Dirs) Read(id string) (*Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(d.Dir(id), "meta.json"))
	if err != nil || json.Unmarshal(b, &m) != nil || m.Owner != d.Owner {
		return nil, errdefs.NotFound("sandbox %s not found", id)
	}
	return &m, nil
}

// Exists says whether this instance owns a sandbox id.
func (d *Dirs) Exists(id string) bool {
	_, err := d.Read(id)
	return err == nil
}

// Write saves m as the sandbox's meta.json atomically (a temp file renamed
// over it), so a crash never leaves a torn meta.json that would make the
// sandbox vanish from List; the directory must exist.
func (d *Dirs) Write(m *Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d.Dir(m.ID), ".meta-*.json")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(d.Dir(m.ID), "meta.json"))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d.mu.Lock()
	if d.index != nil {
		d.index[m.ID] = *m
	}
	d.mu.Unlock()
	return nil
}

// Remove deletes the sandbox's directory and drops it from the index.
func (d *Dirs) Remove(id string) error {
	err := os.RemoveAll(d.Dir(id))
	d.mu.Lock()
	delete(d.index, id)
	d.mu.Unlock()
	return err
}

// all is the meta of every sandbox this instance owns, from the index
// (read from the disk on the first call).
func (d *Dirs) all() []*Meta {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.index == nil {
		d.index = map[string]Meta{}
		entries, _ := os.ReadDir(d.Root)
		for _, e := range entries {
			if m, err := d.Read(e.Name()); err == nil {
				d.index[m.ID] = *m
			}
		}
	}
	out := make([]*Meta, 0, len(d.index))
	for _, m := range d.index {
		out = append(out, &m)
	}
	return out
}

// UsedCIDs are the guest CIDs this instance's sandboxes other than except
// hold, and the reserved 0-2.
func (d *Dirs) UsedCIDs(except string) map[uint32]bool {
	used := map[uint32]bool{0: true, 1: true, 2: true}
	for _, m := range d.all() {
		if m.ID != except {
			used[m.CID] = true
		}
	}
	return used
}

// Uses says whether a sandbox of this instance was made from files under
// dir (its kernel, initramfs or root filesystem), which must then stay.
func (d *Dirs) Uses(dir string) bool {
	for _, m := range d.all() {
		for _, f := range []string{m.Rootfs, m.Kernel, m.Initrd} {
			if strings.HasPrefix(f, dir+string(filepath.Separator)) {
				return true
			}
		}
	}
	return false
}

// PID returns the sandbox's running VMM process from its pid file, or 0:
// none, exited (a zombie counts as exited), or the pid reused by a process
// whose command line does not name the sandbox.
func (d *Dirs) PID(id string) int {
	b, err := os.ReadFile(filepath.Join(d.Dir(id), "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), id) {
		return 0
	}
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
		return 0
	}
	return pid
}

// WaitExit waits until the sandbox's VMM is gone, or returns ctx's error.
func (d *Dirs) WaitExit(ctx context.Context, id string) error {
	for d.PID(id) != 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// LastLine is the last non-empty line of a VMM's output, for errors.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
