package docker

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"
)

// TestIsolationOf checks what `docker info` is read as: userns-remap from
// the security options (the form dockerd reports with it on, and without),
// the storage driver's backing filesystem; and that RLIMIT_NPROC is set
// only under a user namespace, where it counts the sandbox's own processes.
func TestIsolationOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		info      system.Info
		want      Isolation
		wantNproc []*container.Ulimit
	}{
		{name: "userns-remap on",
			info: system.Info{SecurityOptions: []string{"name=seccomp,profile=builtin", "name=userns"}, CgroupVersion: "2", Driver: "overlay2",
				DriverStatus: [][2]string{{"Backing Filesystem", "xfs"}}},
			want:      Isolation{UsernsRemap: true, CgroupVersion: "2", StorageDriver: "overlay2", BackingFS: "xfs"},
			wantNproc: []*container.Ulimit{{Name: "nproc", Soft: 4096, Hard: 4096}}},
		{name: "this host's kind: no user namespace",
			info: system.Info{SecurityOptions: []string{"name=seccomp,profile=default"}, CgroupVersion: "1", Driver: "overlay2",
				DriverStatus: [][2]string{{"Backing Filesystem", "extfs"}, {"Supports d_type", "true"}}},
			want: Isolation{CgroupVersion: "1", StorageDriver: "overlay2", BackingFS: "extfs"}},
		{name: "rootless-style combined option",
			info: system.Info{SecurityOptions: []string{"name=seccomp,profile=default,name=userns"}},
			want: Isolation{UsernsRemap: true}, wantNproc: []*container.Ulimit{{Name: "nproc", Soft: 4096, Hard: 4096}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := isolationOf(tt.info, false)
			if got != tt.want {
				t.Errorf("isolationOf(%+v) = %+v, want %+v", tt.info, got, tt.want)
			}
			if n := nprocLimit(got, 4096); !reflect.DeepEqual(n, tt.wantNproc) {
				t.Errorf("nprocLimit = %v, want %v", n, tt.wantNproc)
			}
		})
	}
}
