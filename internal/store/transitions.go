package store

import "slices"

// VMTransitions is the sandbox state machine: for each status, the statuses
// a sandbox may move to from it. Both stores enforce it in SQL (an UPDATE
// whose WHERE clause names the allowed sources), so two racing writers can
// never move a row along an edge that is not here; a refused move is
// errdefs.ErrConflict. Writing a sandbox's current status again is allowed
// (idempotent retries), except out of deleted, which is final.
//
//	creating ─▶ running | pooled | lost | failed | deleting | deleted
//	pooled   ─▶ running (claimed) | lost | failed | deleting | deleted
//	running  ─▶ pooled (a pool sandbox after its tools) | paused | stopped | lost | failed | deleting | deleted
//	paused   ─▶ running | lost | failed | deleting | deleted
//	stopped  ─▶ running | lost | failed | deleting | deleted
//	lost     ─▶ running (its worker came back) | failed | deleting | deleted
//	failed   ─▶ deleting | deleted
//	deleting ─▶ failed (the delete gave up) | deleted
//	deleted  ─▶ (none)
//
// Creating is only ever inserted. Deleting is never left for running, so a
// create or resume that loses a race with a delete fails instead of
// resurrecting the sandbox; deleted is never left at all.
var VMTransitions = map[string][]string{
	VMCreating: {VMRunning, VMPooled, VMLost, VMFailed, VMDeleting, VMDeleted},
	VMPooled:   {VMRunning, VMLost, VMFailed, VMDeleting, VMDeleted},
	VMRunning:  {VMPooled, VMPaused, VMStopped, VMLost, VMFailed, VMDeleting, VMDeleted},
	VMPaused:   {VMRunning, VMLost, VMFailed, VMDeleting, VMDeleted},
	VMStopped:  {VMRunning, VMLost, VMFailed, VMDeleting, VMDeleted},
	VMLost:     {VMRunning, VMFailed, VMDeleting, VMDeleted},
	VMFailed:   {VMDeleting, VMDeleted},
	VMDeleting: {VMFailed, VMDeleted},
	VMDeleted:  {},
}

// TaskTransitions is the task state machine, enforced like VMTransitions:
//
//	pending ─▶ running (a worker took it) | succeeded (work already done: a
//	           create answered from a warm pool) | failed (never ran, or gave up)
//	running ─▶ pending (handed back: retry or shutdown) | succeeded | failed
//	succeeded, failed ─▶ (none)
//
// Pending and running may be written again (a retry's error, progress).
// Tasks are inserted pending.
var TaskTransitions = map[string][]string{
	TaskPending:   {TaskRunning, TaskSucceeded, TaskFailed},
	TaskRunning:   {TaskPending, TaskSucceeded, TaskFailed},
	TaskSucceeded: {},
	TaskFailed:    {},
}

// CanMove says whether table allows a row in status from to move to status
// to (a repeat of a status is allowed unless the status has no way out).
func CanMove(table map[string][]string, from, to string) bool {
	next, ok := table[from]
	if !ok {
		return false
	}
	return slices.Contains(next, to) || (from == to && len(next) > 0)
}

// Sources lists, in a stable order, the statuses table allows to move to
// to: what an UPDATE to status to may find in the row. Nil for a status
// the table does not know.
func Sources(table map[string][]string, to string) []string {
	if _, ok := table[to]; !ok {
		return nil
	}
	var out []string
	for from := range table {
		if CanMove(table, from, to) {
			out = append(out, from)
		}
	}
	slices.Sort(out)
	return out
}
