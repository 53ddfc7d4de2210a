// Command agentmem measures host memory per idle Docker sandbox against raw
// containers of the same image and limits: it creates K sandboxes through
// the docker runtime (internal/sandbox/docker, as aetherd does, with one live
// agent connection each, as aetherd's agent cache keeps), reads their
// cgroups and their agents' /proc, removes them, then does the same with K
// raw containers running `sleep infinity`. Network none on both sides.
// With -idle D the connections close after D unused, as aetherd's do after
// docker.agent_idle, and the agents go dormant 5 s later (aether-waiter
// beside -agent); give -settle the time for both.
//
//	go build -o /tmp/aether-agent ./cmd/aether-agent
//	go run ./tools/agentmem -agent /tmp/aether-agent -k 30
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	containertypes "github.com/docker/docker/api/types/container"
	dockerclient "github.com/docker/docker/client"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/docker"
)

func main() {
	agent := flag.String("agent", "bin/aether-agent", "aether-agent binary")
	k := flag.Int("k", 30, "sandboxes (and raw containers)")
	img := flag.String("image", "aetherium/base:bookworm", "image")
	settle := flag.Duration("settle", 10*time.Second, "wait before reading")
	dump := flag.Bool("dump", false, "print one agent's mappings with resident memory")
	execs := flag.Int("execs", 0, "commands each sandbox runs (each prints 64 KiB) before the settle")
	noRaw := flag.Bool("noraw", false, "skip the raw containers")
	idle := flag.Duration("idle", -1, "close agent connections unused this long, so agents go dormant (negative: keep them, agents awake)")
	flag.Parse()
	ctx := context.Background()
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		log.Fatal(err)
	}
	state, _ := os.MkdirTemp("", "agentmem-")
	defer os.RemoveAll(state)
	owner := "agentmem-" + uuid.NewString()[:8]
	rt, err := docker.New(docker.Config{AgentPath: *agent, StateDir: state, Owner: owner, Network: "none", AgentIdle: *idle})
	if err != nil {
		log.Fatal(err)
	}
	agents := sandbox.NewAgents(rt)

	m0 := memAvailable()
	var ids []string
	var mu sync.Mutex
	fan(*k, func(i int) {
		id := uuid.NewString()
		_, err := rt.Create(ctx, &sandbox.Spec{ID: id, Name: fmt.Sprintf("mem-%d", i), Image: *img, Egress: egress.Policy{Mode: egress.None}})
		if err != nil {
			log.Printf("create: %v", err)
			return
		}
		c, err := agents.Get(ctx, id)
		if err != nil {
			log.Printf("agent: %v", err)
			return
		}
		for range *execs {
			if _, err := c.Exec(ctx, &agentproto.ExecRequest{Argv: []string{"head", "-c", "65536", "/dev/zero"}}, agentclient.ExecIO{Stdout: io.Discard}); err != nil {
				log.Printf("exec: %v", err)
			}
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
	})
	time.Sleep(*settle)
	m1 := memAvailable()
	ours := read(cli, ids, func(id string) string { return "aether-" + id }, *dump)
	fmt.Printf("ours: %d sandboxes, MemAvailable drop %.3f MiB each\n%s", len(ids), mib(m0-m1)/float64(len(ids)), ours.report(len(ids)))
	fan(len(ids), func(i int) {
		if err := rt.Delete(ctx, ids[i]); err != nil {
			log.Printf("delete: %v", err)
		}
	})
	if *noRaw {
		return
	}
	time.Sleep(3 * time.Second)
	m2 := memAvailable()
	var raws []string
	fan(*k, func(i int) {
		pids := int64(4096)
		resp, err := cli.ContainerCreate(ctx, &containertypes.Config{Image: *img, Entrypoint: []string{"sleep", "infinity"}, Cmd: []string{}, WorkingDir: "/"},
			&containertypes.HostConfig{NetworkMode: "none", CapDrop: []string{"ALL"},
				CapAdd:      []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"},
				SecurityOpt: []string{"no-new-privileges"},
				Resources: containertypes.Resources{NanoCPUs: 1e9, Memory: 512 << 20, MemorySwap: 512 << 20, PidsLimit: &pids,
					Ulimits: []*containertypes.Ulimit{{Name: "nofile", Soft: nofile(), Hard: nofile()}}}}, nil, nil, "")
		if err != nil {
			log.Printf("raw: %v", err)
			return
		}
		mu.Lock()
		raws = append(raws, resp.ID)
		mu.Unlock()
		if err := cli.ContainerStart(ctx, resp.ID, containertypes.StartOptions{}); err != nil {
			log.Printf("raw start: %v", err)
		}
	})
	time.Sleep(*settle)
	m3 := memAvailable()
	raw := read(cli, raws, func(id string) string { return id }, false)
	fmt.Printf("raw: %d containers, MemAvailable drop %.3f MiB each\n%s", len(raws), mib(m2-m3)/float64(len(raws)), raw.report(len(raws)))
	fan(len(raws), func(i int) {
		cli.ContainerRemove(ctx, raws[i], containertypes.RemoveOptions{Force: true})
	})
	fmt.Printf("ratio usage_in_bytes %.3f, MemAvailable %.3f\n", float64(ours.v["usage"])/float64(len(ids))/(float64(raw.v["usage"])/float64(len(raws))),
		(float64(m0-m1)/float64(len(ids)))/(float64(m2-m3)/float64(len(raws))))
}

