package docker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/image"
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

// TestHostCAsBakedIn checks that images built here trust the host's locally
// added CA certificates (so sandboxes get through a TLS-inspecting proxy).
func TestHostCAsBakedIn(t *testing.T) {
	t.Parallel()
	hostCAs, _ := filepath.Glob(image.DefaultCAGlob)
	if len(hostCAs) == 0 {
		t.Skip("skipping: this host has no locally added CA certificates to bake in")
	}
	img := testbin.BaseImage(t)
	rt := newRuntime(t, "none")
	ctx := context.Background()
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id) })
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: img}); err != nil {
		t.Fatal(err)
	}
	c, err := sandbox.Connect(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out strings.Builder
	c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"sh", "-c", "ls /usr/local/share/ca-certificates | grep -c '^aether-host-'; grep -c 'BEGIN CERT' /etc/ssl/certs/ca-certificates.crt"}},
		agentclient.ExecIO{Stdout: &out})
	got := strings.Fields(out.String())
	if len(got) != 2 || got[0] != fmt.Sprint(len(hostCAs)) {
		t.Errorf("image has %v host CAs / bundle certs, want %d host CAs", got, len(hostCAs))
	}
}

// TestLongStateDir guards the bug where a deep data directory made the agent
// socket path longer than sun_path allows, so no sandbox ever became ready.
func TestLongStateDir(t *testing.T) {
	t.Parallel()
	img := testbin.BaseImage(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("deep-directory-", 6))
	rt, err := docker.New(docker.Config{AgentPath: testbin.Build(t, "aether-agent"), StateDir: dir,
		Owner: "test-" + uuid.NewString()[:8], Network: "none"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := uuid.NewString()
	t.Cleanup(func() { rt.Delete(ctx, id) })
	if len(filepath.Join(dir, id, "agent.sock")) <= 108 {
		t.Fatalf("test path is not long enough to exercise the bug")
	}
	if _, err := rt.Create(ctx, &sandbox.Spec{ID: id, Image: img}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := sandbox.Connect(cctx, rt, id)
	if err != nil {
		t.Fatalf("connect through a %d-byte socket path: %v", len(filepath.Join(dir, id, "agent.sock")), err)
	}
	c.Close()
}
