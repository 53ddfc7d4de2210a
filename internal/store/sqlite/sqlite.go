// Package sqlite is the embedded-mode store.Store: one SQLite file (pure Go,
// modernc.org/sqlite, no cgo) in the data directory, in WAL mode. By default
// every commit is synced to disk (synchronous=FULL, with fdatasync), so an acknowledged write
// survives a crash or power loss; SyncNormal trades the last commits on power
// loss (never on a process crash) for lower tail latency.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/golang-migrate/migrate/v4"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	modernc "modernc.org/sqlite"

	"github.com/aetherium/aetherium/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's: ? placeholders, its unique-constraint message,
// writes that take turns in the process (one writer at a time anyway), and
// the exec path's durable writes committed in groups.
var Dialect = sqlstore.Dialect{
	IsUnique:        func(err error) bool { return strings.Contains(err.Error(), "UNIQUE constraint failed") },
	SerializeWrites: true,
	GroupCommit:     true,
}

// commitWithFdatasync makes every SQLite commit in the process sync with
// fdatasync(2), as SQLite's own Linux builds do (its configure finds it;
// modernc's transpiled library keeps fsync unless told): the same
// durability without flushing the file's timestamps through the file
// system's journal. On this kind of host the median commit is the same and
// the slow tail, with dockerd removing containers on the same file system,
// about a quarter shorter (BENCHMARKS.md).
var commitWithFdatasync sync.Once

// Synchronous modes for OpenDB (SQLite's PRAGMA synchronous).
const (
	SyncFull   = "FULL"
	SyncNormal = "NORMAL"
)

// Open opens (creating if needed) the database file at path and migrates it
// to the newest schema. sync is SyncFull or SyncNormal; empty means SyncFull.
func Open(ctx context.Context, path, sync string) (*sqlstore.Store, error) {
	db, err := OpenDB(path, sync)
	if err != nil {
		return nil, err
	}
	m, err := newMigrate(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	marker, err := OpenDB(path, SyncNormal) // after migrating: the schema is there
	if err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, Dialect, marker), nil
}

// OpenDB opens a SQLite database with the pragmas every Aetherium database
// uses: WAL, a busy timeout instead of immediate SQLITE_BUSY, foreign keys, and
// write transactions that take the write lock at BEGIN (so two writers queue
// instead of deadlocking on a lock upgrade). Its connections keep the
// statements they run prepared (cachingConnector).
func OpenDB(path, sync string) (*sql.DB, error) {
	commitWithFdatasync.Do(func() { modernc.Fdatasync(true) })
	name, err := dsn(path, sync)
	if err != nil {
		return nil, err
	}
	c, err := modernc.NewConnector(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return sql.OpenDB(cachingConnector{c}), nil
}

// dsn is the driver's name for path with OpenDB's pragmas.
func dsn(path, sync string) (string, error) {
	if sync == "" {
		sync = SyncFull
	}
	if sync != SyncFull && sync != SyncNormal {
		return "", fmt.Errorf("sqlite: synchronous %q is not FULL or NORMAL", sync)
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(" + sync + ")"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode(), nil
}

// Migrate returns a golang-migrate instance for the store's schema, for the
// `aetherd migrate` command. The caller closes it.
func Migrate(path string) (*migrate.Migrate, error) {
	db, err := OpenDB(path, SyncFull)
	if err != nil {
		return nil, err
	}
	return newMigrate(db)
}

func newMigrate(db *sql.DB) (*migrate.Migrate, error) {
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	drv, err := migratesqlite.WithInstance(db, &migratesqlite.Config{})
	if err != nil {
		return nil, fmt.Errorf("migrate driver: %w", err)
	}
	return migrate.NewWithInstance("iofs", src, "sqlite", drv)
}
