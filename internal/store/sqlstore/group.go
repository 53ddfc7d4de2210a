package sqlstore

import (
	"context"
	"slices"
	"sync"
	"time"
)

// queryRow runs one statement that returns a row.
type queryRow func(ctx context.Context, q string, args ...any) interface{ Scan(...any) error }

// groupWrite is one durable write waiting for a group commit.
type groupWrite struct {
	ctx  context.Context
	fn   func(queryRow) error
	done chan error
}

// group holds the durable writes waiting to be committed together
// (Dialect.GroupCommit).
type group struct {
	mu      sync.Mutex
	pending []*groupWrite
}

// durable runs fn, a write that must be durable when it returns (an
// execution's finish). With Dialect.GroupCommit, writes arriving while
// another commit waits for the disk are committed together in one
// transaction, one flush for them all: the writer that gets the write turn
// commits every write pending at that moment, its own included, and a
// writer whose write was committed by another returns its result without a
// commit of its own. Each write still returns only once its commit is
// durable; one write's error is its own.
func (s *Store) durable(ctx context.Context, fn func(queryRow) error) error {
	return s.durableWithin(ctx, 0, fn)
}

// durableWithin is durable for a write no request waits on (an audit
// entry, written after its request was answered): with GroupCommit it
// first waits up to linger for another durable write (the next exec's
// finish) to commit it in that write's transaction, and only then commits
// it itself. So it costs no flush of its own while execs run, and never
// holds the write turn through a flush that the next exec's writes would
// wait behind. It still returns only once its write is durable.
func (s *Store) durableWithin(ctx context.Context, linger time.Duration, fn func(queryRow) error) error {
	if !s.db.d.GroupCommit || s.db.w == nil {
		return fn(func(ctx context.Context, q string, args ...any) interface{ Scan(...any) error } {
			return s.db.QueryRowContext(ctx, q, args...)
		})
	}
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.group.mu.Lock()
	s.group.pending = append(s.group.pending, w)
	s.group.mu.Unlock()
	if linger > 0 {
		t := time.NewTimer(linger)
		select {
		case err := <-w.done: // committed with another's write
			t.Stop()
			return err
		case <-ctx.Done():
			t.Stop()
			return s.group.withdraw(w, ctx.Err())
		case <-t.C:
		}
	}
	release, err := s.db.w.take(ctx)
	if err != nil {
		return s.group.withdraw(w, err)
	}
	defer release()
	select {
	case err := <-w.done: // committed by the writer before
		return err
	default:
	}
	s.group.mu.Lock()
	batch := s.group.pending
	s.group.pending = nil
	s.group.mu.Unlock()
	// Not cancelled by the caller, but cancellable: the driver clears a
	// connection's mark of an earlier call's cancelled lock wait only for a
	// call whose context can end, and that mark would interrupt this one.
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	s.commitGroup(gctx, batch)
	return <-w.done
}

// withdraw takes w, whose caller gives up with err, out of the pending
// writes; if another writer already took it to commit, it returns that
// commit's outcome instead.
func (g *group) withdraw(w *groupWrite, err error) error {
	g.mu.Lock()
	i := slices.Index(g.pending, w)
	if i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
	}
	g.mu.Unlock()
	if i >= 0 {
		return err
	}
	return <-w.done // another writer is committing it
}

// commitGroup runs batch in one transaction and reports each write's
// outcome; the caller holds the write turn. A write whose caller gave up
// before its turn is skipped; once started, every write runs without its
// caller's cancellation (SQLite ends the whole transaction when a
// statement is interrupted, which would take the others' writes with it),
// each in a savepoint of its own, so one write's error undoes only that
// write; a batch of one needs no savepoint (its error rolls the
// transaction back). If the transaction itself fails (disk full, I/O),
// every write of the batch reports it and none is kept.
func (s *Store) commitGroup(ctx context.Context, batch []*groupWrite) {
	errs := make([]error, len(batch))
	t, err := s.db.beginHeld(ctx)
	if err == nil {
		q := func(_ context.Context, q string, args ...any) interface{ Scan(...any) error } {
			return t.QueryRowContext(ctx, q, args...)
		}
		for i, w := range batch {
			if errs[i] = w.ctx.Err(); errs[i] != nil {
				continue
			}
			if len(batch) == 1 {
				errs[i] = w.fn(q)
				break
			}
			if err = inSavepoint(ctx, t, func() error { errs[i] = w.fn(q); return errs[i] }); err != nil {
				break
			}
		}
		switch {
		case err == nil && (len(batch) > 1 || errs[0] == nil):
			err = t.Commit()
		default:
			t.Rollback()
		}
	}
	for i, w := range batch {
		if err != nil {
			errs[i] = err
		}
		w.done <- errs[i]
	}
}

// inSavepoint runs fn in a savepoint of t, rolled back to if fn fails. Its
// error is only the transaction's own: that it cannot go on.
func inSavepoint(ctx context.Context, t tx, fn func() error) error {
	if _, err := t.ExecContext(ctx, "SAVEPOINT group_write"); err != nil {
		return err
	}
	if fn() != nil {
		if _, err := t.ExecContext(ctx, "ROLLBACK TO group_write"); err != nil {
			return err
		}
	}
	_, err := t.ExecContext(ctx, "RELEASE group_write")
	return err
}
