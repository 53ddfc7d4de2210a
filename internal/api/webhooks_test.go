package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/integrations/github"
	"github.com/aetherium/aetherium/internal/integrations/integrationstest"
	"github.com/aetherium/aetherium/internal/integrations/slack"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

const (
	ghSecret    = "It's a Secret to Everybody"
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	ghRepo      = "Codertocat/Hello-World"
	ghSHA       = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
)

// newWebhookAPI is a test API with the github and slack integrations
// enabled (their outside calls go to a stand-in; these tests make none).
func newWebhookAPI(t *testing.T) *testAPI { return newWebhookAPIWith(t, nil) }

// newWebhookAPIWith is newWebhookAPI with the Config changed by mod too.
func newWebhookAPIWith(t *testing.T, mod func(cfg *Config)) *testAPI {
	t.Helper()
	standIn := integrationstest.NewStandIn()
	t.Cleanup(standIn.Close)
	return newTestAPIWith(t, func(a *testAPI, cfg *Config) {
		gh := github.New(config.GitHub{Token: "t", WebhookSecret: ghSecret, BaseURL: standIn.URL,
			Repos: map[string]config.GitHubRepo{ghRepo: {Commands: []string{"make test"}}}}, nil)
		sl := slack.New(config.Slack{Token: "xoxb-t", SigningSecret: slackSecret, BaseURL: standIn.URL + "/api/",
			ResponseURLPrefix: standIn.URL + "/hooks/"}, nil)
		for _, in := range []integrations.Integration{gh, sl} {
			if err := in.Initialize(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		reg, err := integrations.New(integrations.Config{Integrations: []integrations.Integration{gh, sl}, Store: a.st, Queue: a.q,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Webhooks = reg
		if mod != nil {
			mod(cfg)
		}
	})
}

// TestWebhookFailedDeliveryIsNotADuplicate: a push that could not start
// its job (no worker had room) is answered with the error and forgotten,
// so GitHub's redelivery starts the job instead of being a duplicate.
func TestWebhookFailedDeliveryIsNotADuplicate(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	full.Store(true)
	a := newWebhookAPIWith(t, func(cfg *Config) {
		place := cfg.Place
		cfg.Place = func(ctx context.Context, only string, vcpus, mem int) (string, error) {
			if full.Load() {
				return "", errdefs.Unavailable("no live worker has room for another sandbox")
			}
			return place(ctx, only, vcpus, mem)
		}
	})
	body := integrationstest.PushPayload(ghRepo, "https://github.com/"+ghRepo+".git", ghSHA)
	h := integrationstest.GitHubHeaders(ghSecret, "push", "a0d1c2b3-0000-11e3-81ab-4c9367dc0958", body)
	if code, _ := a.webhook(t, "github", h, body); code != http.StatusServiceUnavailable {
		t.Fatalf("push with no room = %d; want 503", code)
	}
	full.Store(false)
	if code, out := a.webhook(t, "github", h, body); code != http.StatusOK || out["status"] != "started" {
		t.Fatalf("redelivery after the failure = %d %v; want 200 started", code, out)
	}
}

// webhook posts body with header to /api/v1/webhooks/name, with no API key.
func (a *testAPI) webhook(t *testing.T, name string, header http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/api/v1/webhooks/"+name, bytes.NewReader(body))
	req.Host = "127.0.0.1:8080"
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	a.s.ServeHTTP(rec, req)
	out := map[string]any{}
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func kinds(a *testAPI) []string {
	var out []string
	for _, m := range a.q.messages() {
		out = append(out, m.Type)
	}
	return out
}

// TestWebhookGitHubRefusesUnverified: a push whose signature is missing,
// wrong, made with another secret or over another body, or sent to an
// integration that is not enabled, is 401 and leaves nothing behind: no
// task, no delivery record (the same delivery, signed right, is then
// accepted).
func TestWebhookGitHubRefusesUnverified(t *testing.T) {
	t.Parallel()
	body := integrationstest.PushPayload(ghRepo, "https://github.com/"+ghRepo+".git", ghSHA)
	good := integrationstest.GitHubHeaders(ghSecret, "push", "d1", body)
	tests := []struct {
		name, integration string
		header            func(h http.Header)
	}{
		{"missing signature", "github", func(h http.Header) { h.Del("X-Hub-Signature-256") }},
		{"wrong secret", "github", func(h http.Header) { h.Set("X-Hub-Signature-256", integrationstest.SignGitHub("guess", body)) }},
		{"signature of another body", "github", func(h http.Header) {
			h.Set("X-Hub-Signature-256", integrationstest.SignGitHub(ghSecret, append([]byte(" "), body...)))
		}},
		{"sha1 only", "github", func(h http.Header) {
			h.Del("X-Hub-Signature-256")
			h.Set("X-Hub-Signature", "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6")
		}},
		{"no delivery ID", "github", func(h http.Header) { h.Del("X-GitHub-Delivery") }},
		{"not enabled", "gitlab", func(http.Header) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newWebhookAPI(t)
			h := good.Clone()
			tt.header(h)
			if code, out := a.webhook(t, tt.integration, h, body); code != http.StatusUnauthorized {
				t.Fatalf("webhook = %d %v; want 401", code, out)
			}
			if k := kinds(a); len(k) != 0 {
				t.Fatalf("a refused webhook enqueued %v", k)
			}
			if tasks, _ := a.st.TaskList(t.Context(), &store.TaskListParams{ProjectID: store.DefaultProjectID}); len(tasks) != 0 {
				t.Fatalf("a refused webhook made %d tasks", len(tasks))
			}
			if code, out := a.webhook(t, "github", good, body); code != http.StatusOK || out["status"] != "started" {
				t.Fatalf("the same delivery signed right = %d %v; want 200 started (no record of the refused one)", code, out)
			}
		})
	}
}

// TestWebhookGitHubPush: a signed push of a configured repository starts a
// job in a fresh sandbox that clones the exact commit and runs the
// configured commands, and queues its pending status; a redelivery (same
// X-GitHub-Delivery) does nothing; a repository not configured and an
// event not handled are ignored.
func TestWebhookGitHubPush(t *testing.T) {
	t.Parallel()
	a := newWebhookAPI(t)
	body := integrationstest.PushPayload(ghRepo, "https://github.com/"+ghRepo+".git", ghSHA)
	code, out := a.webhook(t, "github", integrationstest.GitHubHeaders(ghSecret, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body), body)
	if code != http.StatusOK || out["status"] != "started" {
		t.Fatalf("push = %d %v; want 200 started", code, out)
	}
	if got, want := strings.Join(kinds(a), ","), "vm:create,job:run,integration:report"; got != want {
		t.Fatalf("enqueued %s; want %s", got, want)
	}
	job, err := a.st.JobGet(t.Context(), &store.JobGetParams{ID: out["job_id"].(string), ProjectID: store.DefaultProjectID})
	if err != nil {
		t.Fatal(err)
	}
	wantClone, _ := github.CloneCommand("https://github.com/"+ghRepo+".git", ghSHA)
	if len(job.Commands) != 2 || job.Commands[0] != wantClone || job.Commands[1] != "cd "+github.CheckoutDir+" && make test" {
		t.Fatalf("job commands %q; want the clone of %s, then the configured command in the checkout", job.Commands, ghSHA)
	}
	vm, err := a.st.VMGet(t.Context(), &store.VMGetParams{ProjectID: store.DefaultProjectID, IDOrName: job.VMID})
	if err != nil || !strings.HasPrefix(vm.Name, "github-") || vm.ExpiresAt == nil {
		t.Fatalf("job sandbox %+v, %v; want a fresh github-… sandbox with a lifetime", vm, err)
	}
	jobTask, _ := a.st.TaskGet(t.Context(), &store.TaskGetParams{ID: out["task_id"].(string)})
	args, err := task.Decode[task.JobRunArgs](jobTask)
	if err != nil || !args.DeleteVM || len(args.Reports) != 1 || args.Reports[0].Integration != "github" {
		t.Fatalf("job:run args %+v, %v; want its sandbox deleted after and a github report", args, err)
	}

	again := integrationstest.GitHubHeaders(ghSecret, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body)
	if code, out := a.webhook(t, "github", again, body); code != http.StatusOK || out["status"] != "duplicate" {
		t.Fatalf("redelivery = %d %v; want 200 duplicate", code, out)
	}
	// The delivery ID is not signed: the same signed body under a new one
	// is a replay, not a new push.
	replay := integrationstest.GitHubHeaders(ghSecret, "push", "0b989ba4-242f-11e5-81e1-c7b6966d2516", body)
	if code, out := a.webhook(t, "github", replay, body); code != http.StatusOK || out["status"] != "duplicate" {
		t.Fatalf("the body again under a new delivery ID = %d %v; want 200 duplicate", code, out)
	}
	other := integrationstest.PushPayload("someone/else", "https://github.com/someone/else.git", ghSHA)
	if code, out := a.webhook(t, "github", integrationstest.GitHubHeaders(ghSecret, "push", "d-other", other), other); code != http.StatusOK || out["status"] != "ignored" {
		t.Fatalf("push of an unconfigured repo = %d %v; want 200 ignored", code, out)
	}
	closed := integrationstest.PullRequestPayload("closed", ghRepo, "https://github.com/"+ghRepo+".git", ghSHA, 2)
	if code, out := a.webhook(t, "github", integrationstest.GitHubHeaders(ghSecret, "pull_request", "d-closed", closed), closed); code != http.StatusOK || out["status"] != "ignored" {
		t.Fatalf("closed PR = %d %v; want 200 ignored", code, out)
	}
	if n := len(a.q.messages()); n != 3 {
		t.Fatalf("%d messages after the redelivery and the ignored events; want still 3", n)
	}
	big := bytes.Repeat([]byte("x"), maxWebhookBody+1)
	if code, _ := a.webhook(t, "github", integrationstest.GitHubHeaders(ghSecret, "push", "d-big", big), big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the bound = %d; want 413", code)
	}
}

// TestWebhookGitHubPullRequest: an opened pull request is reported on the
// PR (its number is in the report target) and checks out the head commit.
func TestWebhookGitHubPullRequest(t *testing.T) {
	t.Parallel()
	a := newWebhookAPI(t)
	body := integrationstest.PullRequestPayload("opened", ghRepo, "https://github.com/"+ghRepo+".git", ghSHA, 2)
	code, out := a.webhook(t, "github", integrationstest.GitHubHeaders(ghSecret, "pull_request", "pr-1", body), body)
	if code != http.StatusOK || out["status"] != "started" {
		t.Fatalf("pull_request = %d %v; want 200 started", code, out)
	}
	jobTask, _ := a.st.TaskGet(t.Context(), &store.TaskGetParams{ID: out["task_id"].(string)})
	args, _ := task.Decode[task.JobRunArgs](jobTask)
	var target struct {
		Repo, SHA string
		PR        int
	}
	json.Unmarshal(args.Reports[0].Target, &target)
	if target.Repo != ghRepo || target.SHA != ghSHA || target.PR != 2 {
		t.Fatalf("report target %s; want %s@%s PR 2", args.Reports[0].Target, ghRepo, ghSHA)
	}
}

// TestWebhookSlack: a signed slash command is answered at once; run starts
// a job reported through the command's response_url; a stale timestamp, a
// wrong signature and a replay of a handled command are 401 with nothing
// enqueued.
func TestWebhookSlack(t *testing.T) {
	t.Parallel()
	a := newWebhookAPI(t)
	now := time.Now()
	ls := integrationstest.SlashCommand("ls", "https://hooks.slack.com/commands/1234/5678")
	code, out := a.webhook(t, "slack", integrationstest.SlackHeaders(slackSecret, now, ls), ls)
	if code != http.StatusOK || out["text"] != "no sandboxes" || out["response_type"] != "ephemeral" {
		t.Fatalf("/aether ls = %d %v; want an ephemeral 'no sandboxes'", code, out)
	}
	if code, _ := a.webhook(t, "slack", integrationstest.SlackHeaders(slackSecret, now, ls), ls); code != http.StatusUnauthorized {
		t.Fatalf("replay of a handled command = %d; want 401", code)
	}
	recased := integrationstest.SlackHeaders(slackSecret, now, ls)
	recased.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(recased.Get("X-Slack-Signature"), "v0=")))
	if code, _ := a.webhook(t, "slack", recased, ls); code != http.StatusUnauthorized {
		t.Fatalf("replay with the signature's hex in upper case = %d; want 401", code)
	}
	stale := integrationstest.SlashCommand("ls", "")
	if code, _ := a.webhook(t, "slack", integrationstest.SlackHeaders(slackSecret, now.Add(-6*time.Minute), stale), stale); code != http.StatusUnauthorized {
		t.Fatalf("a command signed 6 minutes ago = %d; want 401", code)
	}
	if code, _ := a.webhook(t, "slack", integrationstest.SlackHeaders("wrong", now, stale), stale); code != http.StatusUnauthorized {
		t.Fatalf("a command signed with another secret = %d; want 401", code)
	}
	if k := kinds(a); len(k) != 0 {
		t.Fatalf("enqueued %v before any run", k)
	}

	run := integrationstest.SlashCommand("run default echo hi", "https://hooks.slack.com/commands/1234/5678")
	code, out = a.webhook(t, "slack", integrationstest.SlackHeaders(slackSecret, now, run), run)
	if code != http.StatusOK || !strings.HasPrefix(out["text"].(string), "Started job ") {
		t.Fatalf("/aether run = %d %v; want 'Started job …'", code, out)
	}
	if got, want := strings.Join(kinds(a), ","), "vm:create,job:run,integration:report"; got != want {
		t.Fatalf("enqueued %s; want %s", got, want)
	}
}
