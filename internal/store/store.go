// Package store is Aetherium's durable state: projects, workers, sandboxes
// (vms), tasks, jobs and executions. It is the source of truth; queue messages
// only point at task rows.
//
// Store is internal to the daemon. It is implemented by store/sqlite (embedded
// mode) and, later, store/postgres; both must pass storetest.Run. Because the
// project owns every implementation, the interface may be wider than the
// small-interface rule allows.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DefaultProjectID is the project every row belongs to until tenants exist.
// The first migration creates it.
const DefaultProjectID = "default"

// AllProjects, as the project of VMGet, VMList and TemplateList, matches
// every project. Only the daemon's own loops (reconcile, pools, lifetimes,
// metrics) use it; request handlers always pass the caller's project.
const AllProjects = "*"

// VM statuses.
const (
	VMCreating = "creating"
	VMRunning  = "running"
	VMStopped  = "stopped"
	VMDeleting = "deleting"
	VMDeleted  = "deleted"
	VMFailed   = "failed"
	// VMLost marks a sandbox whose worker stopped heartbeating. It returns
	// to running if the worker comes back with the machine intact.
	VMLost = "lost"
	// VMPaused is a frozen sandbox: memory kept, no commands until resumed.
	VMPaused = "paused"
	// VMPooled is a started sandbox of a template's warm pool, not yet
	// handed to anyone; lists leave it out.
	VMPooled = "pooled"
)

// PoolNamePrefix starts the names of pool sandboxes; user names (DNS labels)
// cannot contain '_', so they never collide.
const PoolNamePrefix = "_pool-"

// Expiry actions for VM.OnExpire.
const (
	ExpireDelete = "delete"
	ExpirePause  = "pause"
)

// Task statuses. Succeeded and failed are terminal: no update leaves them.
const (
	TaskPending   = "pending"
	TaskRunning   = "running"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
)

