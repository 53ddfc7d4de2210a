package task

import (
	"encoding/json"
	"time"

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
