package firecracker

import (
	"strings"

	"github.com/aetherium/aetherium/internal/sandbox/microvm"
	"testing"
)

func TestJailerArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  JailerConfig
		want string
		root string
	}{
		{
			name: "defaults",
			cfg:  JailerConfig{FirecrackerBinary: "/usr/bin/firecracker", ID: "vm1", UID: 1000, GID: 1000},
			want: "--id vm1 --exec-file /usr/bin/firecracker --uid 1000 --gid 1000 --cgroup-version 2 -- --api-sock /run/api.sock",
			root: "/srv/jailer/firecracker/vm1/root",
		},
		{
			name: "everything",
			cfg: JailerConfig{FirecrackerBinary: "/opt/fc/firecracker-v1.16", ID: "abc", UID: 123, GID: 456, ChrootBase: "/var/lib/aether/jail",
				NetNS: "/var/run/netns/ae-abc", CgroupVersion: "1", Cgroups: []string{"cpu.max=200000 100000", "memory.max=536870912"}, Daemonize: true},
			want: "--id abc --exec-file /opt/fc/firecracker-v1.16 --uid 123 --gid 456 --chroot-base-dir /var/lib/aether/jail " +
				"--netns /var/run/netns/ae-abc --cgroup-version 1 --cgroup cpu.max=200000 100000 --cgroup memory.max=536870912 " +
				"--daemonize -- --api-sock /run/api.sock",
			root: "/var/lib/aether/jail/firecracker-v1.16/abc/root",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := strings.Join(tt.cfg.Args("/run/api.sock"), " "); got != tt.want {
				t.Errorf("Args =\n %s\nwant\n %s", got, tt.want)
			}
			if got := tt.cfg.ChrootDir(); got != tt.root {
				t.Errorf("ChrootDir = %s, want %s", got, tt.root)
			}
		})
	}
}

// TestJailCgroups: a jail is bounded to its sandbox's vCPUs and memory plus
// the VMM's overhead, in the host's cgroup version's terms.
func TestJailCgroups(t *testing.T) {
	t.Parallel()
	m := &microvm.Meta{VCPUs: 2, MemoryMB: 512}
	if got, want := strings.Join(jailCgroups("2", m), " "), "memory.max=671088640 cpu.max=200000 100000"; got != want {
		t.Errorf("v2: %q, want %q", got, want)
	}
	if got, want := strings.Join(jailCgroups("1", m), " "), "memory.limit_in_bytes=671088640 cpu.cfs_period_us=100000 cpu.cfs_quota_us=200000"; got != want {
		t.Errorf("v1: %q, want %q", got, want)
	}
}
