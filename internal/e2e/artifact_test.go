package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/integrations/integrationstest"
)

// gitPushServer is git's own smart-HTTP server (git http-backend, run as
// CGI) on the host's loopback, accepting pushes to owner/name.git, which is
// the bare repository given. It records the Authorization header of every
// request. aetherd pushes from the host, so the host can reach it.
type gitPushServer struct {
	url  string
	mu   sync.Mutex
	auth []string
}

func serveGitPush(t *testing.T, fullName, bare string) *gitPushServer {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", bare, "config", "http.receivepack", "true").CombinedOutput(); err != nil {
		t.Fatalf("git config: %v\n%s", err, out)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, filepath.Dir(fullName)), 0o755)
	if err := os.Symlink(bare, filepath.Join(root, fullName+".git")); err != nil {
		t.Fatal(err)
	}
	s := &gitPushServer{}
	backend := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"), Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		backend.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.url = "http://" + l.Addr().String() + "/git"
	return s
}

// TestPullRequestFromSandbox is the AI-agent flow: an agent in a Docker
// sandbox clones a real repository and commits a change; POST
// /api/v1/vms/{id}/pull-request makes aetherd read that commit out of the
// sandbox as a git bundle, push it from the host to a real git server (git
// http-backend, with the token as a Basic Authorization header; the sandbox
// never sees it) and open the pull request on a stand-in of the GitHub API
// (github.com cannot be reached here). A bad branch name is 400 and another
// project's key is 404, before anything is queued.
func TestPullRequestFromSandbox(t *testing.T) {
	t.Parallel()
	repo := serveGitRepo(t)
	pushSrv := serveGitPush(t, e2eRepo, repo.bare)
	api := integrationstest.NewStandIn()
	t.Cleanup(api.Close)
	cfg := filepath.Join(t.TempDir(), "aetherd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`integrations:
  enabled: [github]
  github:
    token: ghp_e2e
    webhook_secret: %q
    base_url: %s
    git_url: %s
`, e2eHookSecret, api.URL, pushSrv.url)), 0o644)
	e := newEnv(t)
	e.proc = e.add("--runtime", "docker", "--config", cfg)
	e.connect(e.proc)
	e.start()

	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "agent", Egress: repo.host + "/32"})
	out, code := e.MustExec(vm.ID, "mkdir -p /work && git clone -q "+repo.url+" /work/repo && cd /work/repo && "+
		"git config user.name Agent && git config user.email agent@example.com && echo fixed > FIX && git add FIX && "+
		"git commit -q -m 'agent: fix' && git rev-parse HEAD")
	lines := strings.Fields(out)
	if code != 0 || len(lines) == 0 {
		t.Fatalf("agent's commit: exit %d\n%s", code, out)
	}
	commit := lines[len(lines)-1]

	post := func(key string, body map[string]any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+e.addr+"/api/v1/vms/"+vm.ID+"/pull-request", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got := map[string]any{}
		json.NewDecoder(resp.Body).Decode(&got)
		return resp.StatusCode, got
	}
	good := map[string]any{"repo": e2eRepo, "path": "/work/repo", "branch": "agent/fix", "base": "main", "title": "Agent's fix",
		"body": "made in a sandbox"}
	bad := map[string]any{"repo": e2eRepo, "path": "/work/repo", "branch": "--upload-pack=x", "base": "main", "title": "t"}
	if code, got := post(e.key(), bad); code != http.StatusBadRequest {
		t.Errorf("bad branch name = %d %v; want 400", code, got)
	}
	if _, err := e.c.CreateProject(ctx(t), &apiv1.ProjectRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	other, err := e.c.CreateKey(ctx(t), &apiv1.KeyRequest{Project: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if code, got := post(other.Key, good); code != http.StatusNotFound {
		t.Errorf("another project's key = %d %v; want 404", code, got)
	}

	if out, code := e.aether("", "vm", "pr", vm.ID, "--repo", e2eRepo, "--path", "/work/repo", "--branch", "-x", "--title", "t"); code == 0 ||
		strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("aether vm pr with a bad branch: exit %d\n%s; want non-zero and one line", code, out)
	}

	// The CLI waits for the task and prints the pull request's URL.
	out, code = e.aether("", "vm", "pr", vm.ID, "--repo", e2eRepo, "--path", "/work/repo", "--branch", "agent/fix",
		"--title", "Agent's fix", "--body", "made in a sandbox")
	if code != 0 || strings.TrimSpace(out) != "https://github.com/repos/"+e2eRepo+"/pull/7" {
		t.Fatalf("aether vm pr: exit %d\n%s; want the pull request's URL", code, out)
	}
	if out, err := exec.Command("git", "-C", repo.bare, "rev-parse", "refs/heads/agent/fix").Output(); err != nil ||
		strings.TrimSpace(string(out)) != commit {
		t.Errorf("the git server's agent/fix = %q, %v; want the sandbox's commit %s", out, err, commit)
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:ghp_e2e"))
	pushSrv.mu.Lock()
	auth := pushSrv.auth
	pushSrv.mu.Unlock()
	if len(auth) == 0 || auth[len(auth)-1] != wantAuth {
		t.Errorf("the git server saw Authorization %q; want the token as %q", auth, wantAuth)
	}
	var creates []integrationstest.Call
	for _, c := range api.Calls("/repos/" + e2eRepo + "/pulls") {
		if c.Method == http.MethodPost {
			creates = append(creates, c)
		}
	}
	if len(creates) != 1 || creates[0].Body["head"] != "agent/fix" || creates[0].Body["base"] != "main" ||
		creates[0].Body["title"] != "Agent's fix" || creates[0].Auth != "Bearer ghp_e2e" {
		t.Errorf("pull request creates %+v; want one, head agent/fix into main, titled, with the token", creates)
	}
	if out, code := e.MustExec(vm.ID, "env; cat /work/repo/.git/config"); code != 0 || strings.Contains(out, "ghp_e2e") {
		t.Errorf("the token reached the sandbox (exit %d):\n%s", code, out)
	}
}
