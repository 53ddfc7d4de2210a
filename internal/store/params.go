package store

import (
	"encoding/json"
	"time"
)

// VMGetParams selects a sandbox by ID, or by name within a project.
type VMGetParams struct {
	IDOrName  string
	ProjectID string
}

// VMListParams filters VMList.
type VMListParams struct {
	// After, when set, lists only sandboxes after the one with this ID
	// in the list's order (the cursor of the next page).
	After string
	// IncludeDeleted also lists sandboxes in status deleted.
	IncludeDeleted bool
	// ExpiredAt, when set, lists only running sandboxes whose lifetime is
	// over at that time: their timeout passed, or their idle timeout ran out
	// since their last recorded activity (the expiry sweep's candidates; the
	// sweep still checks activity in flight). The zero time means no filter.
	ExpiredAt time.Time
	// Pooled lists only pool sandboxes (status pooled, or being created for
	// a pool); otherwise they are left out.
	Pooled bool
	// Limit caps the result; 0 means no limit.
	Limit     int
	ProjectID string
	// WorkerID, when set, lists only that worker's sandboxes.
	WorkerID string
}

// VMInsertParams is a sandbox created together with its vm:create task.
type VMInsertParams struct {
	AdditionalTools []string
	// Egress is the sandbox's egress policy's text (egress.Policy.String);
	// "" means the worker's default.
	Egress       string
	ExpiresAt    *time.Time
	ID           string
	IdleTimeoutS int
	Image        string
	MemoryMB     int
	Name         string
	OnExpire     string
	Runtime      string
	Template     string
	ToolVersions map[string]string
	VCPUs        int
	WorkerID     string
}

// VMUpdateParams sets the non-nil fields of one sandbox.
type VMUpdateParams struct {
	Error *string
	// ExpiresAt sets the deadline; a pointer to the zero time clears it.
	ExpiresAt *time.Time
	ID        string
	IPAddress *string
	// IfStatus, with Status, narrows the move further: the row must be in
	// one of these statuses (the one the caller read), else ErrConflict.
	// Empty means any status VMTransitions allows.
	IfStatus []string
	// LastActiveAt records activity. An update of it alone may be written
	// without waiting for the disk (SQLite synchronous=NORMAL, PostgreSQL
	// synchronous_commit=off): a power loss may lose the newest value.
	LastActiveAt   *time.Time
	RuntimeID      *string
	Status         *string
	ToolsInstalled map[string]string
	WorkerID       *string
}

// TaskInsertParams inserts a pending task.
type TaskInsertParams struct {
	// ID is the task's UUID, also used as the queue message ID. Empty means generate one.
	ID string
	// Job, when set, is inserted in the same transaction (its TaskID is this task).
	Job        *JobInsertParams
	MaxRetries int
	Payload    json.RawMessage
	Priority   string
	ProjectID  string
	// Template, when set, is inserted in the same transaction (its TaskID is this task).
	Template *TemplateInsertParams
	// Timeout bounds one attempt; 0 means the type's default.
	Timeout time.Duration
	Type    string
	// VM, when set, is inserted in the same transaction; the task's VMID is its ID.
	VM   *VMInsertParams
	VMID string
}

// JobInsertParams is a job created together with its job:run task.
type JobInsertParams struct {
	Commands []string
	ID       string
	VMID     string
}

// TaskGetParams selects one task.
type TaskGetParams struct {
	ID        string
	ProjectID string
}

// TaskListParams filters TaskList.
type TaskListParams struct {
	// After, when set, lists only tasks after the one with this ID in the
	// list's order (the cursor of the next page).
	After string
	// CreatedBefore, when non-zero, lists only tasks created before it.
	CreatedBefore time.Time
	// Limit caps the result; 0 means 1000.
	Limit int
	// ProjectID, when set, lists only that project's tasks.
	ProjectID string
	// Status, when set, lists only tasks in that status.
	Status string
	// WorkerID, when set, lists only tasks last claimed by that worker.
	WorkerID string
}

// TaskUpdateParams moves a task to Status and sets the non-nil fields.
// Moving to running stamps started_at; moving to a terminal status stamps
// completed_at.
type TaskUpdateParams struct {
	Error *string
	ID    string
	// Payload, when non-nil, replaces the payload (a finished task keeps
	// only its redacted payload: task.Redact).
	Payload    json.RawMessage
	Progress   *string
	Result     json.RawMessage
	RetryCount *int
	Status     string
	WorkerID   *string
}

