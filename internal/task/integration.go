package task

import (
	"encoding/json"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
)

// Report phases: when an integration is told about a job.
const (
	// PhaseStarted: the job was accepted (a commit status goes pending).
	PhaseStarted = "started"
	// PhaseFinished: the job ended, succeeded or failed.
	PhaseFinished = "finished"
)

// Report names an integration to tell about a job and where (its target,
// opaque here: a commit and pull request for github, a response_url or a
// channel for slack).
type Report struct {
	// Integration is the integration's name (github, slack).
	Integration string `json:"integration"`
	// Target is the integration's own description of where to report.
	Target json.RawMessage `json:"target"`
}

// IntegrationReportArgs tells an integration about a job: a commit status
// and PR comment on GitHub, a message on Slack. Integration calls are tasks
// so that an outage of GitHub or Slack delays them instead of losing them:
// they are retried with backoff (1 s … 1 min, 10 times, about 6 minutes in
// all). The integration's call must be idempotent. Result: nil.
type IntegrationReportArgs struct {
	Report
	// JobID is the job reported on.
	JobID string `json:"job_id"`
	// Phase is PhaseStarted or PhaseFinished.
	Phase string `json:"phase"`
}

// Kind implements Args.
func (IntegrationReportArgs) Kind() string { return KindIntegrationReport }

// Policy implements Args: default priority, 10 retries, 1 minute.
func (IntegrationReportArgs) Policy() Policy { return policies[KindIntegrationReport] }

var _ Args = IntegrationReportArgs{}

// integrationPolicy is how integration calls are queued: retried long
// enough to ride out a short outage of the outside service.
var integrationPolicy = Policy{Priority: queue.PriorityDefault, MaxRetries: 10, Timeout: time.Minute}

// IntegrationArtifactArgs brings a sandbox's git work back as a pull
// request: the worker that holds the sandbox (the task's VM) bundles the
// commit checked out at Path through the agent, and the integration pushes
// it to Branch from the host (no credential ever enters the sandbox) and
// opens a pull request into Base. Retried like a report; every step is
// idempotent (the push of the same commit, an existing pull request).
// Result: ArtifactResult.
type IntegrationArtifactArgs struct {
	// Integration is the integration's name (github).
	Integration string `json:"integration"`
	// Repo is the repository, owner/name.
	Repo string `json:"repo"`
	// Path is the git working tree in the sandbox (absolute).
	Path string `json:"path"`
	// Branch is the branch pushed; Base the one the pull request merges into.
	Branch string `json:"branch"`
	Base   string `json:"base"`
	// Title and Body describe the pull request.
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
}

// ArtifactResult is where an artifact went.
type ArtifactResult struct {
	// URL is the pull request's web address; Number its number.
	URL    string `json:"url"`
	Number int    `json:"number"`
	// Commit is the commit pushed to the branch.
	Commit string `json:"commit"`
}

// Kind implements Args.
func (IntegrationArtifactArgs) Kind() string { return KindIntegrationArtifact }

// Policy implements Args: default priority, 10 retries, 10 minutes (a
// large bundle to read and push).
func (IntegrationArtifactArgs) Policy() Policy { return policies[KindIntegrationArtifact] }

var _ Args = IntegrationArtifactArgs{}

var (
	repoRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	branchRE = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
)

// Validate checks what comes from the client: repo owner/name, path
// absolute and clean, branch and base safe ref names (git check-ref-format's
// rules on a narrow alphabet, no leading '-'), a title. Errors are
// ErrInvalidArgument.
func (a *IntegrationArtifactArgs) Validate() error {
	switch {
	case !repoRE.MatchString(a.Repo) || strings.Contains(a.Repo, ".."):
		return errdefs.InvalidArgument("repo: %q is not owner/name", a.Repo)
	case !path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path || len(a.Path) > 4096:
		return errdefs.InvalidArgument("path: %q is not a clean absolute path", a.Path)
	case a.Title == "" || len(a.Title) > 256:
		return errdefs.InvalidArgument("title: required, at most 256 bytes")
	case len(a.Body) > 65536:
		return errdefs.InvalidArgument("body: at most 65536 bytes")
	}
	if !ValidRefName(a.Branch) {
		return errdefs.InvalidArgument("branch: %q is not a safe branch name", a.Branch)
	}
	if !ValidRefName(a.Base) {
		return errdefs.InvalidArgument("base: %q is not a safe branch name", a.Base)
	}
	return nil
}

// ValidRefName reports whether name is a branch name git accepts
// (check-ref-format) on a narrow alphabet: letters, digits and ._/+-, no
// leading '-' or '/', no '..', no '//', no component starting with '.' or
// ending in '.lock', not ending in '/' or '.', at most 200 bytes.
func ValidRefName(name string) bool {
	if len(name) == 0 || len(name) > 200 || !branchRE.MatchString(name) || name[0] == '-' ||
		strings.Contains(name, "..") || strings.HasSuffix(name, ".") || name == "HEAD" {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == "" || c[0] == '.' || strings.HasSuffix(c, ".lock") {
			return false
		}
	}
	return true
}
