package agentproto

import (
	"fmt"
	"time"
)

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
	// ForkerTID is, for an agent started to run commands in a workload
	// pids group, the id (in the sandbox's pid namespace) of the thread
	// the host must move into that group before any command can start
	// (answer only). It comes from the guest: the host moves it only if it
	// is a thread, not the main one, of the process answering on the
	// connection, in the sandbox.
	ForkerTID int `json:"forker_tid,omitempty"`
}

// Operation names carried in Request.Op.
const (
	OpExec    = "exec"
	OpFilePut = "file_put"
	OpFileGet = "file_get"
	OpHealth  = "health"
	OpPty     = "pty"  // version 2
	OpDial    = "dial" // version 2
	// Version 3:
	OpProcesses = "processes"
	OpSignal    = "signal"
	OpOutput    = "output"
	OpList      = "list"
	OpWatch     = "watch"
)

// Bounds of the version 3 operations.
const (
	// MaxProcesses is how many processes the agent tracks; starting one more
	// evicts the oldest finished one, and fails when all are running.
	MaxProcesses = 256
	// MaxProcessOutput is how many bytes of a tracked process's output
	// (stdout and stderr together) the agent keeps; older output is dropped
	// and counted.
	MaxProcessOutput = 1 << 20
	// MaxListEntries is how many entries a list returns at most.
	MaxListEntries = 10000
	// MaxWatches is how many directories one watch stream watches at most;
	// beyond it the agent sends one overflow event and skips the rest.
	MaxWatches = 1024
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
	Signal  *ProcessSignal  `json:"signal,omitempty"`
	Output  *OutputRequest  `json:"output,omitempty"`
	List    *ListRequest    `json:"list,omitempty"`
	Watch   *WatchRequest   `json:"watch,omitempty"`
}

// ProcessSignal sends Signal to the process group of PID, a process the
// agent started with Background or KeepRunning and that still runs.
type ProcessSignal struct {
	PID    int `json:"pid"`
	Signal int `json:"signal"`
}

// OutputRequest reads a tracked process's buffered output; Follow streams
// what follows until the process exits.
type OutputRequest struct {
	PID    int  `json:"pid"`
	Follow bool `json:"follow,omitempty"`
}

// ListRequest lists the directory Path (absolute).
type ListRequest struct {
	Path string `json:"path"`
}

// WatchRequest watches the directory Path (absolute) for changes, and with
// Recursive its subdirectories (symlinked ones are skipped).
type WatchRequest struct {
	Path      string `json:"path"`
	Recursive bool   `json:"recursive,omitempty"`
}

// Process is one process in the agent's process table.
type Process struct {
	PID int `json:"pid"`
	// Argv is the command, each argument cut at 256 bytes and at most 32 of them.
	Argv      []string  `json:"argv"`
	StartedAt time.Time `json:"started_at"`
	Running   bool      `json:"running"`
	// Exit is set once the process has ended.
	Exit *Exit `json:"exit,omitempty"`
	// OutputBytes is all the output it wrote; Dropped how much of it the
	// ring buffer no longer holds.
	OutputBytes int64 `json:"output_bytes"`
	Dropped     int64 `json:"dropped"`
}

// Directory entry types in DirEntry.Type.
const (
	EntryFile    = "file"
	EntryDir     = "dir"
	EntrySymlink = "symlink"
	EntryOther   = "other"
)

// DirEntry is one directory entry, as lstat sees it.
type DirEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits (with setuid, setgid, sticky).
	Mode  uint32    `json:"mode"`
	MTime time.Time `json:"mtime"`
	// Target is a symlink's target, unresolved.
	Target string `json:"target,omitempty"`
}

// File event operations in FileEvent.Op.
const (
	EventCreate = "create"
	EventWrite  = "write"
	EventRemove = "remove"
	EventRename = "rename" // the old name; the new one comes as create
	// EventOverflow: events were lost (the queue filled, or the tree has
	// more than MaxWatches directories); rescan.
	EventOverflow = "overflow"
)

// FileEvent is one change under a watched directory.
type FileEvent struct {
	Op string `json:"op"`
	// Path is relative to the watched directory ("" is the directory itself).
	Path string `json:"path"`
	// Dir is true when the entry is a directory.
	Dir bool `json:"dir,omitempty"`
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
	// Background (version 3) tracks the process and answers its PID at once;
	// Stdin must be false.
	Background bool `json:"background,omitempty"`
	// KeepRunning (version 3) tracks the process and streams its output;
	// the stream breaking leaves it running.
	KeepRunning bool `json:"keep_running,omitempty"`
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
	// PID is a tracked process's (exec with Background, output).
	PID int `json:"pid,omitempty"`
	// Dropped is how many bytes of output the ring buffer dropped (output).
	Dropped int64 `json:"dropped,omitempty"`
	// Processes is the process table (processes).
	Processes []Process `json:"processes,omitempty"`
	// Truncated says the listing stopped at MaxListEntries (list).
	Truncated bool `json:"truncated,omitempty"`
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
	// CodeConflict: the target is in the wrong state (a process that has
	// already exited).
	CodeConflict = "conflict"
)

// RemoteError is an operation's failure as reported by the agent.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string { return fmt.Sprintf("agent: %s", e.Message) }
