// Package apiv1 holds the REST API's v1 wire types: the JSON bodies the
// server (internal/api) writes and the Go client (package client), the CLI
// and the end-to-end tests read. The served OpenAPI document describes the
// same shapes.
//
// The types are independent of the store's rows: a column added to the store
// reaches the wire only when it is added here. It is public so Go programs
// outside this module can use package client; of the project it imports
// only internal/errdefs (for ExecRequest.Validate, which the server runs).
package apiv1

import (
	"encoding/json"
	"time"
)

// VM is a sandbox (GET /api/v1/vms/{id}).
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
	// or file transfer ended; 0 means never.
	IdleTimeoutS int `json:"idle_timeout_seconds,omitempty"`
	// LastActiveAt is when an exec or file transfer last started or ended.
	LastActiveAt *time.Time `json:"last_active_at,omitempty"`
	// OnExpire is "delete" or "pause".
	OnExpire string `json:"on_expire"`
	Error    string `json:"error,omitempty"`
	// IPAddress is the sandbox's address on its network; empty without one.
	IPAddress string `json:"ip_address,omitempty"`
	// Egress is what the sandbox may connect to: internet (the public
	// internet only), none, or its allowlist, comma-separated.
	Egress    string    `json:"egress,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// VMList is the body of GET /api/v1/vms.
// Lists are pages of at most ?limit= rows (default 100, at most 1000);
// Next, when set, is the ?cursor= of the next page.
type VMList struct {
	VMs   []*VM `json:"vms"`
	Total int   `json:"total"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

// TaskList is the body of GET /api/v1/tasks, newest first (paginated).
type TaskList struct {
	Tasks []*Task `json:"tasks"`
	Next  string  `json:"next,omitempty"`
}

// Task is one unit of asynchronous work (GET /api/v1/tasks/{id}). Payload
// and Result are the JSON of the kind's args and result types in package
// task.
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
	// TimeoutMS bounds one attempt; 0 means the kind's default.
	TimeoutMS   int64      `json:"timeout_ms"`
	WorkerID    string     `json:"worker_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// Terminal reports whether the task has finished for good (succeeded or
// failed).
func (t *Task) Terminal() bool { return t.Status == "succeeded" || t.Status == "failed" }

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

// JobDetail is the body of GET /api/v1/jobs/{id}: a job with what it ran.
type JobDetail struct {
	Job        *Job         `json:"job"`
	Executions []*Execution `json:"executions"`
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

// ExecutionList is the body of GET /api/v1/vms/{id}/executions, oldest first.
// Paginated like VMList.
type ExecutionList struct {
	Executions []*Execution `json:"executions"`
	Total      int          `json:"total"`
	Next       string       `json:"next,omitempty"`
}

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

// TemplateList is the body of GET /api/v1/templates, by name.
type TemplateList struct {
	Templates []*Template `json:"templates"`
	Total     int         `json:"total"`
}

// Accepted answers a request that queued a task (202): the task to wait for
// and the sandbox or job it is about.
type Accepted struct {
	TaskID string `json:"task_id"`
	VMID   string `json:"vm_id,omitempty"`
	JobID  string `json:"job_id,omitempty"`
	Status string `json:"status"`
}

// TemplateAccepted answers POST /api/v1/templates: a build to wait for
// (202, TaskID), or a cache hit (Cached; 200 with Template when it is ready,
// 202 with the running build's TaskID while it builds).
type TemplateAccepted struct {
	TaskID     string    `json:"task_id,omitempty"`
	TemplateID string    `json:"template_id"`
	Status     string    `json:"status"`
	Cached     bool      `json:"cached"`
	Template   *Template `json:"template,omitempty"`
}

// PullRequestRequest is the body of POST /api/v1/vms/{id}/pull-request:
// push the commit checked out at Path in the sandbox to Branch of Repo
// (owner/name) and open a pull request into Base ("" means main). The
// task's result is a PullRequestResult.
type PullRequestRequest struct {
	Repo   string `json:"repo"`
	Path   string `json:"path"`
	Branch string `json:"branch"`
	Base   string `json:"base,omitempty"`
	Title  string `json:"title"`
	Body   string `json:"body,omitempty"`
}

// PullRequestResult is the result of a pull-request task.
type PullRequestResult struct {
	URL    string `json:"url"`
	Number int    `json:"number"`
	Commit string `json:"commit"`
}

// SnapshotAccepted answers POST /api/v1/vms/{id}/snapshot (202): the task
// that saves the sandbox as the template TemplateID.
type SnapshotAccepted struct {
	TaskID     string `json:"task_id"`
	TemplateID string `json:"template_id"`
	VMID       string `json:"vm_id"`
	Status     string `json:"status"`
}

// FileWritten answers PUT /api/v1/vms/{id}/files.
type FileWritten struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// ExecExit is how an interactive exec ended: an exit code, or a signal, or
// TimedOut (the agent killed the command at its timeout).
type ExecExit struct {
	ExitCode    *int   `json:"exit_code,omitempty"`
	Signal      string `json:"signal,omitempty"`
	TimedOut    bool   `json:"timed_out,omitempty"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	ExecutionID string `json:"execution_id,omitempty"`
}

