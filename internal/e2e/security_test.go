package e2e_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
)

// TestAPIKeysAndProjects drives a real aetherd through the CLI and the
// client: the CLI finds the bootstrap key file on its own, takes a key from
// AETHER_API_KEY, and ends with one line and exit code 2 on a wrong key;
// a request without a key is 401; a project's member key sees only its
// project; 20 concurrent creates against a quota of 5 make exactly 5
// sandboxes, the rest 429.
func TestAPIKeysAndProjects(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)

	// The key file (every e.aether call runs with AETHER_DATA_DIR only).
	if out, code := e.aether("", "project", "create", "team-a", "--sandboxes", "5"); code != 0 || !strings.Contains(out, "team-a") {
		t.Fatalf("aether project create (key from the file): %d %s", code, out)
	}
	out, code := e.aether("", "--project", "team-a", "key", "create", "--name", "ci")
	key := strings.TrimSpace(strings.Split(out, "\n")[0])
	if code != 0 || !strings.HasPrefix(key, "ae_") {
		t.Fatalf("aether key create: %d %s", code, out)
	}

	// AETHER_API_KEY overrides the file: the member key sees team-a only.
	cli := func(key string, args ...string) (string, int) {
		cmd := exec.Command(e.cli, args...)
		cmd.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr, "AETHER_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := cli(key, "project", "ls"); code != 1 || !strings.Contains(out, "admin key") {
		t.Errorf("member key: aether project ls = %d %q; want 1 and 'needs an admin key'", code, out)
	}
	if out, code := cli(key, "vm", "ls"); code != 0 {
		t.Errorf("member key: aether vm ls = %d %q", code, out)
	}
	wrong := "ae_aaaaaaaa_" + strings.Repeat("A", 43)
	out, code = cli(wrong, "vm", "ls")
	if code != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "API key") {
		t.Errorf("wrong key: aether vm ls = %d %q; want exit 2 and one line", code, out)
	}

	// No key at all: 401 from the real server.
	resp, err := http.Get("http://" + e.addr + "/api/v1/vms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/vms without a key = %d; want 401", resp.StatusCode)
	}

	// Isolation: the default project's sandbox is 404 to team-a.
	mine := e.MustCreateVM(&client.CreateVMRequest{Name: "admins"})
	member := e.c.WithKey(key)
	if _, err := member.GetVM(ctx(t), mine.ID); !client.IsNotFound(err) {
		t.Errorf("team-a reads the default project's sandbox: %v; want 404", err)
	}

	// Quota race through the API.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 20 {
		wg.Go(func() {
			_, err := member.CreateVM(ctx(t), &client.CreateVMRequest{Name: fmt.Sprintf("q%d", i)})
			status := http.StatusAccepted
			if ce, ok := err.(*client.Error); ok {
				status = ce.Status
				if status == http.StatusTooManyRequests && !strings.Contains(ce.Message, "quota") {
					t.Errorf("429 without a clear message: %s", ce.Message)
				}
			} else if err != nil {
				t.Errorf("create: %v", err)
			}
			mu.Lock()
			codes[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	vms, err := member.ListVMs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 5 || codes[http.StatusAccepted] != 5 || codes[http.StatusTooManyRequests] != 15 {
		t.Errorf("20 creates at quota 5: %d sandboxes, statuses %v", len(vms), codes)
	}
	for _, vm := range vms {
		if vm.Name == "admins" {
			t.Errorf("team-a lists the default project's sandbox")
		}
	}

	// Revocation applies to the next request.
	prefix := key[:11]
	if _, code := e.aether("", "key", "revoke", prefix); code != 0 {
		t.Fatalf("aether key revoke %s: %d", prefix, code)
	}
	if _, err := member.ListVMs(ctx(t)); !client.IsUnauthenticated(err) {
		t.Errorf("revoked key: %v; want 401", err)
	}
	var keys []*apiv1.APIKey
	if keys, err = e.c.ListKeys(ctx(t), "team-a"); err != nil || len(keys) != 1 || keys[0].RevokedAt == nil || keys[0].Role != store.RoleMember {
		t.Errorf("keys of team-a: %+v, %v; want one revoked member key", keys, err)
	}
}
