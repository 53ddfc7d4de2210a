// Package slack is the Slack integration: the /aether slash command
// (verified by Slack's v0 signature within a 5-minute timestamp window; a
// replayed request is refused) with run, status and ls, answered at once
// and, for run, followed up through the command's response_url when the
// job ends; and chat.postMessage notifications of finished jobs to
// configured channels with the bot token. It uses slack-go; cmd/aetherd
// builds it and the integrations Registry drives it.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/task"
)

// Name is the integration's name.
const Name = "slack"

const defaultResponsePrefix = "https://hooks.slack.com/"

// Slack is the integration. It is safe for concurrent use.
type Slack struct {
	cfg    config.Slack
	http   *http.Client
	client *sl.Client
}

var _ integrations.Integration = (*Slack)(nil)

// New returns the integration for cfg; hc carries its calls (nil means a
// client with a 30 s timeout). Call Initialize before use.
func New(cfg config.Slack, hc *http.Client) *Slack {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.ResponseURLPrefix == "" {
		cfg.ResponseURLPrefix = defaultResponsePrefix
	}
	return &Slack{cfg: cfg, http: hc}
}

// Name implements integrations.Integration.
func (s *Slack) Name() string { return Name }

// Initialize implements integrations.Integration.
func (s *Slack) Initialize(ctx context.Context) error {
	if s.cfg.Token == "" || s.cfg.SigningSecret == "" {
		return errdefs.InvalidArgument("integrations.slack: token and signing_secret are required")
	}
	opts := []sl.Option{sl.OptionHTTPClient(s.http)}
	if s.cfg.BaseURL != "" {
		opts = append(opts, sl.OptionAPIURL(strings.TrimRight(s.cfg.BaseURL, "/")+"/"))
	}
	s.client = sl.New(s.cfg.Token, opts...)
	return nil
}

// Health implements integrations.Integration: auth.test accepts the token.
func (s *Slack) Health(ctx context.Context) error {
	_, err := s.client.AuthTestContext(ctx)
	return classify(err)
}

// command is a verified slash command.
type command struct {
	Text        string
	ResponseURL string
	UserID      string
}

// VerifyEvent implements integrations.Integration: X-Slack-Signature must
// be v0=HMAC-SHA256("v0:<timestamp>:<body>") under the signing secret, with
// X-Slack-Request-Timestamp within 5 minutes. The signature is the
// delivery ID, and a duplicate is refused: Slack never resends a slash
// command, so a second copy is a replay.
func (s *Slack) VerifyEvent(r *integrations.Request) (*integrations.Event, error) {
	v, err := sl.NewSecretsVerifier(r.Header, s.cfg.SigningSecret)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	v.Write(r.Body)
	if err := v.Ensure(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, fmt.Errorf("slack: form body: %w", err)
	}
	// The signature is hex, which the verifier takes in either case: the
	// delivery ID is its lower-case form, so a re-cased copy is a replay too.
	return &integrations.Event{DeliveryID: strings.ToLower(r.Header.Get("X-Slack-Signature")), Type: "command", RefuseDuplicate: true,
		Payload: &command{Text: form.Get("text"), ResponseURL: form.Get("response_url"), UserID: form.Get("user_id")}}, nil
}

// target is where a job is reported: the command's response_url, or a
// channel.
type target struct {
	ResponseURL string `json:"response_url,omitempty"`
	Channel     string `json:"channel,omitempty"`
}

// ChannelReport is the report that posts a finished job to channel.
func ChannelReport(channel string) task.Report {
	return task.Report{Integration: Name, Target: []byte(fmt.Sprintf(`{"channel":%q}`, channel))}
}

const usage = "Usage: `/aether run <template|default> <command>`, `/aether status <job-id>`, `/aether ls`"

// HandleEvent implements integrations.Integration: the answer is an
// ephemeral message, sent at once.
func (s *Slack) HandleEvent(ctx context.Context, ev *integrations.Event, h integrations.Host) (*integrations.Response, error) {
	c := ev.Payload.(*command)
	verb, rest, _ := strings.Cut(strings.TrimSpace(c.Text), " ")
	var text string
	var err error
	switch verb {
	case "run":
		text, err = s.run(ctx, c, strings.TrimSpace(rest), h)
	case "status":
		text, err = status(ctx, strings.TrimSpace(rest), h)
	case "ls":
		text, err = list(ctx, h)
	default:
		text = usage
	}
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrUnprocessable) {
		text, err = err.Error(), nil // the user's mistake: told in Slack
	}
	if err != nil {
		return nil, err
	}
	return &integrations.Response{Body: &sl.Msg{ResponseType: sl.ResponseTypeEphemeral, Text: text}}, nil
}

