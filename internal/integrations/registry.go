package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// Store is the part of store.Store the Registry uses.
type Store interface {
	task.Store
	WebhookDeliveryInsert(ctx context.Context, params *store.WebhookDeliveryInsertParams) error
	WebhookDeliveryDelete(ctx context.Context, params *store.WebhookDeliveryInsertParams) error
	ProjectGet(ctx context.Context, idOrName string) (*store.Project, error)
	JobGet(ctx context.Context, params *store.JobGetParams) (*store.Job, error)
	ExecutionList(ctx context.Context, params *store.ExecutionListParams) ([]*store.Execution, error)
	VMList(ctx context.Context, params *store.VMListParams) ([]*store.VM, error)
}

// Config configures a Registry.
type Config struct {
	// Integrations are the enabled integrations, initialized. Two with one
	// name panic.
	Integrations []Integration
	// Store records deliveries and reads jobs. Required.
	Store Store
	// Queue carries report tasks. Required.
	Queue task.Enqueuer
	// Project is the project (ID or name) integrations act in; empty means
	// the default project.
	Project string
	// PublicURL is the API's public address, for links to jobs; empty means
	// no links.
	PublicURL string
	// Notify are reports added to every job an integration starts (Slack
	// channels), told when it finishes.
	Notify []task.Report
	// Logger receives the registry's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Registry holds the enabled integrations. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	byName map[string]Integration
}

// New returns a Registry of cfg.Integrations.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil || cfg.Queue == nil {
		return nil, errors.New("integrations: Store and Queue are required")
	}
	if cfg.Project == "" {
		cfg.Project = store.DefaultProjectID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	r := &Registry{cfg: cfg, log: cfg.Logger.With("component", "integrations"), byName: map[string]Integration{}}
	for _, in := range cfg.Integrations {
		if _, dup := r.byName[in.Name()]; dup {
			panic("integrations: two integrations named " + in.Name())
		}
		r.byName[in.Name()] = in
	}
	return r, nil
}

// Names lists the enabled integrations.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	return names
}

// Health checks every integration, by name.
func (r *Registry) Health(ctx context.Context) map[string]error {
	out := map[string]error{}
	for n, in := range r.byName {
		out[n] = in.Health(ctx)
	}
	return out
}

// HandleWebhook verifies, deduplicates and handles one webhook delivery to
// integration name, starting jobs through start. An unknown integration,
// a bad or missing signature, a stale timestamp and a replay (where the
// integration refuses duplicates) are auth.ErrUnauthenticated, before any
// work or write. A redelivery of a handled delivery answers
// {"status":"duplicate"} and does nothing.
func (r *Registry) HandleWebhook(ctx context.Context, name string, req *Request, start JobStarter) (*Response, error) {
	in, ok := r.byName[name]
	if !ok {
		return nil, auth.ErrUnauthenticated
	}
	ev, err := in.VerifyEvent(req)
	if err != nil {
		r.log.WarnContext(ctx, "webhook refused", slog.String("integration", name), slog.Any("err", err))
		return nil, auth.ErrUnauthenticated
	}
	proj, err := r.cfg.Store.ProjectGet(ctx, r.cfg.Project)
	if err != nil {
		return nil, fmt.Errorf("integrations: project %s: %w", r.cfg.Project, err)
	}
	delivery := &store.WebhookDeliveryInsertParams{DeliveryID: ev.DeliveryID, Event: ev.Type, Integration: name, ProjectID: proj.ID}
	err = r.cfg.Store.WebhookDeliveryInsert(ctx, delivery)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		if ev.RefuseDuplicate {
			return nil, auth.ErrUnauthenticated
		}
		return &Response{Body: map[string]string{"status": "duplicate"}}, nil
	}
	if err != nil {
		return nil, err
	}
	log := r.log.With(slog.String("integration", name), slog.String("delivery_id", ev.DeliveryID), slog.String("event", ev.Type))
	log.InfoContext(ctx, "webhook accepted")
	resp, err := in.HandleEvent(ctx, ev, &host{r: r, in: in, projectID: proj.ID, start: start, log: log})
	if err != nil && !ev.RefuseDuplicate {
		// Nothing started (no worker had room, the store was down): forget
		// the delivery, so the sender's redelivery is handled, not refused
		// as a duplicate. A refused replay (Slack) stays refused.
		if derr := r.cfg.Store.WebhookDeliveryDelete(context.WithoutCancel(ctx), delivery); derr != nil {
			log.WarnContext(ctx, "forget a failed delivery", slog.Any("err", derr))
		}
	}
	return resp, err
}

