// Package integrationstest holds what the integrations' tests need in place
// of github.com and slack.com, which cannot be reached here: webhook
// payloads shaped as GitHub's and Slack's public documentation shows them
// (abridged to the fields the integrations read, plus a few others),
// signatures computed as GitHub and Slack compute them, and in-process
// stand-ins for the parts of the GitHub REST API (commit statuses, issue
// comments, pulls, installation tokens) and the Slack Web API
// (chat.postMessage, auth.test, response_url) that aetherd calls. The
// stand-ins record every call and can be told to fail, for outage tests.
// They are stand-ins, not the services: only tests import this package.
package integrationstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignGitHub is X-Hub-Signature-256 for body: "sha256=" and the hex
// HMAC-SHA256 of the body under the webhook secret.
func SignGitHub(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// GitHubHeaders are the headers of a GitHub webhook delivery of event,
// signed with secret.
func GitHubHeaders(secret, event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/044aadd")
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Hook-ID", "292430182")
	h.Set("X-Hub-Signature-256", SignGitHub(secret, body))
	return h
}

func repository(fullName, cloneURL string) map[string]any {
	owner, name, _ := strings.Cut(fullName, "/")
	return map[string]any{"id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=", "name": name, "full_name": fullName,
		"private": false, "owner": map[string]any{"login": owner, "id": 21031067, "type": "User"},
		"html_url": "https://github.com/" + fullName, "clone_url": cloneURL, "default_branch": "main"}
}

// PushPayload is a push event's body (docs: "push" under Webhook events and
// payloads) for a push of sha to branch main of repo, cloned from cloneURL.
func PushPayload(repo, cloneURL, sha string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha, "created": false, "deleted": false,
		"forced": false, "compare": "https://github.com/" + repo + "/compare/" + sha[:12],
		"commits":     []any{map[string]any{"id": sha, "message": "Update README.md", "distinct": true}},
		"head_commit": map[string]any{"id": sha, "message": "Update README.md"},
		"repository":  repository(repo, cloneURL),
		"pusher":      map[string]any{"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
		"sender":      map[string]any{"login": "Codertocat", "id": 21031067, "type": "User"},
	})
	return b
}

// PullRequestPayload is a pull_request event's body (docs: "pull_request")
// with action, for pull request number of repo whose head is sha.
func PullRequestPayload(action, repo, cloneURL, sha string, number int) []byte {
	r := repository(repo, cloneURL)
	b, _ := json.Marshal(map[string]any{
		"action": action, "number": number,
		"pull_request": map[string]any{"url": "https://api.github.com/repos/" + repo + "/pulls/" + strconv.Itoa(number),
			"id": 279147437, "number": number, "state": "open", "title": "Update the README with new information.",
			"head": map[string]any{"label": "Codertocat:changes", "ref": "changes", "sha": sha, "repo": r},
			"base": map[string]any{"label": "Codertocat:main", "ref": "main", "sha": strings.Repeat("f", 40), "repo": r}},
		"repository": r,
		"sender":     map[string]any{"login": "Codertocat", "id": 21031067, "type": "User"},
	})
	return b
}

