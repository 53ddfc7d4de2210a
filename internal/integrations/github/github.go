// Package github is the GitHub integration: push and pull_request webhooks
// (verified by X-Hub-Signature-256) start a job in a fresh sandbox that
// clones the exact commit and runs the repository's configured commands;
// the job is reported back as a commit status (pending, then success or
// failure, linking to the job) and, for pull requests, a comment that
// summarises the commands, their exit codes and the output's tail.
// CreateArtifact opens a pull request for a branch pushed from a sandbox.
//
// It speaks the GitHub REST API through go-github, authenticated by a token
// or as a GitHub App (a JWT exchanged for an installation token); BaseURL
// points it at GitHub Enterprise. cmd/aetherd builds it; the integrations
// Registry drives it.
package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	gh "github.com/google/go-github/v75/github"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// Name is the integration's name.
const Name = "github"

// defaultContext names the commit statuses when the config names none.
const defaultContext = "aetherium"

// CheckoutDir is where a job clones the repository in its sandbox; the
// configured commands run there.
const CheckoutDir = "/tmp/src"

// GitHub is the integration. It is safe for concurrent use.
type GitHub struct {
	cfg    config.GitHub
	http   *http.Client
	client *gh.Client
	// app mints installation tokens (GitHub App auth); nil with a token.
	app *appTransport
}

var _ integrations.Integration = (*GitHub)(nil)

// New returns the integration for cfg; hc carries its API calls (nil means
// a client with a 30 s timeout). Call Initialize before use.
func New(cfg config.GitHub, hc *http.Client) *GitHub {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.StatusContext == "" {
		cfg.StatusContext = defaultContext
	}
	return &GitHub{cfg: cfg, http: hc}
}

// Name implements integrations.Integration.
func (g *GitHub) Name() string { return Name }

// Initialize implements integrations.Integration: it builds the API client
// (token, or GitHub App) for the configured base URL.
func (g *GitHub) Initialize(ctx context.Context) error {
	hc := *g.http
	switch {
	case g.cfg.Token != "":
	case g.cfg.AppID != "" && g.cfg.InstallationID != "":
		tr, err := newAppTransport(g.cfg, hc.Transport)
		if err != nil {
			return err
		}
		hc.Transport, g.app = tr, tr
	default:
		return errdefs.InvalidArgument("integrations.github: set token, or app_id with installation_id")
	}
	c := gh.NewClient(&hc)
	if g.cfg.Token != "" {
		c = c.WithAuthToken(g.cfg.Token)
	}
	if g.cfg.BaseURL != "" {
		u, err := url.Parse(strings.TrimRight(g.cfg.BaseURL, "/") + "/")
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return errdefs.InvalidArgument("integrations.github.base_url: %q is not an http(s) URL", g.cfg.BaseURL)
		}
		c.BaseURL = u
	}
	if g.cfg.GitURL != "" {
		if u, err := url.Parse(g.cfg.GitURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
			return errdefs.InvalidArgument("integrations.github.git_url: %q is not an http(s) URL without credentials", g.cfg.GitURL)
		}
	}
	g.client = c
	return nil
}

// Health implements integrations.Integration: the rate-limit endpoint
// answers with the configured credentials.
func (g *GitHub) Health(ctx context.Context) error {
	_, _, err := g.client.RateLimit.Get(ctx)
	return classify(err)
}

// target is where a job is reported: a commit, and its pull request if any.
type target struct {
	Repo string `json:"repo"`
	SHA  string `json:"sha"`
	PR   int    `json:"pr,omitempty"`
}