// Exec event types.
const (
	ExecStdout = "stdout"
	ExecStderr = "stderr"
	ExecEnd    = "exit"
	ExecError  = "error"
)

// ExecEvent is one line of an interactive exec's NDJSON response
// (POST /api/v1/vms/{id}/exec):
//
//   - {"type":"stdout"|"stderr","data":"<base64>"} as output is produced;
//   - then exactly one {"type":"exit",...} with the ExecExit fields, or
//     {"type":"error","error":{...}} if the command could not finish.
type ExecEvent struct {
	Type string `json:"type"`
	Data []byte `json:"data,omitempty"`
	ExecExit
	Error *ErrorDetail `json:"error,omitempty"`
}

// Event is a task or sandbox state change, as GET /api/v1/events streams it
// (Server-Sent Events: "event: <kind>", "data: <Event JSON>").
type Event struct {
	// Kind is "task" or "vm".
	Kind string `json:"kind"`
	// Status is the new status of the task or sandbox.
	Status string `json:"status"`
	// TaskType is the task's kind (vm:create…), for task events.
	TaskType  string    `json:"task_type,omitempty"`
	TaskID    string    `json:"task_id,omitempty"`
	VMID      string    `json:"vm_id,omitempty"`
	ProjectID string    `json:"project_id"`
	Error     string    `json:"error,omitempty"`
	Progress  string    `json:"progress,omitempty"`
	Time      time.Time `json:"time"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names an error's class (Code: "not_found", "invalid_argument",
// …) and says what went wrong. 5xx messages carry no internal detail.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Quota bounds what a project may hold at once. Zero fields mean no limit.
type Quota struct {
	// Sandboxes counts sandboxes that are not deleted.
	Sandboxes int `json:"sandboxes"`
	// VCPUs and MemoryMB sum over the same sandboxes.
	VCPUs    int `json:"vcpus"`
	MemoryMB int `json:"memory_mb"`
	// Templates counts templates; PoolSize sums their warm-pool sizes.
	Templates int `json:"templates"`
	PoolSize  int `json:"pool_size"`
	// Execs bounds concurrent interactive execs.
	Execs int `json:"execs"`
}

// Project is a tenant (admin: /api/v1/projects).
type Project struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Quota     Quota     `json:"quota"`
	CreatedAt time.Time `json:"created_at"`
}

// ProjectList is the body of GET /api/v1/projects, by name.
type ProjectList struct {
	Projects []*Project `json:"projects"`
}

// ProjectRequest is the body of POST /api/v1/projects.
type ProjectRequest struct {
	Name  string `json:"name"`
	Quota Quota  `json:"quota"`
}

// APIKey is a key as lists show it: never its secret.
type APIKey struct {
	ID        string     `json:"id"`
	ProjectID string     `json:"project_id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// APIKeyList is the body of GET /api/v1/keys, newest first.
type APIKeyList struct {
	Keys []*APIKey `json:"keys"`
}

// KeyRequest is the body of POST /api/v1/keys.
type KeyRequest struct {
	// Project is the key's project (ID or name); empty means the caller's.
	Project string `json:"project"`
	// Role is "admin" or "member" (default).
	Role string `json:"role"`
	Name string `json:"name"`
	// TTLSeconds expires the key; 0 means never.
	TTLSeconds int64 `json:"ttl_seconds"`
}

// KeyCreated answers POST /api/v1/keys: the key, shown this once only.
type KeyCreated struct {
	APIKey
	Key string `json:"key"`
}

// AuditEntry records who (key prefix, project) did what (method and route
// pattern) to which object, when, and the response status.
type AuditEntry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	KeyPrefix string    `json:"key_prefix"`
	ProjectID string    `json:"project_id"`
	Action    string    `json:"action"`
	Object    string    `json:"object,omitempty"`
	Status    int       `json:"status"`
}

// AuditList is the body of GET /api/v1/audit, newest first; Next is the
// ?before= of the next page.
type AuditList struct {
	Entries []*AuditEntry `json:"entries"`
	Next    int64         `json:"next,omitempty"`
}

// LogRecord is one log record: a line with its labels.
type LogRecord struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Project     string    `json:"project,omitempty"`
	VMID        string    `json:"vm_id,omitempty"`
	TaskID      string    `json:"task_id,omitempty"`
	ExecutionID string    `json:"execution_id,omitempty"`
	// Stream is stdout, stderr, lifecycle, task or aetherd.
	Stream string `json:"stream"`
	Level  string `json:"level,omitempty"`
	Line   string `json:"line"`
	// Truncated says the line was cut at logging.max_line_bytes.
	Truncated bool `json:"truncated,omitempty"`
}