// SignSlack is X-Slack-Signature for body sent at ts: "v0=" and the hex
// HMAC-SHA256 of "v0:<ts>:<body>" under the signing secret.
func SignSlack(secret string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:", ts.Unix())
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// SlashCommand is the form body of the slash command "/aether <text>"
// (docs: "Slash commands", the payload Slack sends), answered through
// responseURL.
func SlashCommand(text, responseURL string) []byte {
	return []byte(url.Values{"token": {"gIkuvaNzQIHg97ATvDxqgjtO"}, "team_id": {"T0001"}, "team_domain": {"example"},
		"enterprise_id": {"E0001"}, "enterprise_name": {"Globular Construct Inc"}, "channel_id": {"C2147483705"},
		"channel_name": {"test"}, "user_id": {"U2147483697"}, "user_name": {"Steve"}, "command": {"/aether"},
		"text": {text}, "response_url": {responseURL}, "trigger_id": {"13345224609.738474920.8088930838d88f008e0"},
		"api_app_id": {"A123456"}}.Encode())
}

// SlackHeaders are the headers of a slash command sent at ts, signed with
// secret.
func SlackHeaders(secret string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("X-Slack-Signature", SignSlack(secret, ts, body))
	return h
}

// Call is one request a stand-in received.
type Call struct {
	Method, Path, Auth string
	Body               map[string]any
	// Failed says the stand-in answered it with an outage (FailNext).
	Failed bool
}

// StandIn is an in-process stand-in for the GitHub REST API or the Slack
// Web API and response URLs (both in one server). It is safe for
// concurrent use.
type StandIn struct {
	*httptest.Server
	mu       sync.Mutex
	calls    []Call
	failures int
	failWith int
	comments map[string][]map[string]any
	// Token is the installation token POST /app/installations/{id}/access_tokens
	// hands out; CheckJWT, when set, checks the app's JWT first.
	Token    string
	CheckJWT func(jwt string) error
}

// NewStandIn starts a stand-in on loopback; it is closed when the test ends
// (Close).
func NewStandIn() *StandIn {
	s := &StandIn{comments: map[string][]map[string]any{}, Token: "ghs_standin"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// FailNext makes the next n API calls answer status (503 for an outage).
func (s *StandIn) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures, s.failWith = n, status
}

// Calls returns the calls received so far whose path starts with prefix,
// failed ones included.
func (s *StandIn) Calls(prefix string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (s *StandIn) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	c := Call{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: map[string]any{}}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, _ := url.ParseQuery(string(raw))
		for k := range form {
			c.Body[k] = form.Get(k)
		}
	} else {
		json.Unmarshal(raw, &c.Body)
	}
	s.mu.Lock()
	c.Failed = s.failures > 0
	s.calls = append(s.calls, c)
	if c.Failed {
		s.failures--
		status := s.failWith
		s.mu.Unlock()
		http.Error(w, `{"message":"stand-in outage"}`, status)
		return
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(r.URL.Path, "/app/installations/"):
		s.installationToken(w, r)
	case strings.Contains(r.URL.Path, "/statuses/"):
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": 1, "state": c.Body["state"], "context": c.Body["context"],
			"description": c.Body["description"], "target_url": c.Body["target_url"]})
	case strings.HasSuffix(r.URL.Path, "/comments"):
		s.issueComments(w, r, c)
	case strings.HasSuffix(r.URL.Path, "/pulls"):
		s.pulls(w, r, c)
	case r.URL.Path == "/rate_limit":
		json.NewEncoder(w).Encode(map[string]any{"resources": map[string]any{"core": map[string]any{"limit": 5000, "remaining": 4999}}})
	case r.URL.Path == "/api/chat.postMessage":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.Body["channel"], "ts": "1503435956.000247"})
	case r.URL.Path == "/api/auth.test":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "team": "example", "user": "aether"})
	case strings.HasPrefix(r.URL.Path, "/hooks/"):
		io.WriteString(w, "ok")
	default:
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}
}

func (s *StandIn) installationToken(w http.ResponseWriter, r *http.Request) {
	jwt, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.CheckJWT != nil {
		if err := s.CheckJWT(jwt); err != nil {
			http.Error(w, `{"message":"A JSON web token could not be decoded"}`, http.StatusUnauthorized)
			return
		}
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"token": s.Token, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
}

func (s *StandIn) issueComments(w http.ResponseWriter, r *http.Request, c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodGet {
		json.NewEncoder(w).Encode(append([]map[string]any{}, s.comments[r.URL.Path]...))
		return
	}
	comment := map[string]any{"id": len(s.comments[r.URL.Path]) + 1, "body": c.Body["body"]}
	s.comments[r.URL.Path] = append(s.comments[r.URL.Path], comment)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(comment)
}

func (s *StandIn) pulls(w http.ResponseWriter, r *http.Request, c Call) {
	if r.Method == http.MethodGet {
		io.WriteString(w, "[]")
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"number": 7, "html_url": "https://github.com" + strings.TrimSuffix(r.URL.Path, "/pulls") + "/pull/7",
		"head": map[string]any{"ref": c.Body["head"]}, "base": map[string]any{"ref": c.Body["base"]}})
}

// Comments returns the comments posted on issue or pull request number of
// repo (owner/name).
func (s *StandIn) Comments(repo string, number int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.comments[fmt.Sprintf("/repos/%s/issues/%d/comments", repo, number)] {
		out = append(out, fmt.Sprint(c["body"]))
	}
	return out
}