// VerifyEvent implements integrations.Integration: X-Hub-Signature-256
// must be the HMAC-SHA256 of the body under the webhook secret.
func (g *GitHub) VerifyEvent(r *integrations.Request) (*integrations.Event, error) {
	if err := gh.ValidateSignature(r.Header.Get(gh.SHA256SignatureHeader), r.Body, []byte(g.cfg.WebhookSecret)); err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	id, typ := r.Header.Get(gh.DeliveryIDHeader), r.Header.Get(gh.EventTypeHeader)
	if id == "" || typ == "" || len(id) > 100 {
		return nil, errors.New("github: X-GitHub-Delivery and X-GitHub-Event are required")
	}
	body := r.Body
	if mt := r.Header.Get("Content-Type"); strings.HasPrefix(mt, "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("github: form body: %w", err)
		}
		body = []byte(form.Get("payload"))
	}
	// X-GitHub-Delivery is not signed: a captured body could come back under
	// any ID. The signature is, and a real redelivery resends the same body,
	// so the body's signature (lower-cased: its hex is taken in either case)
	// is the delivery ID deduplicated on.
	return &integrations.Event{DeliveryID: strings.ToLower(r.Header.Get(gh.SHA256SignatureHeader)), Type: typ, Payload: body}, nil
}

// HandleEvent implements integrations.Integration: push and pull_request
// (opened, reopened, synchronize) of a configured repository start its job;
// ping answers pong; anything else is ignored.
func (g *GitHub) HandleEvent(ctx context.Context, ev *integrations.Event, h integrations.Host) (*integrations.Response, error) {
	if ev.Type == "ping" {
		return respond("pong"), nil
	}
	parsed, err := gh.ParseWebHook(ev.Type, ev.Payload.([]byte))
	if err != nil {
		return respond("ignored"), nil // an event type go-github does not know
	}
	var t target
	var cloneURL string
	switch e := parsed.(type) {
	case *gh.PushEvent:
		if e.GetDeleted() {
			return respond("ignored"), nil
		}
		t = target{Repo: e.GetRepo().GetFullName(), SHA: e.GetAfter()}
		cloneURL = e.GetRepo().GetCloneURL()
	case *gh.PullRequestEvent:
		switch e.GetAction() {
		case "opened", "reopened", "synchronize":
		default:
			return respond("ignored"), nil
		}
		t = target{Repo: e.GetRepo().GetFullName(), SHA: e.GetPullRequest().GetHead().GetSHA(), PR: e.GetNumber()}
		cloneURL = e.GetPullRequest().GetHead().GetRepo().GetCloneURL()
	default:
		return respond("ignored"), nil
	}
	repo, ok := g.cfg.Repos[t.Repo]
	if !ok {
		return respond("ignored"), nil
	}
	clone, err := CloneCommand(cloneURL, t.SHA)
	if err != nil {
		return nil, err
	}
	report, _ := json.Marshal(t)
	cmds := []string{clone}
	for _, c := range repo.Commands {
		cmds = append(cmds, "cd "+CheckoutDir+" && "+c)
	}
	started, err := h.StartJob(ctx, &integrations.JobRequest{Name: "github", Template: repo.Template, Egress: repo.Egress,
		Commands: cmds, Report: report})
	if err != nil {
		return nil, err
	}
	return &integrations.Response{Body: map[string]string{"status": "started", "job_id": started.JobID, "task_id": started.TaskID}}, nil
}

func respond(status string) *integrations.Response {
	return &integrations.Response{Body: map[string]string{"status": status}}
}

var (
	shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	// urlRE admits the characters of clone URLs, none the shell reads
	// inside single quotes.
	urlRE = regexp.MustCompile(`^https?://[A-Za-z0-9._~:/@%+=-]+$`)
)

// CloneCommand is the shell command that clones cloneURL into CheckoutDir
// and checks out exactly sha. Both come from the webhook: a URL that is not
// plain http(s) or a sha that is not 40 hex digits is ErrInvalidArgument.
func CloneCommand(cloneURL, sha string) (string, error) {
	if !shaRE.MatchString(sha) {
		return "", errdefs.InvalidArgument("github: commit %q is not a 40-digit SHA-1", sha)
	}
	if !urlRE.MatchString(cloneURL) {
		return "", errdefs.InvalidArgument("github: clone URL %q is not a plain http(s) URL", cloneURL)
	}
	return fmt.Sprintf("rm -rf %[1]s && git clone -q --no-checkout '%[2]s' %[1]s && cd %[1]s && git -c advice.detachedHead=false checkout -q %[3]s && git log -1 --format='checked out %%H'",
		CheckoutDir, cloneURL, sha), nil
}