func (s *Slack) run(ctx context.Context, c *command, args string, h integrations.Host) (string, error) {
	tpl, cmd, ok := strings.Cut(args, " ")
	if !ok || strings.TrimSpace(cmd) == "" {
		return usage, nil
	}
	if tpl == "default" {
		tpl = ""
	}
	t := target{}
	if strings.HasPrefix(c.ResponseURL, s.cfg.ResponseURLPrefix) {
		t.ResponseURL = c.ResponseURL
	}
	report := []byte(fmt.Sprintf(`{"response_url":%q}`, t.ResponseURL))
	started, err := h.StartJob(ctx, &integrations.JobRequest{Name: "slack", Template: tpl, Commands: []string{strings.TrimSpace(cmd)}, Report: report})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Started job %s in a fresh sandbox; its result follows here.", started.JobID), nil
}

func status(ctx context.Context, id string, h integrations.Host) (string, error) {
	if id == "" {
		return usage, nil
	}
	job, err := h.Job(ctx, id)
	if err != nil {
		return "", err
	}
	text := fmt.Sprintf("job %s: %s (%d commands)", job.ID, job.Status, len(job.Commands))
	if job.Error != "" {
		text += ": " + job.Error
	}
	return text, nil
}

// maxListed bounds the sandboxes /aether ls shows.
const maxListed = 20

func list(ctx context.Context, h integrations.Host) (string, error) {
	vms, err := h.Sandboxes(ctx)
	if err != nil {
		return "", err
	}
	if len(vms) == 0 {
		return "no sandboxes", nil
	}
	var b strings.Builder
	for i, vm := range vms {
		if i == maxListed {
			fmt.Fprintf(&b, "… and %d more\n", len(vms)-maxListed)
			break
		}
		fmt.Fprintf(&b, "%s  %s  %s\n", vm.ID, vm.Name, vm.Status)
	}
	return b.String(), nil
}

// SendNotification implements integrations.Integration: a finished job is
// posted to the command's response_url or with chat.postMessage to a
// channel; the started phase sends nothing (the command's answer said so).
func (s *Slack) SendNotification(ctx context.Context, n *integrations.Notification) error {
	if n.Phase != task.PhaseFinished {
		return nil
	}
	t, err := integrations.DecodeTarget[target](n.Target)
	if err != nil {
		return err
	}
	text := mrkdwn(integrations.Summary(n))
	switch {
	case t.ResponseURL != "":
		if !strings.HasPrefix(t.ResponseURL, s.cfg.ResponseURLPrefix) {
			return errdefs.InvalidArgument("slack: response_url is not under %s", s.cfg.ResponseURLPrefix)
		}
		return classify(sl.PostWebhookCustomHTTPContext(ctx, t.ResponseURL, s.http,
			&sl.WebhookMessage{Text: text, ResponseType: sl.ResponseTypeInChannel, ReplaceOriginal: false}))
	case t.Channel != "":
		_, _, err := s.client.PostMessageContext(ctx, t.Channel, sl.MsgOptionText(text, false))
		return classify(err)
	}
	return nil // a command whose response_url was refused: nowhere to report
}

// CreateArtifact implements integrations.Integration: Slack has no
// artifacts.
func (s *Slack) CreateArtifact(context.Context, *integrations.Artifact) (*integrations.ArtifactResult, error) {
	return nil, fmt.Errorf("slack has no artifacts: %w", errdefs.ErrNotImplemented)
}

// mrkdwn turns the summary's Markdown bold into Slack's, after escaping
// the three characters Slack gives meaning (&, <, >), so a command's output
// cannot mention a channel (<!channel>) or dress up a link.
func mrkdwn(md string) string {
	return strings.ReplaceAll(slackEscaper.Replace(md), "**", "*")
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// classify marks Slack's refusals that no retry can fix as permanent: an
// error answer (ok: false, such as channel_not_found) and 4xx statuses but
// 429; rate limits, 5xx and network errors are retried.
func classify(err error) error {
	var sc sl.StatusCodeError
	var se sl.SlackErrorResponse
	var rl *sl.RateLimitedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rl):
		return err
	case errors.As(err, &sc):
		if !sc.Retryable() {
			return integrations.Permanent(err)
		}
	case errors.As(err, &se):
		return integrations.Permanent(err)
	}
	return err
}
