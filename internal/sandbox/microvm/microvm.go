// Package microvm is what the QEMU and Firecracker runtimes share: one
// directory per sandbox holding its meta.json (which names the owning
// runtime instance), the VMM's pid file and the serial console log, and the
// attachment to the microVM network.
package microvm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/image"
	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
)

// Network attaches sandboxes to the host's microVM network
// (*network.Manager).
type Network interface {
	Attach(ctx context.Context, id string) (*network.Endpoint, error)
	Detach(ctx context.Context, id string) error
}

// Base is the part of a sandbox's meta.json every microVM runtime keeps;
// runtimes embed it in their own meta type.
type Base struct {
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
	// CID is the guest's vsock context ID; 0 means none (QEMU's agent on
	// virtio-serial).
	CID uint32 `json:"cid,omitempty"`
	// The guest's kernel (bzImage) and initramfs, which commits reuse.
	Kernel        string    `json:"kernel"`
	Initrd        string    `json:"initrd"`
	KernelVersion string    `json:"kernel_version"`
	Created       time.Time `json:"created"`
}

// Guest is the guest the sandbox boots, as far as its meta records it.
func (b *Base) Guest() *image.Guest {
	return &image.Guest{Kernel: b.Kernel, Initrd: b.Initrd, KernelVersion: b.KernelVersion}
}

// SetGuest records the guest the sandbox boots.
func (b *Base) SetGuest(g *image.Guest) {
	b.Kernel, b.Initrd, b.KernelVersion = g.Kernel, g.Initrd, g.KernelVersion
}

func (b *Base) base() *Base { return b }

// Meta is a runtime's meta type (one that embeds Base).
type Meta interface{ base() *Base }

// NewBase validates spec and fills a Base for it (512 MiB, 1 vCPU by default).
func NewBase(spec *sandbox.Spec, owner string, withNetwork bool) (*Base, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, "/.") {
		return nil, errdefs.InvalidArgument("sandbox id %q is not valid", spec.ID)
	}
	b := &Base{ID: spec.ID, Owner: owner, Name: spec.Name, Image: spec.Image, VCPUs: max(spec.VCPUs, 1),
		MemoryMB: spec.MemoryMB, Network: withNetwork, Created: time.Now().UTC()}
	if b.MemoryMB == 0 {
		b.MemoryMB = 512
	}
	return b, nil
}

// Dirs keeps one directory per sandbox under Root.
type Dirs struct {
	Root  string
	Owner string
}

// Dir is the sandbox's directory.
func (d *Dirs) Dir(id string) string { return filepath.Join(d.Root, id) }

// Read loads the sandbox's meta.json into m: ErrNotFound when it is missing
// or another runtime instance owns it.
func (d *Dirs) Read(id string, m Meta) error {
	b, err := os.ReadFile(filepath.Join(d.Dir(id), "meta.json"))
	if err != nil || json.Unmarshal(b, m) != nil || m.base().Owner != d.Owner {
		return errdefs.NotFound("sandbox %s not found", id)
	}
	return nil
}

// Exists says whether this instance owns a sandbox id.
func (d *Dirs) Exists(id string) bool {
	var b Base
	return d.Read(id, &b) == nil
}

// Write saves m as the sandbox's meta.json.
func (d *Dirs) Write(m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d.Dir(m.base().ID), "meta.json"), b, 0o644)
}

// UsedCIDs are the guest CIDs this instance's sandboxes other than except
// hold, and the reserved 0-2.
func (d *Dirs) UsedCIDs(except string) map[uint32]bool {
	used := map[uint32]bool{0: true, 1: true, 2: true}
	entries, _ := os.ReadDir(d.Root)
	for _, e := range entries {
		var b Base
		if e.Name() != except && d.Read(e.Name(), &b) == nil {
			used[b.CID] = true
		}
	}
	return used
}

// List inspects every sandbox this instance owns.
func (d *Dirs) List(ctx context.Context, inspect func(ctx context.Context, id string) (*sandbox.Info, error)) ([]*sandbox.Info, error) {
	entries, err := os.ReadDir(d.Root)
	if err != nil {
		return nil, err
	}
	var out []*sandbox.Info
	for _, e := range entries {
		if info, err := inspect(ctx, e.Name()); err == nil {
			out = append(out, info)
		}
	}
	return out, nil
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

// WaitExit waits until the sandbox's VMM is gone.
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

// Console returns at most the last maxBytes of the sandbox's console.log.
func (d *Dirs) Console(id string, maxBytes int) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir(id), "console.log"))
	if err != nil {
		return nil, errdefs.NotFound("sandbox %s has no console log yet", id)
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	return b, nil
}

// Attach connects a sandbox created with a network (nil endpoint without
// one) and records its address in m. Attach is idempotent: a restart finds
// the TAP (or, after a host reboot, makes it again) with the same address.
func Attach(ctx context.Context, nw Network, m Meta) (*network.Endpoint, error) {
	b := m.base()
	if !b.Network {
		return nil, nil
	}
	if nw == nil {
		return nil, errdefs.FailedPrecondition("sandbox %s was created with a network, and none is configured now", b.ID)
	}
	ep, err := nw.Attach(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	b.Address = ep.Address.Addr().String()
	return ep, nil
}

// Detach undoes Attach when the sandbox has a network; none configured is
// nothing to do.
func Detach(ctx context.Context, nw Network, m Meta) error {
	if !m.base().Network || nw == nil {
		return nil
	}
	return nw.Detach(ctx, m.base().ID)
}

// LastLine is the last non-empty line of a VMM's output, for errors.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