// Report delivers one integration:report task to its integration: it reads
// the job and its executions and calls SendNotification. A report of the
// started phase for a job that has already ended does nothing (a retried
// "pending" must not overwrite the result).
func (r *Registry) Report(ctx context.Context, a *task.IntegrationReportArgs) error {
	in, ok := r.byName[a.Integration]
	if !ok {
		return errdefs.FailedPrecondition("integration %q is not enabled", a.Integration)
	}
	job, err := r.cfg.Store.JobGet(ctx, &store.JobGetParams{ID: a.JobID})
	if err != nil {
		return err
	}
	n := &Notification{Phase: a.Phase, Job: job, Target: a.Target, Link: r.JobLink(job.ID)}
	if a.Phase == task.PhaseStarted && (job.Status == store.JobSucceeded || job.Status == store.JobFailed) {
		return nil
	}
	if a.Phase == task.PhaseFinished {
		if n.Executions, err = r.cfg.Store.ExecutionList(ctx, &store.ExecutionListParams{ProjectID: job.ProjectID, JobID: job.ID}); err != nil {
			return err
		}
	}
	return in.SendNotification(ctx, n)
}

// CreateArtifact hands the git bundle at bundle (read from a sandbox) to
// the integration a names, which pushes it as a.Branch and opens a pull
// request.
func (r *Registry) CreateArtifact(ctx context.Context, a *task.IntegrationArtifactArgs, bundle string) (*task.ArtifactResult, error) {
	in, ok := r.byName[a.Integration]
	if !ok {
		return nil, errdefs.FailedPrecondition("integration %q is not enabled", a.Integration)
	}
	res, err := in.CreateArtifact(ctx, &Artifact{Repo: a.Repo, Branch: a.Branch, Base: a.Base, Title: a.Title, Body: a.Body,
		Bundle: bundle})
	if err != nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "pull request opened", slog.String("integration", a.Integration), slog.String("repo", a.Repo),
		slog.String("branch", a.Branch), slog.String("url", res.URL))
	return &task.ArtifactResult{URL: res.URL, Number: res.Number, Commit: res.Commit}, nil
}

// JobLink is a job's URL under the public URL; empty when none is set.
func (r *Registry) JobLink(jobID string) string {
	if r.cfg.PublicURL == "" {
		return ""
	}
	return r.cfg.PublicURL + "/api/v1/jobs/" + jobID
}

// host is the Host one event is handled with.
type host struct {
	r         *Registry
	in        Integration
	projectID string
	start     JobStarter
	log       *slog.Logger
}

func (h *host) StartJob(ctx context.Context, req *JobRequest) (*JobStarted, error) {
	if h.start == nil {
		return nil, errdefs.Unavailable("this process does not start jobs")
	}
	reports := append([]task.Report{{Integration: h.in.Name(), Target: req.Report}}, h.r.cfg.Notify...)
	started, err := h.start(ctx, h.projectID, req, task.JobRunArgs{Reports: reports, DeleteVM: true})
	if err != nil {
		return nil, err
	}
	h.log.InfoContext(ctx, "job started", slog.String("job_id", started.JobID), slog.String("vm_id", started.VMID))
	args := task.IntegrationReportArgs{Report: reports[0], JobID: started.JobID, Phase: task.PhaseStarted}
	if _, err := task.Submit(ctx, h.r.cfg.Store, h.r.cfg.Queue, args, &task.SubmitParams{ProjectID: h.projectID}); err != nil {
		if !errors.Is(err, task.ErrNotEnqueued) {
			return started, err
		}
		h.log.WarnContext(ctx, "report queued late", slog.Any("err", err)) // the reconciler sends it
	}
	return started, nil
}

func (h *host) Job(ctx context.Context, id string) (*store.Job, error) {
	return h.r.cfg.Store.JobGet(ctx, &store.JobGetParams{ID: id, ProjectID: h.projectID})
}

func (h *host) Sandboxes(ctx context.Context) ([]*store.VM, error) {
	return h.r.cfg.Store.VMList(ctx, &store.VMListParams{ProjectID: h.projectID})
}

// Since is how long ago t was, rounded for messages.
func Since(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }

// DecodeTarget reads a report target as T; a target that does not decode
// is ErrInvalidArgument (retrying cannot fix it).
func DecodeTarget[T any](raw json.RawMessage) (*T, error) {
	var t T
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errdefs.InvalidArgument("report target: %v", err)
	}
	return &t, nil
}

// Permanent marks an error no retry can fix (a 4xx from the service other
// than 408/429).
func Permanent(err error) error { return queue.Permanent(err) }
