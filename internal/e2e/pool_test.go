package e2e_test

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// waitContainers waits until this process owns n containers.
func (p *proc) waitContainers(n int, within time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(p.containers()) == n {
			return
		}
	}
	p.t.Fatalf("worker has %d containers, want %d", len(p.containers()), n)
}

// waitPoolReady waits until /metrics (admin key) reports ready pool
// sandboxes of template.
func (e *testEnv) waitPoolReady(template string, ready int, within time.Duration) {
	e.t.Helper()
	want := fmt.Sprintf(`aether_pool_ready{template=%q} %d`, template, ready)
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := e.http().Get("http://" + e.addr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return
			}
		}
	}
	e.t.Fatalf("metrics never showed %s", want)
}

// TestWarmPool: a template with a pool keeps sandboxes started; 5 concurrent
// creates get 5 distinct working sandboxes (3 from the pool); the pool
// refills; a restart in the middle loses none and leaks none; pool sandboxes
// never show in lists.
func TestWarmPool(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	acc, err := e.c.CreateTemplate(ctx(t), &client.TemplateRequest{Name: "warm", Setup: []string{"echo warm > /etc/warm"}, PoolSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.mustWait(acc.TaskID)
	e.waitContainers(3, 60*time.Second)
	if vms, _ := e.c.ListVMs(ctx(t)); len(vms) != 0 {
		t.Errorf("pool sandboxes listed: %v", vms)
	}
	// /metrics (admin key) reports the pool; /health, which needs no key,
	// says nothing of any project.
	e.waitPoolReady("warm", 3, 30*time.Second)
	if h, _ := e.c.Health(ctx(t)); h["pools"] != nil {
		t.Errorf("health shows pools: %v", h["pools"])
	}
	e.restart() // the pool survives: no duplicate fill, no leak
	time.Sleep(2 * time.Second)
	e.waitContainers(3, 10*time.Second)

	pooled := map[string]bool{}
	for _, id := range e.containers() {
		pooled[id] = true
	}
	var wg sync.WaitGroup
	vms := make([]*apiv1.VM, 5)
	for i := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms[i] = e.MustCreateVM(&client.CreateVMRequest{Name: fmt.Sprintf("w%d", i), Template: "warm"})
		}()
	}
	wg.Wait()
	seen, fromPool := map[string]bool{}, 0
	for _, vm := range vms {
		if vm != nil && pooled[vm.ID] {
			fromPool++
		}
		if vm == nil || seen[vm.ID] {
			t.Fatalf("a sandbox was handed out twice or not at all: %v", vms)
		}
		seen[vm.ID] = true
		if out, code := e.MustExec(vm.Name, "cat /etc/warm"); out != "warm\n" || code != 0 {
			t.Errorf("%s: %q %d", vm.Name, out, code)
		}
	}
	if fromPool != 3 {
		t.Errorf("%d of 5 creates were served from the 3-sandbox pool, want 3", fromPool)
	}
	e.waitContainers(5+3, 60*time.Second) // refilled
	if _, err := e.c.SetPoolSize(ctx(t), "warm", 1); err != nil {
		t.Fatal(err)
	}
	e.waitContainers(5+1, 30*time.Second) // drained to the new size
	if vms, _ := e.c.ListVMs(ctx(t)); len(vms) != 5 {
		t.Errorf("%d sandboxes listed, want the 5 user ones", len(vms))
	}
	if out, code := e.aether("", "vm", "rm", "w0", "w1"); out != "w0\nw1\n" || code != 0 {
		t.Errorf("aether vm rm: %q exit %d", out, code)
	}
	e.waitContainers(3+1, 30*time.Second)
}
