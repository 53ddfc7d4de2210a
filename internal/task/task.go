// Package task is the contract between whoever asks for asynchronous work and
// the worker that does it, in the style of River's JobArgs: one typed args
// struct per kind of task (its kind, its policy, its payload and its result
// type), the exec and file types shared by the queued and the direct paths,
// and Submit, the one way a task is created.
//
// A task is a store row first and a queue message second: Submit inserts the
// row (with the sandbox, job or template rows it creates, in one transaction)
// and then enqueues a message naming it; the worker's reconciler re-sends the
// message of a pending row through Enqueue. The worker decodes the payload
// with Decode and runs the kind's handler.
//
// task is a leaf: it imports the store, the queue, errdefs and tools, never
// the worker, the API, the sandbox runtimes or the Docker SDK, so the API and
// the cluster package can create work without linking the code that does it.
package task

import (
	"slices"
	"time"

	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
)

// Kinds of task, as stored in the type column and carried by messages.
const (
	KindVMCreate       = "vm:create"
	KindVMExecute      = "vm:execute"
	KindVMDelete       = "vm:delete"
	KindJobRun         = "job:run"
	KindImageBuild     = "image:build"
	KindTemplateBuild  = "template:build"
	KindTemplateDelete = "template:delete"
	KindVMPause        = "vm:pause"
	KindVMResume       = "vm:resume"
	KindVMSnapshot     = "vm:snapshot"
	// KindIntegrationReport tells an integration about a job (GitHub, Slack).
	KindIntegrationReport = "integration:report"
	// KindIntegrationArtifact pushes a sandbox's git work as a branch and
	// opens a pull request (GitHub).
	KindIntegrationArtifact = "integration:artifact"
)

// Policy is how the queue treats a task: its priority, how often a failed
// attempt is retried, and how long one attempt may run.
type Policy struct {
	// Priority is one of the queue.Priority constants.
	Priority string
	// MaxRetries is how many times a failed attempt is retried; 0 means never.
	MaxRetries int
	// Timeout bounds one attempt.
	Timeout time.Duration
}

// policies holds each kind's default policy. Commands (vm:execute, job:run)
// are never retried: running a user's command twice is worse than reporting
// that it failed.
var policies = map[string]Policy{
	KindVMCreate:            {Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: 5 * time.Minute},
	KindVMExecute:           {Priority: queue.PriorityDefault, MaxRetries: 0, Timeout: 30 * time.Minute},
	KindVMDelete:            {Priority: queue.PriorityCritical, MaxRetries: 5, Timeout: 2 * time.Minute},
	KindJobRun:              {Priority: queue.PriorityDefault, MaxRetries: 0, Timeout: 2 * time.Hour},
	KindImageBuild:          {Priority: queue.PriorityLow, MaxRetries: 1, Timeout: 30 * time.Minute},
	KindTemplateBuild:       {Priority: queue.PriorityLow, MaxRetries: 1, Timeout: 30 * time.Minute},
	KindTemplateDelete:      {Priority: queue.PriorityDefault, MaxRetries: 3, Timeout: 2 * time.Minute},
	KindVMPause:             {Priority: queue.PriorityHigh, MaxRetries: 3, Timeout: time.Minute},
	KindVMResume:            {Priority: queue.PriorityCritical, MaxRetries: 3, Timeout: time.Minute},
	KindVMSnapshot:          {Priority: queue.PriorityDefault, MaxRetries: 1, Timeout: 15 * time.Minute},
	KindIntegrationReport:   integrationPolicy,
	KindIntegrationArtifact: {Priority: queue.PriorityDefault, MaxRetries: 10, Timeout: 10 * time.Minute},
}

// Args is the payload of one kind of task. Every args type of this package
// implements it with value receivers; its JSON encoding is the task row's
// payload.
type Args interface {
	// Kind is the task's kind, one of the Kind constants.
	Kind() string
	// Policy is how the queue treats the task. It may depend on the args
	// (a command's own timeout, a pool sandbox's lower priority).
	Policy() Policy
}

// Kinds lists every kind, sorted.
func Kinds() []string {
	kinds := make([]string, 0, len(policies))
	for k := range policies {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// DefaultPolicy is kind's policy before any args adjust it; the zero Policy
// for an unknown kind.
func DefaultPolicy(kind string) Policy { return policies[kind] }

// MaxTimeout is the longest attempt timeout any task can be given: every
// kind's default, and a vm:execute of the longest command allowed
// (MaxExecTimeout + execSlack, 24 h 2 min). The queue's stuck-job rescue
// waits at least this long, so it never takes a running task for a dead
// one. Creates that install tools are capped to it (CreateTimeout).
func MaxTimeout() time.Duration {
	m := MaxExecTimeout + execSlack
	for _, p := range policies {
		m = max(m, p.Timeout)
	}
	return m
}

// execSlack is what a vm:execute's attempt adds to its command's timeout:
// reaching the sandbox and recording the result.
const execSlack = 2 * time.Minute

// Timeout is how long one attempt of t may run: its own timeout, else its
// kind's default.
func Timeout(t *store.Task) time.Duration {
	if t.TimeoutMS > 0 {
		return time.Duration(t.TimeoutMS) * time.Millisecond
	}
	return policies[t.Type].Timeout
}
