package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vishvananda/netns"

	"github.com/aetherium/aetherium/internal/integrations/integrationstest"
)

const (
	e2eRepo        = "Codertocat/Hello-World"
	e2eHookSecret  = "It's a Secret to Everybody"
	e2eSlackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
)

// gitRepo is a real git repository served read-only over git's dumb HTTP
// protocol, with two commits: pass (test.sh exits 0) and fail (test.sh
// exits 3). Sandboxes may not connect to the host itself, so the server
// listens in a network namespace of the test's, behind a veth pair, on
// host (a shared-range address that sandboxes reach only when their egress
// allowlist names it).
type gitRepo struct {
	url, host  string
	pass, fail string
	// bare is the served repository's directory on the host.
	bare string
}

// gitServers counts the git servers this process started (serveGitRepo).
var gitServers atomic.Int64

func serveGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace for the git server)")
	}
	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "repo.git")
	git := func(d string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", d, "-c", "user.name=Codertocat", "-c", "user.email=c@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	git(work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "test.sh"), []byte("echo all good; exit 0\n"), 0o644)
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "passing")
	r := &gitRepo{pass: git(work, "rev-parse", "HEAD"), bare: bare}
	os.WriteFile(filepath.Join(work, "test.sh"), []byte("echo FAIL: TestWidget; exit 3\n"), 0o644)
	git(work, "commit", "-q", "-am", "failing")
	r.fail = git(work, "rev-parse", "HEAD")
	git(dir, "clone", "-q", "--bare", work, bare)
	git(bare, "update-server-info")

	// Each server of the process gets its own namespace, veth and /30.
	n := gitServers.Add(1)
	ns, hostEnd := fmt.Sprintf("aetgit-%d-%d", os.Getpid()%100000, n), fmt.Sprintf("aetgit%d-%d", os.Getpid()%10000, n)
	hostIP, nsIP := fmt.Sprintf("100.127.252.%d", 4*n+1), fmt.Sprintf("100.127.252.%d", 4*n+2)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	ip("link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostEnd).Run() })
	ip("addr", "add", hostIP+"/30", "dev", hostEnd)
	ip("link", "set", hostEnd, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "addr", "add", nsIP+"/30", "dev", "eth0")
	ip("-n", ns, "link", "set", "eth0", "up")
	ip("-n", ns, "route", "add", "default", "via", hostIP)
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var l net.Listener
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace
		if err = netns.Set(h); err == nil {
			l, err = net.Listen("tcp4", nsIP+":0")
		}
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.StripPrefix("/repo.git/", http.FileServer(http.Dir(bare)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r.url, r.host = "http://"+l.Addr().String()+"/repo.git", nsIP
	return r
}

// waitFor polls cond until it holds; the deadline only bounds a broken run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postWebhook sends a webhook to aetherd, without an API key.
func (e *testEnv) postWebhook(t *testing.T, name string, header http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+e.addr+"/api/v1/webhooks/"+name, bytes.NewReader(body))
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// states lists the commit states of status calls, "(failed)" after those
// the stand-in refused.
func states(calls []integrationstest.Call) []string {
	var out []string
	for _, c := range calls {
		s := fmt.Sprint(c.Body["state"])
		if c.Failed {
			s += "(failed)"
		}
		out = append(out, s)
	}
	return out
}

// TestIntegrationsEndToEnd: a real aetherd on Docker with the github and
// slack integrations, whose API calls go to an in-process stand-in of the
// GitHub and Slack APIs (github.com and slack.com cannot be reached here).
// A signed push webhook starts a job in a fresh sandbox that clones the
// exact commit of a real repository served on the host and runs its test:
// the commit status goes pending, then success, even though the stand-in
// is down (503) when the result is first reported (the queued report is
// retried). A pull request whose head fails gets a failure status and one
// PR comment with the exit code and the output. Unsigned and replayed
// webhooks are refused. A Slack /aether run is acknowledged at once and
// followed up through its response_url, and every finished job is posted
// to the notify channel. Each job's sandbox is deleted after its job.
func TestIntegrationsEndToEnd(t *testing.T) {
	t.Parallel()
	repo := serveGitRepo(t)
	api := integrationstest.NewStandIn()
	t.Cleanup(api.Close)
	cfg := filepath.Join(t.TempDir(), "aetherd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`integrations:
  enabled: [github, slack]
  public_url: https://aether.example.com
  github:
    token: ghp_e2e
    webhook_secret: %q
    base_url: %s
    repos:
      %s:
        commands: ["sh test.sh"]
        egress: %s/32
  slack:
    token: xoxb-e2e
    signing_secret: %s
    base_url: %s/api/
    response_url_prefix: %s/hooks/
    notify_channels: ["#builds"]
`, e2eHookSecret, api.URL, e2eRepo, repo.host, e2eSlackSecret, api.URL, api.URL)), 0o644)
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--config", cfg)
	e.connect(e.proc)
	e.start()

	push := integrationstest.PushPayload(e2eRepo, repo.url, repo.pass)
	unsigned := integrationstest.GitHubHeaders("guess", "push", uuid.NewString(), push)
	if code, out := e.postWebhook(t, "github", unsigned, push); code != http.StatusUnauthorized {
		t.Fatalf("push signed with the wrong secret = %d %v; want 401", code, out)
	}
	delivery := uuid.NewString()
	code, out := e.postWebhook(t, "github", integrationstest.GitHubHeaders(e2eHookSecret, "push", delivery, push), push)
	if code != http.StatusOK || out["status"] != "started" {
		t.Fatalf("push = %d %v; want 200 started", code, out)
	}
	passStatuses := "/repos/" + e2eRepo + "/statuses/" + repo.pass
	waitFor(t, "the pending status", func() bool { return len(api.Calls(passStatuses)) >= 1 })
	api.FailNext(2, http.StatusServiceUnavailable) // GitHub is down when the result is reported
	if code, out := e.postWebhook(t, "github", integrationstest.GitHubHeaders(e2eHookSecret, "push", delivery, push), push); code != http.StatusOK || out["status"] != "duplicate" {
		t.Fatalf("redelivery = %d %v; want 200 duplicate", code, out)
	}
	waitFor(t, "the success status", func() bool {
		s := states(api.Calls(passStatuses))
		return len(s) > 0 && s[len(s)-1] == "success"
	})
	got := states(api.Calls(passStatuses))
	if len(got) < 3 || got[0] != "pending" || got[1] != "success(failed)" {
		t.Fatalf("statuses of the passing commit %v; want pending, then success refused by the outage, then success", got)
	}
	final := api.Calls(passStatuses)[len(got)-1]
	if final.Body["target_url"] != "https://aether.example.com/api/v1/jobs/"+out["job_id"].(string) || final.Auth != "Bearer ghp_e2e" {
		t.Errorf("final status %+v; want the job's link and the token", final)
	}
	job, err := e.c.GetJob(ctx(t), out["job_id"].(string))
	if err != nil || len(job.Executions) != 2 || !strings.Contains(job.Executions[0].Stdout, "checked out "+repo.pass) ||
		!strings.Contains(job.Executions[1].Stdout, "all good") {
		t.Fatalf("push job %+v, %v; want the exact commit checked out, then its test run", job, err)
	}

	pr := integrationstest.PullRequestPayload("opened", e2eRepo, repo.url, repo.fail, 2)
	if code, out := e.postWebhook(t, "github", integrationstest.GitHubHeaders(e2eHookSecret, "pull_request", uuid.NewString(), pr), pr); code != http.StatusOK || out["status"] != "started" {
		t.Fatalf("pull_request = %d %v; want 200 started", code, out)
	}
	waitFor(t, "the PR comment", func() bool { return len(api.Comments(e2eRepo, 2)) > 0 })
	comment := api.Comments(e2eRepo, 2)[0]
	for _, want := range []string{"failed", "`cd /tmp/src && sh test.sh` → exit 3", "FAIL: TestWidget"} {
		if !strings.Contains(comment, want) {
			t.Errorf("PR comment lacks %q:\n%s", want, comment)
		}
	}
	if s := states(api.Calls("/repos/" + e2eRepo + "/statuses/" + repo.fail)); strings.Join(s, ",") != "pending,failure" {
		t.Errorf("statuses of the failing head %v; want pending,failure", s)
	}

	now := time.Now()
	run := integrationstest.SlashCommand("run default echo hello-from-slack", api.URL+"/hooks/commands/T1/42")
	code, out = e.postWebhook(t, "slack", integrationstest.SlackHeaders(e2eSlackSecret, now, run), run)
	if code != http.StatusOK || !strings.HasPrefix(fmt.Sprint(out["text"]), "Started job ") {
		t.Fatalf("/aether run = %d %v; want an immediate 'Started job …'", code, out)
	}
	if code, _ := e.postWebhook(t, "slack", integrationstest.SlackHeaders(e2eSlackSecret, now, run), run); code != http.StatusUnauthorized {
		t.Fatalf("replayed slash command = %d; want 401", code)
	}
	waitFor(t, "the response_url follow-up", func() bool { return len(api.Calls("/hooks/commands/T1/42")) > 0 })
	if text := fmt.Sprint(api.Calls("/hooks/commands/T1/42")[0].Body["text"]); !strings.Contains(text, "hello-from-slack") || !strings.Contains(text, "succeeded") {
		t.Errorf("follow-up %q; want the job's success and output", text)
	}
	waitFor(t, "three channel notifications", func() bool { return len(api.Calls("/api/chat.postMessage")) >= 3 })

	waitFor(t, "every job sandbox deleted", func() bool {
		vms, err := e.c.ListVMs(ctx(t))
		return err == nil && len(vms) == 0
	})
}
