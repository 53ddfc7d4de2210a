package config

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/aetherium/aetherium/internal/egress"
)

// Integrations configures integrations with outside services (the seed's
// integrations section). Only the shape is checked here; package
// integrations uses them.
type Integrations struct {
	// Enabled lists the integrations to start: github, slack.
	Enabled []string `yaml:"enabled"`
	// Project is the project (ID or name) integrations act in: their
	// sandboxes and jobs belong to it. Empty means the default project.
	Project string `yaml:"project"`
	// PublicURL is this API's address as its users reach it; links in
	// commit statuses, PR comments and Slack messages point under it.
	// Empty means links are left out.
	PublicURL string `yaml:"public_url"`
	// GitHub configures the github integration.
	GitHub GitHub `yaml:"github"`
	// Slack configures the slack integration.
	Slack Slack `yaml:"slack"`
	// Others are sections of integrations aetherd does not have (the seed
	// lists discord, linear, jira); they may be present but not enabled.
	Others map[string]yaml.Node `yaml:",inline"`
}

// GitHub configures the github integration.
type GitHub struct {
	// Token is a personal or app installation token.
	Token string `yaml:"token"`
	// WebhookSecret verifies X-Hub-Signature-256 on webhooks.
	WebhookSecret string `yaml:"webhook_secret"`
	// AppID and InstallationID authenticate as a GitHub App instead of Token.
	AppID          string `yaml:"app_id"`
	InstallationID string `yaml:"installation_id"`
	// PrivateKey is the GitHub App's PEM key (or a file path).
	PrivateKey string `yaml:"private_key"`
	// BaseURL is the API's URL for GitHub Enterprise
	// (https://ghe.example.com/api/v3/); empty means api.github.com.
	BaseURL string `yaml:"base_url"`
	// GitURL is where pull-request branches are pushed, over git's smart
	// HTTP with the token as a header: git_url/owner/name.git; empty means
	// https://github.com.
	GitURL string `yaml:"git_url"`
	// StatusContext names the commit statuses aetherd sets; empty means
	// "aetherium".
	StatusContext string `yaml:"status_context"`
	// Repos maps a repository's full name (owner/name) to what runs on its
	// pushes and pull requests; a repository not listed is ignored.
	Repos map[string]GitHubRepo `yaml:"repos"`
}

// GitHubRepo says what runs, in a fresh sandbox, for one repository's push
// and pull_request (opened, synchronize) events.
type GitHubRepo struct {
	// Template is the template the sandbox is made from; empty means the
	// default image (sandbox.default_image).
	Template string `yaml:"template"`
	// Commands run in order in the checked-out repository; the first that
	// fails fails the job. Required.
	Commands []string `yaml:"commands"`
	// Egress is the sandbox's egress policy (internet, none or an
	// allowlist; it must reach the clone URL); empty means the template's,
	// else network.egress.
	Egress string `yaml:"egress"`
}

// Slack configures the slack integration.
type Slack struct {
	// Token is the bot token (xoxb-…).
	Token string `yaml:"token"`
	// SigningSecret verifies slash commands (v0 signatures).
	SigningSecret string `yaml:"signing_secret"`
	// DefaultChannel receives notifications when none is configured per event.
	DefaultChannel string `yaml:"default_channel"`
	// NotifyChannels receive a message when a job an integration started
	// finishes; empty means DefaultChannel (if set).
	NotifyChannels []string `yaml:"notify_channels"`
	// BaseURL is Slack's Web API URL; empty means https://slack.com/api/.
	BaseURL string `yaml:"base_url"`
	// ResponseURLPrefix is what a slash command's response_url must start
	// with before aetherd posts to it; empty means https://hooks.slack.com/.
	ResponseURLPrefix string `yaml:"response_url_prefix"`
}

var integrationNames = []string{"github", "slack"}

func (in *Integrations) validate() []error {
	var errs []error
	for i, name := range in.Enabled {
		if !slices.Contains(integrationNames, name) {
			errs = append(errs, fmt.Errorf("config: integrations.enabled: %q is not supported (github, slack)", name))
		}
		if slices.Contains(in.Enabled[:i], name) {
			errs = append(errs, fmt.Errorf("config: integrations.enabled: %q is listed twice", name))
		}
	}
	if slices.Contains(in.Enabled, "github") {
		gh := in.GitHub
		if gh.Token == "" && (gh.AppID == "" || gh.InstallationID == "") {
			errs = append(errs, fmt.Errorf("config: integrations.github: set token, or app_id with installation_id"))
		}
		if gh.WebhookSecret == "" {
			errs = append(errs, fmt.Errorf("config: integrations.github.webhook_secret: required to verify webhooks"))
		}
		for name, repo := range gh.Repos {
			if len(repo.Commands) == 0 {
				errs = append(errs, fmt.Errorf("config: integrations.github.repos.%s.commands: list at least one command", name))
			}
			if repo.Egress != "" {
				if _, err := egress.Parse(repo.Egress); err != nil {
					errs = append(errs, fmt.Errorf("config: integrations.github.repos.%s.egress: %w", name, err))
				}
			}
		}
	}
	if slices.Contains(in.Enabled, "slack") && (in.Slack.Token == "" || in.Slack.SigningSecret == "") {
		errs = append(errs, fmt.Errorf("config: integrations.slack: token and signing_secret are required"))
	}
	return errs
}