// JobGetParams selects one job.
type JobGetParams struct {
	ID        string
	ProjectID string
}

// JobUpdateParams sets a job's status; running stamps started_at, terminal
// statuses stamp completed_at.
type JobUpdateParams struct {
	Error  *string
	ID     string
	Status string
}

// ExecutionInsertParams records the start of an execution.
type ExecutionInsertParams struct {
	Args      []string
	Command   string
	JobID     string
	ProjectID string
	// Shell is how the command runs: true as a line for /bin/sh -c, false
	// as the program Command with Args. nil records it as unknown.
	Shell     *bool
	StartedAt time.Time
	TaskID    string
	VMID      string
}

// ExecutionFinishParams records how an execution ended.
type ExecutionFinishParams struct {
	DurationMS      int64
	Error           string
	ExitCode        *int
	ID              string
	Signal          string
	Stderr          string
	StderrTruncated bool
	Stdout          string
	StdoutTruncated bool
	TimedOut        bool
}

// ExecutionAbandonParams closes a dead process's unfinished executions.
type ExecutionAbandonParams struct {
	Error         string
	StartedBefore time.Time
	WorkerID      string
}

// ExecutionListParams selects a sandbox's or a job's executions.
type ExecutionListParams struct {
	// After, when set, lists only executions after the one with this ID
	// in the list's order (the cursor of the next page).
	After string
	JobID string
	// Limit caps the result; 0 means 1000.
	Limit     int
	ProjectID string
	VMID      string
}

// WorkerUpsertParams registers a worker or refreshes its heartbeat.
type WorkerUpsertParams struct {
	Address  string
	Capacity int
	ID       string
	MemoryMB int
	Runtime  string
	VCPUs    int
}

// TemplateInsertParams is a template created together with its build task.
type TemplateInsertParams struct {
	ID       string
	Name     string
	PoolSize int
	Spec     json.RawMessage
	SpecHash string
	WorkerID string
}

// TemplateGetParams selects a template by ID or name.
type TemplateGetParams struct {
	IDOrName  string
	ProjectID string
}

// TemplateUpdateParams sets a template's status and the non-nil fields.
type TemplateUpdateParams struct {
	Error          *string
	ID             string
	Image          *string
	PoolSize       *int
	Status         string
	ToolsInstalled map[string]string
}

// VMClaimParams hands a pooled sandbox of TemplateID to a user.
type VMClaimParams struct {
	ExpiresAt    *time.Time
	IdleTimeoutS int
	Name         string
	OnExpire     string
	ProjectID    string
	TemplateID   string
}

// AddressLeaseParams asks for Address of Subnet (both in canonical text
// form, as netip prints them) for the sandbox VMID.
type AddressLeaseParams struct {
	Subnet  string
	Address string
	VMID    string
}

// ProjectInsertParams creates a project.
type ProjectInsertParams struct {
	ID    string
	Name  string
	Quota Quota
}

// ProjectUpdateParams sets a project's quota.
type ProjectUpdateParams struct {
	ID    string
	Quota Quota
}

// APIKeyInsertParams stores a key: its ID, visible prefix and secret hash.
type APIKeyInsertParams struct {
	ExpiresAt *time.Time
	Hash      string
	ID        string
	Name      string
	Prefix    string
	ProjectID string
	Role      string
}

// AuditInsertParams is one audit entry.
type AuditInsertParams struct {
	Action    string
	KeyPrefix string
	Object    string
	ProjectID string
	Status    int
}

// AuditListParams selects audit entries.
type AuditListParams struct {
	// Before, when non-zero, lists entries with a smaller ID (paging).
	Before int64
	// Limit caps the result; 0 means 100.
	Limit int
	// ProjectID filters by project; empty means every project.
	ProjectID string
}

// PreviewTokenInsertParams stores a preview token of one port of a sandbox.
type PreviewTokenInsertParams struct {
	ExpiresAt time.Time
	// Hash is the hash of the token's secret. Required.
	Hash string
	// ID is the token's ID. Required.
	ID        string
	Port      int
	ProjectID string
	// VMID is the sandbox's ID. Required.
	VMID string
}

// WebhookDeliveryInsertParams is one accepted webhook delivery.
type WebhookDeliveryInsertParams struct {
	// DeliveryID is the sender's ID of the delivery. Required.
	DeliveryID string
	// Event is the delivery's event type (push, pull_request, command).
	Event string
	// Integration is the integration that received it (github, slack). Required.
	Integration string
	// ProjectID is the project the integration acts in.
	ProjectID string
}
