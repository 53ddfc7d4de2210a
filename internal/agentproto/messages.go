package agentproto

import "fmt"

// Hello is the first frame each side sends. The host sends its range; the
// agent answers with the negotiated Version and facts about itself.
type Hello struct {
	// Version is the highest version the sender speaks; in the agent's answer,
	// the version both will use.
	Version int `json:"version"`
	// MinVersion is the lowest version the sender speaks.
	MinVersion int `json:"min_version"`
	// Agent is the agent's build version (answer only).
	Agent string `json:"agent,omitempty"`
	// PID1 is true when the agent runs as the sandbox's init (answer only).
	PID1 bool `json:"pid1,omitempty"`
	// Hostname is the sandbox's hostname (answer only).
	Hostname string `json:"hostname,omitempty"`
}

// Operation names carried in Request.Op.
const (
	OpExec    = "exec"
	OpFilePut = "file_put"
	OpFileGet = "file_get"
	OpHealth  = "health"
	OpPty     = "pty"  // version 2
	OpDial    = "dial" // version 2
)

// Request opens an operation stream. Exactly one of the pointer fields
// matching Op is set.
type Request struct {
	Op      string          `json:"op"`
	Exec    *ExecRequest    `json:"exec,omitempty"`
	FilePut *FilePutRequest `json:"file_put,omitempty"`
	FileGet *FileGetRequest `json:"file_get,omitempty"`
	Pty     *PtyRequest     `json:"pty,omitempty"`
	Dial    *DialRequest    `json:"dial,omitempty"`
}

// PtyRequest describes one process to run on a new pseudo-terminal.
type PtyRequest struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH.
	Argv []string `json:"argv"`
	// Env is added to the agent's base environment as KEY=VALUE entries;
	// TERM is xterm-256color unless Env sets it.
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory; empty means "/".
	Cwd string `json:"cwd,omitempty"`
	// User is a user name or numeric uid to run as; empty means the agent's.
	User string `json:"user,omitempty"`
	// Cols and Rows are the terminal's initial size; 0 means 80x24.
	Cols uint16 `json:"cols,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
}

// Resize changes a pty's window size (the process gets SIGWINCH).
type Resize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// DialRequest asks the agent to connect to a TCP port on the guest's loopback.
type DialRequest struct {
	Port int `json:"port"`
}

// ExecRequest describes one process to run.
type ExecRequest struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH.
	Argv []string `json:"argv"`
	// Env is added to the agent's base environment as KEY=VALUE entries.
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory; empty means "/".
	Cwd string `json:"cwd,omitempty"`
	// User is a user name or numeric uid to run as; empty means the agent's.
	User string `json:"user,omitempty"`
	// Stdin says the host will send Stdin frames; without it stdin is empty.
	Stdin bool `json:"stdin,omitempty"`
	// TimeoutMS kills the process group after this long; 0 means no timeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// SignalRequest asks the agent to send a signal to the process group.
type SignalRequest struct {
	Signal int `json:"signal"`
}

// Exit ends an exec stream.
type Exit struct {
	// ExitCode is the process's exit status, or -1 when a signal ended it.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that ended the process ("SIGKILL"), if any.
	Signal string `json:"signal,omitempty"`
	// TimedOut is true when the agent killed the process at its timeout.
	TimedOut bool `json:"timed_out,omitempty"`
	// DurationMS is the process's wall time from start to exit.
	DurationMS int64 `json:"duration_ms"`
}

// FilePutRequest writes a file atomically: data goes to a temporary file in
// the same directory that is renamed over Path after DataEnd.
type FilePutRequest struct {
	Path string `json:"path"`
	// Mode is the permission bits; 0 means 0644.
	Mode uint32 `json:"mode,omitempty"`
	// MkdirAll creates missing parent directories.
	MkdirAll bool `json:"mkdir_all,omitempty"`
}

// FileGetRequest reads a regular file.
type FileGetRequest struct {
	Path string `json:"path"`
}

// Response answers file and health operations.
type Response struct {
	// Size is the file's size in bytes (file_get before the data, file_put after).
	Size int64 `json:"size,omitempty"`
	// Mode is the file's permission bits (file_get).
	Mode uint32 `json:"mode,omitempty"`
	// Execs is the number of running processes (health).
	Execs int `json:"execs,omitempty"`
}

// Error codes carried in RemoteError.Code.
const (
	CodeNotFound        = "not_found"
	CodeInvalidArgument = "invalid_argument"
	CodePermission      = "permission_denied"
	CodeInternal        = "internal"
	// CodeUnavailable: the operation's target is not there (nothing listens
	// on a dialed port).
	CodeUnavailable = "unavailable"
)

// RemoteError is an operation's failure as reported by the agent.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string { return fmt.Sprintf("agent: %s", e.Message) }