// Job statuses.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Store is the daemon's state. Implementations are safe for concurrent use.
// Errors: a missing row is errdefs.ErrNotFound; a duplicate name is
// errdefs.ErrAlreadyExists; a status change the state machine refuses
// (VMTransitions, TaskTransitions) is errdefs.ErrConflict.
type Store interface {
	Tenancy

	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the database. It is idempotent.
	Close() error

	// VMGet finds a sandbox by ID or, failing that, by name within the
	// project. Deleted sandboxes are found by ID only. With AllProjects it
	// finds by ID only, in any project.
	VMGet(ctx context.Context, params *VMGetParams) (*VM, error)
	// VMList lists a project's (or with AllProjects every project's)
	// sandboxes, oldest first, a page at a time (params.After, Limit).
	VMList(ctx context.Context, params *VMListParams) ([]*VM, error)
	// VMClaimPooled hands one pooled sandbox of a template to a user: it
	// takes the oldest, renames it and makes it running, in one statement,
	// so no sandbox is ever handed out twice. ErrNotFound when the pool is
	// empty (or another claim won the race).
	VMClaimPooled(ctx context.Context, params *VMClaimParams) (*VM, error)
	// VMUpdate sets the non-nil fields of a sandbox and returns it. A
	// status change follows VMTransitions (and params.IfStatus), checked in
	// the UPDATE itself: a refused move is ErrConflict, an unknown status
	// ErrInvalidArgument.
	VMUpdate(ctx context.Context, params *VMUpdateParams) (*VM, error)

	// TaskInsert inserts a pending task and, in the same transaction, the
	// sandbox or job it creates (params.VM, params.Job), so a request never
	// leaves half its rows behind.
	TaskInsert(ctx context.Context, params *TaskInsertParams) (*Task, error)
	// TaskGet returns one task.
	TaskGet(ctx context.Context, params *TaskGetParams) (*Task, error)
	// TaskList lists tasks, oldest first, a page at a time (params.After,
	// Limit).
	TaskList(ctx context.Context, params *TaskListParams) ([]*Task, error)
	// TaskUpdate moves a task to params.Status along TaskTransitions (checked
	// in the UPDATE) and sets the non-nil fields. A refused move (any update
	// of a terminal task) returns ErrConflict.
	TaskUpdate(ctx context.Context, params *TaskUpdateParams) (*Task, error)

	// JobGet returns one job.
	JobGet(ctx context.Context, params *JobGetParams) (*Job, error)
	// JobUpdate sets a job's status and the non-nil fields.
	JobUpdate(ctx context.Context, params *JobUpdateParams) (*Job, error)

	// ExecutionInsert records a started execution. The record survives a
	// crash of the process but need not be on disk until ExecutionFinish
	// returns (which makes both durable).
	ExecutionInsert(ctx context.Context, params *ExecutionInsertParams) (*Execution, error)
	// ExecutionFinish records an execution's outcome.
	ExecutionFinish(ctx context.Context, params *ExecutionFinishParams) (*Execution, error)
	// ExecutionByTask returns the latest execution a task started (indexed:
	// a redelivered task looks for its own run without reading history).
	ExecutionByTask(ctx context.Context, projectID, taskID string) (*Execution, error)
	// ExecutionList lists a sandbox's or a job's executions, oldest first,
	// a page at a time (params.After, Limit).
	ExecutionList(ctx context.Context, params *ExecutionListParams) ([]*Execution, error)
	// ExecutionAbandon closes every unfinished execution on a sandbox of
	// params.WorkerID that started before params.StartedBefore: completed
	// now, with params.Error and no exit code. A worker calls it at start,
	// for the commands its previous process was running when it died. It
	// returns how many it closed; it is idempotent.
	ExecutionAbandon(ctx context.Context, params *ExecutionAbandonParams) (int64, error)

	// HistoryPrune deletes up to limit rows each of executions, finished
	// tasks and jobs, audit entries, webhook deliveries and preview tokens older than before (expired, for tokens), and returns how
	// many it deleted; call it until it returns 0. Unfinished rows stay.
	HistoryPrune(ctx context.Context, before time.Time, limit int) (int64, error)

	// WebhookDeliveryInsert records a webhook delivery an integration
	// accepted. A delivery already recorded (same integration and delivery
	// ID: a redelivery or a replay) is ErrAlreadyExists, so the caller does
	// the delivery's work at most once. HistoryPrune removes old ones.
	WebhookDeliveryInsert(ctx context.Context, params *WebhookDeliveryInsertParams) error
	// WebhookDeliveryDelete forgets a recorded delivery whose handling
	// failed, so the sender's redelivery is handled. Missing is no error.
	WebhookDeliveryDelete(ctx context.Context, params *WebhookDeliveryInsertParams) error

	// PreviewTokenInsert stores a preview token (its hash) of a sandbox of
	// the project that is not deleted; otherwise ErrNotFound.
	PreviewTokenInsert(ctx context.Context, params *PreviewTokenInsertParams) (*PreviewToken, error)
	// PreviewTokenByHash finds a token by the hash of its secret, expired or
	// not (the caller checks Usable).
	PreviewTokenByHash(ctx context.Context, hash string) (*PreviewToken, error)
	// PreviewTokenList lists a sandbox's tokens, newest first.
	PreviewTokenList(ctx context.Context, projectID, vmID string) ([]*PreviewToken, error)
	// PreviewTokenDelete revokes a token of a sandbox of the project by
	// deleting it; ErrNotFound when there is none. Marking the sandbox
	// deleted (VMUpdate) deletes its tokens, and HistoryPrune expired ones.
	PreviewTokenDelete(ctx context.Context, projectID, vmID, id string) error

	// WorkerUpsert registers a worker or refreshes its heartbeat.
	WorkerUpsert(ctx context.Context, params *WorkerUpsertParams) (*Worker, error)
	// TemplateGet finds a template by ID or name within the project.
	TemplateGet(ctx context.Context, params *TemplateGetParams) (*Template, error)
	// TemplateList lists a project's (or with AllProjects every
	// project's) templates by name.
	TemplateList(ctx context.Context, projectID string) ([]*Template, error)
	// TemplateUpdate sets a template's status and the non-nil fields.
	TemplateUpdate(ctx context.Context, params *TemplateUpdateParams) (*Template, error)
	// TemplateDelete removes a template row. Missing is ErrNotFound.
	TemplateDelete(ctx context.Context, params *TemplateGetParams) error

	// WorkerList lists all workers.
	WorkerList(ctx context.Context) ([]*Worker, error)
	// WorkerLoad sums each worker's sandboxes that hold resources (every
	// status but deleted and failed), across projects.
	WorkerLoad(ctx context.Context) (map[string]Load, error)

	// AddressLease records that a sandbox holds an address of a subnet. If
	// the sandbox already holds one there, that lease is returned and
	// params.Address is ignored. An address held by another sandbox is
	// ErrAlreadyExists: no two sandboxes ever share one.
	AddressLease(ctx context.Context, params *AddressLeaseParams) (*AddressLease, error)
	// AddressList lists a subnet's leases, oldest first.
	AddressList(ctx context.Context, subnet string) ([]*AddressLease, error)
	// AddressRelease frees every address a sandbox holds; none is not an error.
	AddressRelease(ctx context.Context, vmID string) error
}

