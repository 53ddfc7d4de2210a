package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// TestAgentChannelArgs: the agent is on a virtio-serial port backed by a
// unix socket unless the sandbox has a vsock CID, then on a vhost-vsock
// device with that CID, and the guest is told which to listen on.
func TestAgentChannelArgs(t *testing.T) {
	for _, tt := range []struct {
		cid                 uint32
		accel, want, listen string
		absent              string
	}{
		{0, "tcg", "virtserialport,chardev=agent,name=aether", "aether.listen=serial:aether", "vhost-vsock"},
		{7, "tcg", "vhost-vsock-pci,guest-cid=7", "aether.listen=vsock:1024", "virtserialport"},
		{9, "kvm", "vhost-vsock-device,guest-cid=9", "aether.listen=vsock:1024", "virtio-serial"},
	} {
		args := qemuArgs(&microvm.Meta{ID: "abc", MemoryMB: 256, VCPUs: 1, CID: tt.cid}, "/state/abc", tt.accel)
		joined := strings.Join(args, " ")
		if !slices.Contains(args, tt.want) || !strings.Contains(joined, tt.listen) || strings.Contains(joined, tt.absent) {
			t.Errorf("cid %d %s: args %v; want %q and %q, no %q", tt.cid, tt.accel, args, tt.want, tt.listen, tt.absent)
		}
	}
}

// TestConfinementArgs: every QEMU gets the seccomp filter and drops to its
// uid:gid, except when measuring without (-1).
func TestConfinementArgs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		uid, gid int
		want     string
	}{
		{65534, 65534, "-sandbox " + sandboxOpts + " -runas 65534:65534"},
		{1234, 99, "-sandbox " + sandboxOpts + " -runas 1234:99"},
		{-1, -1, "-sandbox " + sandboxOpts},
	} {
		if got := strings.Join(confinement(tt.uid, tt.gid), " "); got != tt.want {
			t.Errorf("confinement(%d, %d) = %q, want %q", tt.uid, tt.gid, got, tt.want)
		}
	}
}
