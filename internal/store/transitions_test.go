package store

import (
	"slices"
	"testing"
)

// TestTransitions pins the state machines' key edges (issue 10: deleted went
// back to deleting or failed, and deleting back to running).
func TestTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		table    map[string][]string
		from, to string
		want     bool
	}{
		{"create succeeds", VMTransitions, VMCreating, VMRunning, true},
		{"deleted is final", VMTransitions, VMDeleted, VMDeleting, false},
		{"deleted not failed", VMTransitions, VMDeleted, VMFailed, false},
		{"deleted not again", VMTransitions, VMDeleted, VMDeleted, false},
		{"deleting not resurrected", VMTransitions, VMDeleting, VMRunning, false},
		{"deleting not lost", VMTransitions, VMDeleting, VMLost, false},
		{"delete gave up", VMTransitions, VMDeleting, VMFailed, true},
		{"delete twice", VMTransitions, VMDeleting, VMDeleting, true},
		{"adopt lost", VMTransitions, VMLost, VMRunning, true},
		{"failed stays down", VMTransitions, VMFailed, VMRunning, false},
		{"unknown status", VMTransitions, "bogus", VMRunning, false},
		{"task retry", TaskTransitions, TaskRunning, TaskPending, true},
		{"task progress", TaskTransitions, TaskRunning, TaskRunning, true},
		{"task final", TaskTransitions, TaskSucceeded, TaskFailed, false},
		{"task not restarted", TaskTransitions, TaskFailed, TaskPending, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := CanMove(tt.table, tt.from, tt.to); got != tt.want {
				t.Errorf("CanMove(%s -> %s) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
	if got, want := Sources(VMTransitions, VMRunning), []string{VMCreating, VMLost, VMPaused, VMPooled, VMRunning, VMStopped}; !slices.Equal(got, want) {
		t.Errorf("Sources(running) = %v, want %v", got, want)
	}
	if got := Sources(VMTransitions, "bogus"); got != nil {
		t.Errorf("Sources(bogus) = %v, want nil", got)
	}
}
