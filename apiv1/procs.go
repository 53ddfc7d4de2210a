package apiv1

import "time"

// Process is a process started through Aetherium with background or
// keep_running, as GET /api/v1/vms/{id}/processes lists it. The sandbox's
// agent keeps at most 256 (finished ones are forgotten first) and the last
// 1 MiB of each one's output.
type Process struct {
	PID       int       `json:"pid"`
	Argv      []string  `json:"argv"`
	StartedAt time.Time `json:"started_at"`
	Running   bool      `json:"running"`
	// ExitCode, Signal and TimedOut say how a finished process ended.
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	// OutputBytes is all the output it wrote (stdout and stderr); Dropped
	// how many of those bytes the agent no longer holds.
	OutputBytes int64 `json:"output_bytes"`
	Dropped     int64 `json:"dropped"`
}

// ProcessList answers GET /api/v1/vms/{id}/processes.
type ProcessList struct {
	Processes []Process `json:"processes"`
}

// ProcessStarted answers an exec with background (202).
type ProcessStarted struct {
	PID int `json:"pid"`
}

// SignalRequest is the body of POST /api/v1/vms/{id}/processes/{pid}/signal.
type SignalRequest struct {
	// Signal is a name, with or without SIG: HUP, INT, QUIT, KILL, TERM,
	// USR1, USR2, TSTP, CONT or WINCH.
	Signal string `json:"signal"`
}

// Directory entry types in DirEntry.Type.
const (
	EntryFile    = "file"
	EntryDir     = "dir"
	EntrySymlink = "symlink"
	EntryOther   = "other"
)

// DirEntry is one entry of a directory listing, as lstat sees it: a
// symlink is described (with its target), never followed.
type DirEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits, with setuid (04000), setgid and sticky.
	Mode   uint32    `json:"mode"`
	MTime  time.Time `json:"mtime"`
	Target string    `json:"target,omitempty"`
}

// DirListing answers GET /api/v1/vms/{id}/files/list: at most 10,000
// entries sorted by name, Truncated when there were more.
type DirListing struct {
	Path      string     `json:"path"`
	Entries   []DirEntry `json:"entries"`
	Truncated bool       `json:"truncated"`
}

// File event operations in FileEvent.Op.
const (
	FileCreate = "create"
	FileWrite  = "write"
	FileRemove = "remove"
	// FileRename is the old name; the new one comes as FileCreate.
	FileRename = "rename"
	// FileOverflow says events were lost (a full queue, or a tree of more
	// than 1,024 directories): rescan.
	FileOverflow = "overflow"
)

// FileEvent is one change under a watched directory, as
// GET /api/v1/vms/{id}/files/watch streams it (Server-Sent Events:
// "event: file", "data: <FileEvent JSON>").
type FileEvent struct {
	Op string `json:"op"`
	// Path is relative to the watched directory ("" is the directory itself).
	Path string `json:"path"`
	Dir  bool   `json:"dir,omitempty"`
}
