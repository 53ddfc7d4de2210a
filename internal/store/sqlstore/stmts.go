package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxStmts bounds a pool's prepared statements. The store's queries are
// fixed texts or a few variants of each (filters, short IN lists), well
// under this; past it, a new text runs unprepared instead of growing the
// cache (nothing is evicted, so a statement in use is never closed).
const maxStmts = 256

// stmtCache keeps one pool's prepared statements by their SQL text
// (Dialect.PrepareStatements). database/sql prepares a *sql.Stmt lazily
// on each pooled connection it runs on and keeps it there, so a statement
// is parsed once per connection instead of on every call. A schema change
// needs nothing here: SQLite re-prepares a statement whose schema changed
// when it next runs (sqlite3_prepare_v2). It is safe for concurrent use; a
// nil *stmtCache caches nothing.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
}

// get returns the prepared statement for q on pool, preparing it on first
// use; nil means run q unprepared (no cache, cache full or closed, or q did
// not prepare: running it reports the error).
func (c *stmtCache) get(ctx context.Context, pool *sql.DB, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	s, ok := c.m[q]
	full := c.closed || len(c.m) >= maxStmts
	c.mu.Unlock()
	if ok || full {
		return s
	}
	// Prepared outside the lock: preparing waits for a connection.
	s, err := pool.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok || c.closed || len(c.m) >= maxStmts {
		s.Close() // another caller cached q first, or the cache closed
		return old
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = s
	return s
}

// close closes every cached statement; later gets return nil.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m, c.closed = nil, true
}