// LogQuery is the body of POST /api/v1/logs/query. Empty fields match all;
// the project is always the caller's.
type LogQuery struct {
	// VMID is a sandbox ID or name.
	VMID        string    `json:"vm_id,omitempty"`
	TaskID      string    `json:"task_id,omitempty"`
	ExecutionID string    `json:"execution_id,omitempty"`
	Stream      string    `json:"stream,omitempty"`
	Level       string    `json:"level,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
	// Contains keeps lines containing it (case-sensitive).
	Contains string `json:"contains,omitempty"`
	// Limit is the page size: default 100, at most 5000.
	Limit int `json:"limit,omitempty"`
	// Direction is backward (newest first, default) or forward.
	Direction string `json:"direction,omitempty"`
	// Cursor is a previous page's next.
	Cursor string `json:"cursor,omitempty"`
}

// LogPage is one page of records.
type LogPage struct {
	Records []LogRecord `json:"records"`
	// Next continues with the following page; empty on the last.
	Next string `json:"next,omitempty"`
}

// LogStreamMessage is one WebSocket text message of GET /api/v1/logs/stream:
// a record, or how many records this stream has missed so far because the
// client read too slowly.
type LogStreamMessage struct {
	Record  *LogRecord `json:"record,omitempty"`
	Dropped uint64     `json:"dropped,omitempty"`
}

// Session describes a dashboard session (POST and GET /api/v1/session):
// the key it logged in with and the CSRF token its cookie-authenticated
// mutating requests must carry (X-CSRF-Token).
type Session struct {
	KeyPrefix string `json:"key_prefix"`
	ProjectID string `json:"project_id"`
	Role      string `json:"role"`
	CSRFToken string `json:"csrf_token"`
}

// Worker is a host that runs sandboxes (GET /api/v1/workers).
type Worker struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Runtime string `json:"runtime"`
	// Capacity caps how many sandboxes it may hold, VCPUs and MemoryMB
	// budget their limits summed (0: no limit of that kind); Sandboxes,
	// UsedVCPUs and UsedMemoryMB are what it holds (sandboxes that hold
	// resources, pool sandboxes included).
	Capacity     int       `json:"capacity"`
	VCPUs        int       `json:"vcpus"`
	MemoryMB     int       `json:"memory_mb"`
	Sandboxes    int       `json:"sandboxes"`
	UsedVCPUs    int       `json:"used_vcpus"`
	UsedMemoryMB int       `json:"used_memory_mb"`
	StartedAt    time.Time `json:"started_at"`
	HeartbeatAt  time.Time `json:"heartbeat_at"`
}

// WorkerList is the body of GET /api/v1/workers.
type WorkerList struct {
	Workers []*Worker `json:"workers"`
}

// PTY WebSocket message types (GET /api/v1/vms/{id}/pty).
const (
	PtyResize = "resize" // client → server: Cols, Rows
	PtySignal = "signal" // client → server: Signal
	PtyExit   = "exit"   // server → client: ExitCode, Signal
	PtyError  = "error"  // server → client: Error
)

// PtyMessage is one text message on the PTY WebSocket. Binary messages carry
// the terminal's raw bytes: the client's are typed into the terminal, the
// server's are its output. Text messages carry one PtyMessage:
//
//   - client → server {"type":"resize","cols":C,"rows":R} sets the
//     terminal's size (1..1000 each);
//   - client → server {"type":"signal","signal":"SIGINT"} signals the
//     terminal's foreground process group (SIGHUP, SIGINT, SIGQUIT, SIGKILL,
//     SIGTERM, SIGUSR1, SIGUSR2, SIGTSTP, SIGCONT, SIGWINCH);
//   - server → client {"type":"exit","exit_code":N} (exit_code -1 and
//     "signal":"SIGKILL" when a signal ended it) once the process ended and
//     its output was sent, then a normal closure;
//   - server → client {"type":"error","error":{...}} when a message was bad
//     (the session continues) or the session broke (it closes).
type PtyMessage struct {
	Type     string       `json:"type"`
	Cols     int          `json:"cols,omitempty"`
	Rows     int          `json:"rows,omitempty"`
	Signal   string       `json:"signal,omitempty"`
	ExitCode *int         `json:"exit_code,omitempty"`
	Error    *ErrorDetail `json:"error,omitempty"`
}

// PreviewRequest is the body of POST /api/v1/vms/{id}/previews.
type PreviewRequest struct {
	// Port is the sandbox port the token opens (1-65535). Required.
	Port int `json:"port"`
	// TTLSeconds is the token's lifetime; 0 means 24 hours, at most 7 days.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// Preview is a public preview token of one port of a sandbox. Token, the
// secret, is only returned when the token is created.
type Preview struct {
	ID   string `json:"id"`
	VMID string `json:"vm_id"`
	Port int    `json:"port"`
	// URL is the port's preview host, {port}-{sandbox ID}.{preview_domain}.
	URL string `json:"url"`
	// Token is the secret (creation only).
	Token string `json:"token,omitempty"`
	// TokenURL is URL with the token, which opens the preview in a browser
	// (creation only).
	TokenURL  string    `json:"token_url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PreviewList is the body of GET /api/v1/vms/{id}/previews, newest first.
type PreviewList struct {
	Previews []*Preview `json:"previews"`
}
