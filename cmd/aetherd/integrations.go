package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/integrations"
	"github.com/aetherium/aetherium/internal/integrations/github"
	"github.com/aetherium/aetherium/internal/integrations/slack"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/worker"
)

// openIntegrations builds and initializes the integrations listed in
// integrations.enabled and their registry; nil when none is enabled.
func openIntegrations(ctx context.Context, cfg *config.Integrations, st store.Store, q queue.Queue, log *slog.Logger) (*integrations.Registry, error) {
	if len(cfg.Enabled) == 0 {
		return nil, nil
	}
	var list []integrations.Integration
	var notify []task.Report
	for _, name := range cfg.Enabled {
		var in integrations.Integration
		switch name {
		case github.Name:
			in = github.New(cfg.GitHub, nil)
		case slack.Name:
			in = slack.New(cfg.Slack, nil)
			channels := cfg.Slack.NotifyChannels
			if len(channels) == 0 && cfg.Slack.DefaultChannel != "" {
				channels = []string{cfg.Slack.DefaultChannel}
			}
			for _, c := range channels {
				notify = append(notify, slack.ChannelReport(c))
			}
		default:
			return nil, fmt.Errorf("integrations.enabled: %q is not supported", name)
		}
		if err := in.Initialize(ctx); err != nil {
			return nil, fmt.Errorf("integration %s: %w", name, err)
		}
		list = append(list, in)
	}
	return integrations.New(integrations.Config{Integrations: list, Store: st, Queue: q, Project: cfg.Project,
		PublicURL: cfg.PublicURL, Notify: notify, Logger: log})
}

// reporter is the worker's view of hooks: nil (no integrations) stays a
// nil interface.
func reporter(hooks *integrations.Registry) worker.Reporter {
	if hooks == nil {
		return nil
	}
	return hooks
}
