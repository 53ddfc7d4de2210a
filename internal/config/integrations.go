package config

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Integrations configures integrations with outside services (the seed's
// integrations section). Only the shape is checked here; package
// integrations uses them.
type Integrations struct {
	// Enabled lists the integrations to start: github, slack.
	Enabled []string `yaml:"enabled"`
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
	// BaseURL is the API's URL for GitHub Enterprise; empty means api.github.com.
	BaseURL string `yaml:"base_url"`
}

// Slack configures the slack integration.
type Slack struct {
	// Token is the bot token (xoxb-…).
	Token string `yaml:"token"`
	// SigningSecret verifies slash commands (v0 signatures).
	SigningSecret string `yaml:"signing_secret"`
	// DefaultChannel receives notifications when none is configured per event.
	DefaultChannel string `yaml:"default_channel"`
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
	}
	if slices.Contains(in.Enabled, "slack") && (in.Slack.Token == "" || in.Slack.SigningSecret == "") {
		errs = append(errs, fmt.Errorf("config: integrations.slack: token and signing_secret are required"))
	}
	return errs
}
