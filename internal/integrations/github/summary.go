package github

import (
	"github.com/aetherium/aetherium/internal/integrations"
)

// maxDescription is GitHub's limit on a commit status description.
const maxDescription = 140

// summaryLine is the commit status description: the job's headline, cut
// to GitHub's limit.
func summaryLine(n *integrations.Notification) string {
	s := []rune(integrations.Headline(n))
	if len(s) > maxDescription {
		s = append(s[:maxDescription-1], '…')
	}
	return string(s)
}

// marker is the hidden line that identifies a job's PR comment.
func marker(jobID string) string { return "<!-- aetherium job " + jobID + " -->" }

// Summary is the PR comment of a finished job: the shared summary and the
// job's marker.
func Summary(n *integrations.Notification) string {
	return integrations.Summary(n) + "\n" + marker(n.Job.ID) + "\n"
}