// SendNotification implements integrations.Integration: the commit status
// (pending when started; success or failure when finished, linking to the
// job) and, when finished on a pull request, one summary comment (marked
// with the job's ID, so a retried report does not post it twice).
func (g *GitHub) SendNotification(ctx context.Context, n *integrations.Notification) error {
	t, err := integrations.DecodeTarget[target](n.Target)
	if err != nil {
		return err
	}
	owner, repo, ok := strings.Cut(t.Repo, "/")
	if !ok {
		return errdefs.InvalidArgument("github: repo %q is not owner/name", t.Repo)
	}
	state, desc := "pending", "job "+n.Job.ID+" is running"
	if n.Phase == task.PhaseFinished {
		state, desc = "success", summaryLine(n)
		if n.Job.Status != store.JobSucceeded {
			state = "failure"
		}
	}
	st := &gh.RepoStatus{State: &state, Description: &desc, Context: &g.cfg.StatusContext}
	if n.Link != "" {
		st.TargetURL = &n.Link
	}
	if _, _, err := g.client.Repositories.CreateStatus(ctx, owner, repo, t.SHA, st); err != nil {
		return classify(err)
	}
	if n.Phase != task.PhaseFinished || t.PR == 0 {
		return nil
	}
	return g.comment(ctx, owner, repo, t.PR, n)
}

// comment posts the job's summary on the pull request unless a comment
// carrying its marker is there already.
func (g *GitHub) comment(ctx context.Context, owner, repo string, pr int, n *integrations.Notification) error {
	mark := marker(n.Job.ID)
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		list, resp, err := g.client.Issues.ListComments(ctx, owner, repo, pr, opts)
		if err != nil {
			return classify(err)
		}
		for _, c := range list {
			if strings.Contains(c.GetBody(), mark) {
				return nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	body := Summary(n)
	_, _, err := g.client.Issues.CreateComment(ctx, owner, repo, pr, &gh.IssueComment{Body: &body})
	return classify(err)
}

// CreateArtifact implements integrations.Integration: it pushes a.Bundle's
// HEAD to a.Branch (see pushBundle; skipped when a.Bundle is empty) and
// opens a pull request from a.Branch into a.Base. A pull request that
// exists already for the branch is returned as it is.
func (g *GitHub) CreateArtifact(ctx context.Context, a *integrations.Artifact) (*integrations.ArtifactResult, error) {
	owner, repo, ok := strings.Cut(a.Repo, "/")
	if !ok {
		return nil, errdefs.InvalidArgument("github: repo %q is not owner/name", a.Repo)
	}
	var commit string
	if a.Bundle != "" {
		var err error
		if commit, err = g.pushBundle(ctx, a); err != nil {
			return nil, err
		}
	}
	open, _, err := g.client.PullRequests.List(ctx, owner, repo, &gh.PullRequestListOptions{Head: owner + ":" + a.Branch, State: "open"})
	if err != nil {
		return nil, classify(err)
	}
	if len(open) > 0 {
		return &integrations.ArtifactResult{URL: open[0].GetHTMLURL(), Number: open[0].GetNumber(), Commit: commit}, nil
	}
	pr, _, err := g.client.PullRequests.Create(ctx, owner, repo, &gh.NewPullRequest{Title: &a.Title, Head: &a.Branch, Base: &a.Base, Body: &a.Body})
	if err != nil {
		return nil, classify(err)
	}
	return &integrations.ArtifactResult{URL: pr.GetHTMLURL(), Number: pr.GetNumber(), Commit: commit}, nil
}

// classify marks GitHub's refusals that no retry can fix as permanent
// (4xx but 408, 429 and rate limits); everything else is retried.
func classify(err error) error {
	var rl *gh.RateLimitError
	var ab *gh.AbuseRateLimitError
	var er *gh.ErrorResponse
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rl), errors.As(err, &ab):
		return err
	case errors.As(err, &er) && er.Response != nil:
		code := er.Response.StatusCode
		if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
			return integrations.Permanent(err)
		}
	}
	return err
}
