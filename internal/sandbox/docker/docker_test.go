package docker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/sandbox/sandboxtest"
	"github.com/aetherium/aetherium/internal/testbin"
)

func newRuntime(t *testing.T, network string) *docker.Runtime {
	t.Helper()
	rt, err := docker.New(docker.Config{
		AgentPath: testbin.Build(t, "aether-agent"),
		StateDir:  filepath.Join(t.TempDir(), "sandboxes"),
		Owner:     "test-" + uuid.NewString()[:8],
		Network:   network,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testbin.Need(t, "dockerd", rt.Health(ctx))
	return rt
}

func TestConformance(t *testing.T) {
	image := testbin.BaseImage(t)
	sandboxtest.Run(t, func(t *testing.T) sandbox.Runtime { return newRuntime(t, "bridge") }, sandboxtest.Options{Image: image})
}

// TestLimitsApplied checks the container's cgroup carries vcpus and memory_mb,
// and that network "none" leaves only loopback.
func TestLimitsApplied(t *testing.T) {
	t.Parallel()
	image := testbin.BaseImage(t)
	rt := newRuntime(t, "none")
	ctx := context.Background()
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: image, VCPUs: 2, MemoryMB: 300}); err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.Connect(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out strings.Builder
	script := "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max; ls /sys/class/net"
	if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", script}}, agentclient.ExecIO{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(out.String())
	want := []string{"314572800", "200000", "4096", "lo"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		// cgroup v2 prints "200000 100000" for cpu.max
		if !(len(got) >= 4 && got[0] == want[0] && got[1] == want[1] && got[len(got)-1] == "lo") {
			t.Errorf("limits inside sandbox = %v, want %v", got, want)
		}
	}
}
