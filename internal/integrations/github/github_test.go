package github_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/integrations/github"
	"github.com/aetherium/aetherium/internal/integrations/integrationstest"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

const (
	repo = "Codertocat/Hello-World"
	sha  = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
)

// newGitHub is the integration pointed at a stand-in of the GitHub API
// (github.com cannot be reached here).
func newGitHub(t *testing.T, cfg config.GitHub) (*github.GitHub, *integrationstest.StandIn) {
	t.Helper()
	s := integrationstest.NewStandIn()
	t.Cleanup(s.Close)
	cfg.BaseURL = s.URL
	g := github.New(cfg, nil)
	if err := g.Initialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	return g, s
}

func finished(status string, pr int) *integrations.Notification {
	code := 0
	if status == store.JobFailed {
		code = 2
	}
	target := `{"repo":"` + repo + `","sha":"` + sha + `"`
	if pr > 0 {
		target += `,"pr":2`
	}
	return &integrations.Notification{Phase: task.PhaseFinished, Link: "https://aether.example.com/api/v1/jobs/j1",
		Job: &store.Job{ID: "j1", Status: status, Error: "command 2 (\"make test\") failed: exit 2"},
		Executions: []*store.Execution{
			{Command: "git clone …", ExitCode: new(int), Stdout: "checked out " + sha + "\n"},
			{Command: "cd /tmp/src && make test", ExitCode: &code, Stdout: strings.Repeat("ok\n", 2000) + "FAIL: TestX\n"},
		},
		Target: []byte(target + "}")}
}

// TestSendNotification: started sets a pending status; finished sets
// success or failure with the link, and on a pull request posts one
// summary comment, which a retried report does not post again.
func TestSendNotification(t *testing.T) {
	t.Parallel()
	g, s := newGitHub(t, config.GitHub{Token: "ghp_test", StatusContext: "ci/aether"})
	started := finished(store.JobRunning, 2)
	started.Phase = task.PhaseStarted
	if err := g.SendNotification(t.Context(), started); err != nil {
		t.Fatal(err)
	}
	n := finished(store.JobFailed, 2)
	for range 2 { // the second is a retry of the same report
		if err := g.SendNotification(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	statuses := s.Calls("/repos/" + repo + "/statuses/" + sha)
	if len(statuses) != 3 {
		t.Fatalf("%d status calls; want 3 (pending, failure, failure again)", len(statuses))
	}
	for i, want := range []string{"pending", "failure", "failure"} {
		c := statuses[i]
		if c.Body["state"] != want || c.Body["context"] != "ci/aether" || c.Auth != "Bearer ghp_test" {
			t.Errorf("status %d: %+v; want state %s, context ci/aether, the token", i, c, want)
		}
	}
	if statuses[1].Body["target_url"] != n.Link || !strings.Contains(statuses[1].Body["description"].(string), "failed") {
		t.Errorf("final status %+v; want the job's link and its outcome", statuses[1].Body)
	}
	comments := s.Comments(repo, 2)
	if len(comments) != 1 {
		t.Fatalf("%d comments after a report and its retry; want 1", len(comments))
	}
	for _, want := range []string{"job j1 failed", "`cd /tmp/src && make test` → exit 2", "FAIL: TestX", n.Link} {
		if !strings.Contains(comments[0], want) {
			t.Errorf("comment lacks %q:\n%s", want, comments[0])
		}
	}
	if len(comments[0]) > integrations.TailBytes+1000 {
		t.Errorf("comment is %d bytes; the output tail is bounded to %d", len(comments[0]), integrations.TailBytes)
	}
	push := finished(store.JobSucceeded, 0)
	if err := g.SendNotification(t.Context(), push); err != nil {
		t.Fatal(err)
	}
	if last := s.Calls("/repos/" + repo + "/statuses/"); last[len(last)-1].Body["state"] != "success" {
		t.Errorf("status of a succeeded push job %+v; want success", last[len(last)-1].Body)
	}
	if len(s.Comments(repo, 2)) != 1 || len(s.Calls("/repos/"+repo+"/issues/0")) != 0 {
		t.Errorf("a push (no PR) was commented on")
	}
}

// TestSendNotificationOutage: while GitHub answers 503 (or 429) the error
// is retryable, so the queued report is tried again; a 422 (GitHub refused
// the request itself) is permanent.
func TestSendNotificationOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		permanent bool
	}{
		{http.StatusServiceUnavailable, false},
		{http.StatusBadGateway, false},
		{http.StatusTooManyRequests, false},
		{http.StatusUnprocessableEntity, true},
		{http.StatusNotFound, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			g, s := newGitHub(t, config.GitHub{Token: "ghp_test"})
			s.FailNext(1, tt.status)
			err := g.SendNotification(t.Context(), finished(store.JobSucceeded, 0))
			if err == nil || queue.IsPermanent(err) != tt.permanent {
				t.Fatalf("SendNotification during %d = %v (permanent %v); want an error, permanent %v", tt.status, err, queue.IsPermanent(err), tt.permanent)
			}
			if err := g.SendNotification(t.Context(), finished(store.JobSucceeded, 0)); err != nil {
				t.Fatalf("after the outage: %v", err)
			}
		})
	}
}

// TestAppAuth: as a GitHub App, the integration signs an RS256 JWT with
// the app's key (issuer = app ID), trades it for an installation token,
// and calls the API with that token, reusing it while it is valid.
func TestAppAuth(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	s := integrationstest.NewStandIn()
	t.Cleanup(s.Close)
	s.CheckJWT = func(raw string) error {
		var claims jwt.RegisteredClaims
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("12345"))
		return err
	}
	g := github.New(config.GitHub{AppID: "12345", InstallationID: "678", PrivateKey: string(pemKey), BaseURL: s.URL}, nil)
	if err := g.Initialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := g.SendNotification(t.Context(), finished(store.JobSucceeded, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Calls("/app/installations/678/access_tokens")); n != 1 {
		t.Fatalf("%d installation token requests for two calls; want 1 (the token is reused)", n)
	}
	for _, c := range s.Calls("/repos/") {
		if c.Auth != "token "+s.Token {
			t.Fatalf("API call authorized with %q; want the installation token", c.Auth)
		}
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})
	g = github.New(config.GitHub{AppID: "12345", InstallationID: "678", PrivateKey: string(bad), BaseURL: s.URL}, nil)
	if err := g.Initialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.SendNotification(t.Context(), finished(store.JobSucceeded, 0)); err == nil {
		t.Fatal("a JWT signed with another key was accepted")
	}
}

// TestCloneCommand: what comes from the webhook reaches the shell only
// when it is a plain URL and a 40-digit SHA.
func TestCloneCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, sha string
		ok             bool
	}{
		{"github", "https://github.com/" + repo + ".git", sha, true},
		{"loopback http", "http://172.17.0.1:8080/repo.git", sha, true},
		{"quote in URL", "https://github.com/x'; rm -rf /;'.git", sha, false},
		{"ssh URL", "git@github.com:" + repo + ".git", sha, false},
		{"option as URL", "--upload-pack=touch /tmp/x", sha, false},
		{"short sha", "https://github.com/" + repo + ".git", sha[:7], false},
		{"sha with shell", "https://github.com/" + repo + ".git", "$(reboot)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd, err := github.CloneCommand(tt.url, tt.sha)
			if (err == nil) != tt.ok {
				t.Fatalf("CloneCommand(%q, %q) = %q, %v; want ok %v", tt.url, tt.sha, cmd, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not ErrInvalidArgument", err)
			}
		})
	}
}