func fan(n int, do func(i int)) {
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				do(i)
			}
		})
	}
	wg.Wait()
}

type totals struct{ v map[string]int64 }

var order = []string{"usage", "kmem", "kmem.tcp", "rss", "cache", "mapped_file", "proc.VmRSS", "proc.RssAnon", "proc.RssFile", "proc.Pss", "proc.Pss_Anon", "proc.Pss_File", "proc.Threads"}

func (t totals) report(n int) string {
	var b strings.Builder
	for _, k := range order {
		if k == "proc.Threads" {
			fmt.Fprintf(&b, "  %-14s %8.2f\n", k, float64(t.v[k])/float64(n))
			continue
		}
		fmt.Fprintf(&b, "  %-14s %8.3f MiB\n", k, mib(t.v[k])/float64(n))
	}
	return b.String()
}

func read(cli *dockerclient.Client, ids []string, name func(string) string, dump bool) totals {
	t := totals{v: map[string]int64{}}
	for i, id := range ids {
		c, err := cli.ContainerInspect(context.Background(), name(id))
		if err != nil {
			log.Printf("inspect: %v", err)
			continue
		}
		dir := "/sys/fs/cgroup/memory/docker/" + c.ID
		t.v["usage"] += readInt(dir + "/memory.usage_in_bytes")
		t.v["kmem"] += readInt(dir + "/memory.kmem.usage_in_bytes")
		t.v["kmem.tcp"] += readInt(dir + "/memory.kmem.tcp.usage_in_bytes")
		for k, v := range keyed(dir+"/memory.stat", " ") {
			switch k {
			case "rss", "cache", "mapped_file":
				t.v[k] += v
			}
		}
		pid := strconv.Itoa(c.State.Pid)
		for k, v := range keyed("/proc/"+pid+"/status", ":") {
			switch k {
			case "VmRSS", "RssAnon", "RssFile":
				t.v["proc."+k] += v << 10
			case "Threads":
				t.v["proc."+k] += v
			}
		}
		for k, v := range keyed("/proc/"+pid+"/smaps_rollup", ":") {
			switch k {
			case "Pss", "Pss_Anon", "Pss_File":
				t.v["proc."+k] += v << 10
			}
		}
		if dump && i == 0 {
			b, _ := os.ReadFile("/proc/" + pid + "/smaps")
			fmt.Println(smapsSummary(string(b)))
		}
	}
	return t
}

// smapsSummary prints each mapping's Rss and Anonymous.
func smapsSummary(s string) string {
	var b strings.Builder
	var head string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			head = line
			continue
		}
		if f[0] == "Rss:" && f[1] != "0" {
			fmt.Fprintf(&b, "%6s kB  %s\n", f[1], head)
		}
	}
	return b.String()
}

func keyed(path, sep string) map[string]int64 {
	b, _ := os.ReadFile(path)
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		out[strings.TrimSpace(k)] = n
	}
	return out
}

func readInt(path string) int64 {
	b, _ := os.ReadFile(path)
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func memAvailable() int64 { return keyed("/proc/meminfo", ":")["MemAvailable"] << 10 }

// nofile is the docker runtime's open-files limit: 65536 or the hard limit.
func nofile() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < 65536 {
		return int64(rl.Max)
	}
	return 65536
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