// AddressLease is a guest IP address held by a sandbox.
type AddressLease struct {
	Subnet    string    `json:"subnet"`
	Address   string    `json:"address"`
	VMID      string    `json:"vm_id"`
	CreatedAt time.Time `json:"created_at"`
}

// VM is a sandbox.
type VM struct {
	ID              string            `json:"id"`
	ProjectID       string            `json:"project_id"`
	Name            string            `json:"name"`
	Status          string            `json:"status"`
	Runtime         string            `json:"runtime"`
	RuntimeID       string            `json:"runtime_id,omitempty"`
	WorkerID        string            `json:"worker_id,omitempty"`
	Image           string            `json:"image"`
	Template        string            `json:"template,omitempty"`
	VCPUs           int               `json:"vcpus"`
	MemoryMB        int               `json:"memory_mb"`
	AdditionalTools []string          `json:"additional_tools"`
	ToolVersions    map[string]string `json:"tool_versions"`
	// ToolsInstalled maps each installed tool to the exact version verified.
	ToolsInstalled map[string]string `json:"tools_installed"`
	// ExpiresAt is when the sandbox expires regardless of use; nil means never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// IdleTimeoutS expires the sandbox this many seconds after its last exec
	// or file transfer ended (a running exec keeps it alive); 0 means never.
	IdleTimeoutS int `json:"idle_timeout_seconds,omitempty"`
	// LastActiveAt is when an exec or file transfer last started or ended.
	LastActiveAt *time.Time `json:"last_active_at,omitempty"`
	// OnExpire is ExpireDelete or ExpirePause.
	OnExpire string `json:"on_expire"`
	Error    string `json:"error,omitempty"`
	// IPAddress is the sandbox's address on its network (Docker's bridge, or
	// the microVM network); empty without one.
	IPAddress string `json:"ip_address,omitempty"`
	// Egress is the sandbox's egress policy's text (egress.Policy.String):
	// internet, none or an allowlist; "" means the worker's default.
	Egress    string    `json:"egress,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Task is one unit of asynchronous work.
type Task struct {
	ID         string          `json:"id"`
	ProjectID  string          `json:"project_id"`
	Type       string          `json:"type"`
	Status     string          `json:"status"`
	Priority   string          `json:"priority"`
	VMID       string          `json:"vm_id,omitempty"`
	Payload    json.RawMessage `json:"payload"`
	Result     json.RawMessage `json:"result,omitempty"`
	Progress   string          `json:"progress,omitempty"`
	Error      string          `json:"error,omitempty"`
	RetryCount int             `json:"retry_count"`
	MaxRetries int             `json:"max_retries"`
	// TimeoutMS bounds one attempt; 0 means the type's default.
	TimeoutMS   int64      `json:"timeout_ms"`
	WorkerID    string     `json:"worker_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Terminal reports whether the task has finished for good.
func (t *Task) Terminal() bool { return t.Status == TaskSucceeded || t.Status == TaskFailed }

// Job is a list of commands run in order in one sandbox.
type Job struct {
	ID          string     `json:"id"`
	ProjectID   string     `json:"project_id"`
	VMID        string     `json:"vm_id"`
	TaskID      string     `json:"task_id"`
	Status      string     `json:"status"`
	Commands    []string   `json:"commands"`
	Error       string     `json:"error,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Execution is the record of one command run in a sandbox, by any path.
// Shell says how Command ran: true as a line for /bin/sh -c, false as the
// program Command with Args; nil (omitted) for executions recorded before
// Aetherium kept it, whose way is unknown.
type Execution struct {
	ID              string     `json:"id"`
	ProjectID       string     `json:"project_id"`
	VMID            string     `json:"vm_id"`
	TaskID          string     `json:"task_id,omitempty"`
	JobID           string     `json:"job_id,omitempty"`
	Command         string     `json:"command"`
	Args            []string   `json:"args"`
	Shell           *bool      `json:"shell,omitempty"`
	ExitCode        *int       `json:"exit_code"`
	Signal          string     `json:"signal,omitempty"`
	TimedOut        bool       `json:"timed_out"`
	Error           string     `json:"error,omitempty"`
	Stdout          string     `json:"stdout"`
	Stderr          string     `json:"stderr"`
	StdoutTruncated bool       `json:"stdout_truncated"`
	StderrTruncated bool       `json:"stderr_truncated"`
	StartedAt       time.Time  `json:"started_at"`
	CompletedAt     *time.Time `json:"completed_at,omitempty"`
	DurationMS      int64      `json:"duration_ms"`
}

// Template statuses.
const (
	TemplateBuilding = "building"
	TemplateReady    = "ready"
	TemplateFailed   = "failed"
)

// Template is a prepared image: a base plus tools and setup, built once.
type Template struct {
	ID        string          `json:"id"`
	ProjectID string          `json:"project_id"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	Spec      json.RawMessage `json:"spec"`
	SpecHash  string          `json:"spec_hash"`
	// Image is the runtime's image reference, once built.
	Image string `json:"image,omitempty"`
	// ToolsInstalled maps each baked-in tool to its exact version.
	ToolsInstalled map[string]string `json:"tools_installed"`
	// WorkerID is the host whose runtime holds the image.
	WorkerID string `json:"worker_id,omitempty"`
	// PoolSize is how many started sandboxes the worker keeps ready.
	PoolSize  int       `json:"pool_size"`
	TaskID    string    `json:"task_id,omitempty"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Worker is a host that runs sandboxes.
type Worker struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Runtime string `json:"runtime"`
	// Capacity caps the worker's sandboxes by count; VCPUs and MemoryMB
	// budget their sums. 0 means no limit of that kind.
	Capacity    int       `json:"capacity"`
	VCPUs       int       `json:"vcpus"`
	MemoryMB    int       `json:"memory_mb"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// Load is what a worker's sandboxes hold: how many, and their vCPUs and
// memory summed.
type Load struct {
	Sandboxes int
	VCPUs     int
	MemoryMB  int
}

// Room reports whether w has room for one more sandbox of vcpus and
// memoryMB on top of load, or why not.
func (w *Worker) Room(load Load, vcpus, memoryMB int) (bool, string) {
	switch {
	case w.Capacity > 0 && load.Sandboxes+1 > w.Capacity:
		return false, fmt.Sprintf("%d of %d sandboxes", load.Sandboxes, w.Capacity)
	case w.VCPUs > 0 && load.VCPUs+vcpus > w.VCPUs:
		return false, fmt.Sprintf("%d of %d vCPUs taken, %d asked", load.VCPUs, w.VCPUs, vcpus)
	case w.MemoryMB > 0 && load.MemoryMB+memoryMB > w.MemoryMB:
		return false, fmt.Sprintf("%d of %d MiB taken, %d asked", load.MemoryMB, w.MemoryMB, memoryMB)
	}
	return true, ""
}

// Roles of API keys.
const (
	// RoleAdmin may do everything: projects, keys, images, workers, and
	// every project's objects.
	RoleAdmin = "admin"
	// RoleMember may use its own project's sandboxes, tasks, jobs,
	// templates, files and events.
	RoleMember = "member"
)

// Quota bounds what a project may hold at once. Zero fields mean no limit.
type Quota struct {
	// Sandboxes counts sandboxes that are not deleted (failed ones too,
	// until they are deleted; pool sandboxes count toward PoolSize instead).
	Sandboxes int `json:"sandboxes"`
	// VCPUs and MemoryMB sum over the same sandboxes.
	VCPUs    int `json:"vcpus"`
	MemoryMB int `json:"memory_mb"`
	// Templates counts templates.
	Templates int `json:"templates"`
	// PoolSize sums the warm-pool sizes of the project's templates.
	PoolSize int `json:"pool_size"`
	// Execs bounds concurrent interactive execs.
	Execs int `json:"execs"`
}

// Project is a tenant: every user-owned row belongs to one.
type Project struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Quota     Quota     `json:"quota"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey is a client credential. Only a hash of its secret is stored; Prefix
// is the visible start of the key that tells keys apart.
type APIKey struct {
	ID        string     `json:"id"`
	ProjectID string     `json:"project_id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Hash      string     `json:"-"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// PreviewToken opens one port of one sandbox at its preview host without an
// API key. Only a hash of its secret is stored.
type PreviewToken struct {
	ID        string    `json:"id"`
	ProjectID string    `json:"project_id"`
	VMID      string    `json:"vm_id"`
	Port      int       `json:"port"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Usable reports whether the key may be used at t: not revoked, not expired.
func (k *APIKey) Usable(t time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || t.Before(*k.ExpiresAt))
}

// AuditEntry records who (key prefix, project) did what to which object.
type AuditEntry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	KeyPrefix string    `json:"key_prefix"`
	ProjectID string    `json:"project_id"`
	Action    string    `json:"action"`
	Object    string    `json:"object,omitempty"`
	Status    int       `json:"status"`
}

// Tenancy is the part of Store that keeps projects, API keys and the audit
// log.
type Tenancy interface {
	// ProjectInsert creates a project; a taken name is ErrAlreadyExists.
	ProjectInsert(ctx context.Context, params *ProjectInsertParams) (*Project, error)
	// ProjectGet finds a project by ID or name.
	ProjectGet(ctx context.Context, idOrName string) (*Project, error)
	// ProjectList lists every project by name.
	ProjectList(ctx context.Context) ([]*Project, error)
	// ProjectUpdate sets a project's quota.
	ProjectUpdate(ctx context.Context, params *ProjectUpdateParams) (*Project, error)
	// ProjectDelete removes a project and its keys. It is
	// ErrFailedPrecondition while the project has sandboxes that are not
	// deleted, or templates; the default project cannot be deleted.
	ProjectDelete(ctx context.Context, id string) error

	// APIKeyInsert stores a key (its hash); a taken prefix is ErrAlreadyExists.
	APIKeyInsert(ctx context.Context, params *APIKeyInsertParams) (*APIKey, error)
	// APIKeyByPrefix finds a key by its visible prefix, revoked or not.
	APIKeyByPrefix(ctx context.Context, prefix string) (*APIKey, error)
	// APIKeyList lists keys, newest first; an empty projectID lists all.
	APIKeyList(ctx context.Context, projectID string) ([]*APIKey, error)
	// APIKeyRevoke revokes a key by ID or prefix within the project (any
	// project when projectID is empty). Revoking twice keeps the first time.
	APIKeyRevoke(ctx context.Context, projectID, idOrPrefix string) (*APIKey, error)
	// APIKeyCount counts usable keys (not revoked, not expired).
	APIKeyCount(ctx context.Context) (int, error)

	// AuditInsert appends entries, in their order; it returns once they
	// are durable. A store that commits writes in groups may hold them back
	// a little (SQLite: up to 100 ms) to commit them with another write.
	AuditInsert(ctx context.Context, entries ...*AuditInsertParams) error
	// AuditList lists entries, newest first.
	AuditList(ctx context.Context, params *AuditListParams) ([]*AuditEntry, error)
}
