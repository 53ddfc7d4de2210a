package docker_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
	"github.com/aetherium/aetherium/internal/testbin"
)

// BenchmarkHardening measures, interleaved in one run, create → agent
// handshake → delete and an exec round-trip of `true` for: the hardened
// runtime with egress internet (its own network, nftables rules installed
// at start), the same runtime unhardened (Docker's default capabilities and
// privileges, same network and rules), and hardened with egress none (no
// network, so no rules: the rules' share of create), and hardened with the
// workload sharing the agent's pids cgroup (no workload group: what the
// group costs a create and an exec, on a cgroup v1 host).
func BenchmarkHardening(b *testing.B) {
	img := testbin.BaseImage(b)
	ctx := context.Background()
	hard := newBenchRuntime(b, false, false)
	soft := newBenchRuntime(b, true, false)
	shared := newBenchRuntime(b, false, true)
	variants := []struct {
		name   string
		rt     *docker.Runtime
		policy egress.Policy
	}{
		{"hardened", hard, egress.Policy{Mode: egress.Internet}},
		{"unhardened", soft, egress.Policy{Mode: egress.Internet}},
		{"hardened-no-network", hard, egress.Policy{Mode: egress.None}},
		{"hardened-shared-pids", shared, egress.Policy{Mode: egress.Internet}},
	}
	create := make([][]time.Duration, len(variants))
	exec := make([][]time.Duration, len(variants))
	for range b.N {
		for i, v := range variants {
			id := uuid.NewString()
			start := time.Now()
			if _, err := v.rt.Create(ctx, &sandbox.Spec{ID: id, Image: img, Egress: v.policy}); err != nil {
				b.Fatal(err)
			}
			c, err := sandbox.Connect(ctx, v.rt, id)
			if err != nil {
				b.Fatal(err)
			}
			create[i] = append(create[i], time.Since(start))
			for range 10 {
				t0 := time.Now()
				if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"true"}}, agentclient.ExecIO{}); err != nil {
					b.Fatal(err)
				}
				exec[i] = append(exec[i], time.Since(t0))
			}
			c.Close()
			if err := v.rt.Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i, v := range variants {
		b.ReportMetric(pct(create[i], 50), v.name+"-create-p50-ms")
		b.ReportMetric(pct(create[i], 99), v.name+"-create-p99-ms")
		b.ReportMetric(pct(exec[i], 50), v.name+"-exec-p50-ms")
		b.ReportMetric(pct(exec[i], 99), v.name+"-exec-p99-ms")
	}
}

func newBenchRuntime(b *testing.B, unhardened, sharedPids bool) *docker.Runtime {
	rt, err := docker.New(docker.Config{AgentPath: testbin.Build(b, "aether-agent"), StateDir: filepath.Join(b.TempDir(), "sandboxes"),
		Owner: "bench-" + uuid.NewString()[:8], Network: "aetbench", Subnet: benchSubnet, Unhardened: unhardened,
		SharedPids: sharedPids})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cleanupNetwork("aetbench") })
	return rt
}

func pct(d []time.Duration, p int) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds()) / 1000
}
