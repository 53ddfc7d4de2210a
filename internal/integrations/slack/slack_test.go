package slack_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/integrations/integrationstest"
	"github.com/aetherium/aetherium/internal/integrations/slack"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// newSlack is the integration pointed at a stand-in of the Slack Web API
// and of response URLs (slack.com cannot be reached here).
func newSlack(t *testing.T) (*slack.Slack, *integrationstest.StandIn) {
	t.Helper()
	s := integrationstest.NewStandIn()
	t.Cleanup(s.Close)
	sl := slack.New(config.Slack{Token: "xoxb-test", SigningSecret: "secret", BaseURL: s.URL + "/api/",
		ResponseURLPrefix: s.URL + "/hooks/"}, nil)
	if err := sl.Initialize(t.Context()); err != nil {
		t.Fatal(err)
	}
	return sl, s
}

func done(target string) *integrations.Notification {
	zero := 0
	return &integrations.Notification{Phase: task.PhaseFinished, Job: &store.Job{ID: "j1", Status: store.JobSucceeded},
		Executions: []*store.Execution{{Command: "echo hi", ExitCode: &zero, Stdout: "hi\n"}}, Target: []byte(target)}
}

// TestSendNotification: a finished job goes to the command's response_url,
// or with chat.postMessage and the bot token to a channel; a response_url
// outside the configured prefix is refused for good; the started phase
// sends nothing.
func TestSendNotification(t *testing.T) {
	t.Parallel()
	sl, s := newSlack(t)
	if err := sl.SendNotification(t.Context(), done(`{"response_url":"`+s.URL+`/hooks/commands/1/2"}`)); err != nil {
		t.Fatal(err)
	}
	hooks := s.Calls("/hooks/commands/1/2")
	if len(hooks) != 1 || !strings.Contains(hooks[0].Body["text"].(string), "*job j1 succeeded: 1 commands*") ||
		!strings.Contains(hooks[0].Body["text"].(string), "hi") {
		t.Fatalf("response_url calls %+v; want one with the job's summary", hooks)
	}
	report := slack.ChannelReport("#builds")
	if err := sl.SendNotification(t.Context(), done(string(report.Target))); err != nil {
		t.Fatal(err)
	}
	posts := s.Calls("/api/chat.postMessage")
	if len(posts) != 1 || posts[0].Body["channel"] != "#builds" || (posts[0].Auth != "Bearer xoxb-test" && posts[0].Body["token"] != "xoxb-test") {
		t.Fatalf("chat.postMessage calls %+v; want one to #builds with the bot token", posts)
	}
	err := sl.SendNotification(t.Context(), done(`{"response_url":"http://169.254.169.254/latest/meta-data"}`))
	if !errors.Is(err, errdefs.ErrInvalidArgument) || len(s.Calls("/")) != 2 {
		t.Fatalf("a response_url outside the prefix: %v; want refused (ErrInvalidArgument, final) without a call", err)
	}
	started := done(string(report.Target))
	started.Phase = task.PhaseStarted
	if err := sl.SendNotification(t.Context(), started); err != nil || len(s.Calls("/api/chat.postMessage")) != 1 {
		t.Fatalf("the started phase posted (%v)", err)
	}
}

// TestSendNotificationOutage: a 503 from Slack is retryable; the report
// goes through once Slack is back.
func TestSendNotificationOutage(t *testing.T) {
	t.Parallel()
	sl, s := newSlack(t)
	s.FailNext(1, http.StatusServiceUnavailable)
	n := done(string(slack.ChannelReport("#builds").Target))
	if err := sl.SendNotification(t.Context(), n); err == nil || queue.IsPermanent(err) {
		t.Fatalf("during the outage: %v; want a retryable error", err)
	}
	if err := sl.SendNotification(t.Context(), n); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}
