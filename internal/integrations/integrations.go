// Package integrations connects Aetherium to outside services (GitHub,
// Slack): the Integration interface each one implements, and the Registry
// that receives their webhooks (verify the signature, deduplicate the
// delivery, handle the event) and delivers their queued reports.
//
// Everything an integration does outside the webhook request goes through
// the queue as an integration:report task (package task), so an outage of
// GitHub or Slack delays a report, never loses it. The API (cmd/aetherd
// mounts POST /api/v1/webhooks/{name}) and the worker (the task handler)
// use the Registry; integrations/github and integrations/slack implement
// Integration. This package never imports the API, the worker or a sandbox
// runtime.
package integrations

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// Integration is one outside service. Implementations are safe for
// concurrent use once Initialize has returned.
type Integration interface {
	// Name is the integration's name in config and in the webhook URL
	// (github, slack).
	Name() string
	// Initialize checks the configuration and prepares clients. It makes no
	// call to the service (which may be down); errors are
	// ErrInvalidArgument naming the field.
	Initialize(ctx context.Context) error
	// VerifyEvent checks a webhook request's signature (and freshness, where
	// the service signs a timestamp) and parses it. Any failure is
	// auth.ErrUnauthenticated: nothing about an unverified request is
	// trusted or acted on. It does no I/O.
	VerifyEvent(r *Request) (*Event, error)
	// HandleEvent acts on a verified, first-seen event through h (starting
	// jobs, reading state) and returns the answer to the sender. Errors are
	// classed as in errdefs.
	HandleEvent(ctx context.Context, ev *Event, h Host) (*Response, error)
	// SendNotification tells the service about a job (commit status, PR
	// comment, message). It must be idempotent: a queued report is retried
	// after any error until it succeeds or runs out of retries.
	SendNotification(ctx context.Context, n *Notification) error
	// CreateArtifact pushes a sandbox's work back to the service (a branch
	// and a pull request on GitHub); ErrNotImplemented where the service
	// has no such thing.
	CreateArtifact(ctx context.Context, a *Artifact) (*ArtifactResult, error)
	// Health reports whether the service answers with the configured
	// credentials; nil means healthy.
	Health(ctx context.Context) error
}

// Request is a webhook request as received: headers and the bounded body.
type Request struct {
	Header http.Header
	Body   []byte
	// Now is when it arrived (timestamp windows are checked against it).
	Now time.Time
}

// Event is a verified webhook delivery.
type Event struct {
	// DeliveryID identifies the delivery; a second delivery with the same ID
	// (a redelivery, a replay) is not handled again.
	DeliveryID string
	// Type is the service's event type (push, pull_request, command).
	Type string
	// RefuseDuplicate answers a duplicate delivery with 401 instead of 200:
	// for services that never redeliver (Slack), a second copy is a replay.
	RefuseDuplicate bool
	// Payload is the parsed event, for HandleEvent.
	Payload any
}

// Response is what the webhook answers: HTTP 200 with Body as JSON.
type Response struct {
	Body any
}

// Host is what HandleEvent may do, in the project integrations act in.
type Host interface {
	// StartJob makes a fresh sandbox and runs a job in it; the sandbox is
	// deleted when the job ends, and req.Report is told when it starts and
	// ends.
	StartJob(ctx context.Context, req *JobRequest) (*JobStarted, error)
	// Job returns a job of the project (ErrNotFound).
	Job(ctx context.Context, id string) (*store.Job, error)
	// Sandboxes lists the project's sandboxes that are not deleted.
	Sandboxes(ctx context.Context) ([]*store.VM, error)
}

// JobRequest is a job an integration starts in a fresh sandbox.
type JobRequest struct {
	// Name prefixes the sandbox's name (a random suffix is added).
	Name string
	// Template is the sandbox's template; empty means the default image.
	Template string
	// Egress is the sandbox's egress policy text; empty means the template's
	// or the configuration's.
	Egress string
	// Commands run in order; the first that fails fails the job.
	Commands []string
	// Report is where the integration wants to hear about the job (its own
	// Notification.Target).
	Report json.RawMessage
}

// JobStarted identifies a started job.
type JobStarted struct {
	JobID  string
	TaskID string
	VMID   string
}

// JobStarter creates the sandbox and the job of a JobRequest in project
// projectID, the job's task carrying args (with its reports and DeleteVM
// set). The API implements it (it owns placement and template lookup).
type JobStarter func(ctx context.Context, projectID string, req *JobRequest, args task.JobRunArgs) (*JobStarted, error)

// Notification is one report about a job, for SendNotification.
type Notification struct {
	// Phase is task.PhaseStarted or task.PhaseFinished.
	Phase string
	// Job is the job as it is now.
	Job *store.Job
	// Executions are its commands' runs, oldest first (finished phase).
	Executions []*store.Execution
	// Link is the job's URL under the public URL; empty when none is set.
	Link string
	// Target is the integration's own description of where to report
	// (JobRequest.Report, or a channel for notify reports).
	Target json.RawMessage
}

// Artifact is a sandbox's work to push back.
type Artifact struct {
	// Repo is the repository (owner/name) to push to.
	Repo string
	// Branch is the new branch.
	Branch string
	// Base is the branch the pull request merges into.
	Base string
	// Title and Body describe the pull request.
	Title, Body string
	// Bundle is a host file, a git bundle (hostile: it came from the
	// sandbox) whose HEAD is the work to push to Branch; empty means the
	// branch is pushed already.
	Bundle string
}

// ArtifactResult is where the artifact went.
type ArtifactResult struct {
	// URL is the pull request's web address.
	URL string
	// Number is the pull request's number.
	Number int
	// Commit is the commit pushed to the branch (empty when none was).
	Commit string
}
