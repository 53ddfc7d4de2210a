// Package logs is Aetherium's log pipeline: what happens to sandboxes
// (lifecycle changes, task progress, every exec's output lines, tool
// installs) and aetherd's own slog output become Records. A Pipeline takes
// records without ever blocking the caller, writes them in batches to a
// local Store with bounded retention (always on: package sqllog, SQLite in
// embedded mode and PostgreSQL in distributed mode), fans them out to live
// tails (Hub) and copies them to Providers (stdout, loki). The API queries
// the Store and tails the Hub.
//
// This package is a leaf (no store, no worker); cmd/aetherd wires it, the
// worker feeds it exec output through LineWriter, and the API reads it.
package logs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Streams: the kind of record, one label.
const (
	StreamStdout    = "stdout"    // a line a command wrote to stdout
	StreamStderr    = "stderr"    // a line a command wrote to stderr
	StreamLifecycle = "lifecycle" // a sandbox changed status
	StreamTask      = "task"      // a task changed status or progress
	StreamAetherd   = "aetherd"   // aetherd's own slog output
)

// Levels, as slog names them in lower case.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Labels say what a record is about. Empty fields are unknown or not
// applicable (aetherd's own records have no project).
type Labels struct {
	Project     string `json:"project,omitempty"`
	VMID        string `json:"vm_id,omitempty"`
	TaskID      string `json:"task_id,omitempty"`
	ExecutionID string `json:"execution_id,omitempty"`
	Stream      string `json:"stream,omitempty"`
	Level       string `json:"level,omitempty"`
}

// Record is one log line with its labels.
type Record struct {
	// ID orders records in one Store: assigned by Store.Append, increasing;
	// 0 before that.
	ID int64 `json:"id,omitempty"`
	// Time is when the line was produced (UTC, microsecond precision once stored).
	Time time.Time `json:"time"`
	Labels
	// Line is the text, without its newline, at most the pipeline's
	// MaxLineBytes.
	Line string `json:"line"`
	// Truncated says the line was cut at the cap; the rest was dropped.
	Truncated bool `json:"truncated,omitempty"`
}

// Direction orders query results.
type Direction string

const (
	// Backward is newest first (the default, as in Loki).
	Backward Direction = "backward"
	// Forward is oldest first.
	Forward Direction = "forward"
)

// MaxLimit bounds one query's page.
const MaxLimit = 5000

// Query selects records. Label fields that are set must match exactly; an
// empty field matches everything except that Project is always compared
// (the API sets it from the caller's project).
type Query struct {
	// Labels to match; Project is always compared, even when empty.
	Labels Labels
	// Since and Until bound Time (Since inclusive, Until exclusive); zero
	// means unbounded.
	Since, Until time.Time
	// Contains keeps records whose line contains it (case-sensitive); empty
	// matches all.
	Contains string
	// Limit is the page size; 0 means 100, at most MaxLimit.
	Limit int
	// Direction is Backward (default) or Forward.
	Direction Direction
	// Cursor continues a previous page (its Result.Next); empty starts at
	// the newest (Backward) or oldest (Forward) record.
	Cursor string
}

// Normalize applies defaults and checks q; errors wrap ErrInvalidQuery and
// name the field.
func (q *Query) Normalize() error {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return fmt.Errorf("%w: limit: %d is not between 1 and %d", ErrInvalidQuery, q.Limit, MaxLimit)
	}
	if q.Direction == "" {
		q.Direction = Backward
	}
	if q.Direction != Backward && q.Direction != Forward {
		return fmt.Errorf("%w: direction: %q is not forward or backward", ErrInvalidQuery, q.Direction)
	}
	if q.Cursor != "" {
		if _, err := ParseCursor(q.Cursor); err != nil {
			return err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return fmt.Errorf("%w: until must be after since", ErrInvalidQuery)
	}
	return nil
}

// Match reports whether r satisfies q's labels, time range and text
// (everything but the cursor): the live tail's filter.
func (q *Query) Match(r *Record) bool {
	l := q.Labels
	return r.Project == l.Project && eq(l.VMID, r.VMID) && eq(l.TaskID, r.TaskID) &&
		eq(l.ExecutionID, r.ExecutionID) && eq(l.Stream, r.Stream) && eq(l.Level, r.Level) &&
		(q.Since.IsZero() || !r.Time.Before(q.Since)) && (q.Until.IsZero() || r.Time.Before(q.Until)) &&
		(q.Contains == "" || strings.Contains(r.Line, q.Contains))
}

func eq(want, got string) bool { return want == "" || want == got }

// Result is one page of records.
type Result struct {
	Records []Record `json:"records"`
	// Next is the cursor of the following page; empty when this page was
	// the last one.
	Next string `json:"next,omitempty"`
}

// ErrInvalidQuery is wrapped by every error about a malformed Query.
var ErrInvalidQuery = errors.New("invalid log query")

// Cursor returns the cursor that continues after record ID id.
func Cursor(id int64) string { return "c" + strconv.FormatInt(id, 10) }

// ParseCursor returns the record ID in a cursor made by Cursor.
func ParseCursor(c string) (int64, error) {
	if len(c) < 2 || c[0] != 'c' {
		return 0, fmt.Errorf("%w: cursor: %q is not a cursor from a previous result", ErrInvalidQuery, c)
	}
	id, err := strconv.ParseInt(c[1:], 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("%w: cursor: %q is not a cursor from a previous result", ErrInvalidQuery, c)
	}
	return id, nil
}

// Store keeps records locally with bounded retention. Implementations are
// safe for concurrent use; logstest.Run is their conformance suite.
type Store interface {
	// Append stores records in one batch, assigning each its ID (in
	// order, increasing across calls). Times are kept to the microsecond.
	Append(ctx context.Context, recs []Record) error
	// Query returns one page of the records matching q (after
	// q.Normalize; errors wrapping ErrInvalidQuery otherwise).
	Query(ctx context.Context, q *Query) (*Result, error)
	// Prune deletes records older than before and, beyond that, the oldest
	// records past keep (0 means no count limit). It returns how many it
	// deleted.
	Prune(ctx context.Context, before time.Time, keep int64) (int64, error)
	// Close releases the store. Idempotent.
	Close() error
}
