// Package postgres is the distributed-mode store.Store: PostgreSQL through
// pgx v5 (database/sql interface, so broken connections are replaced and a
// restarted server is reconnected to without restarting aetherd). Queries are
// shared with SQLite in package sqlstore; this package owns the driver and
// the Postgres migrations (golang-migrate format, versions shared with the
// stock migrate CLI).
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/aetherium/aetherium/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's: $n placeholders and SQLSTATE 23505 for unique
// violations.
var Dialect = sqlstore.Dialect{
	Numbered:  true,
	ForUpdate: " FOR UPDATE",
	IsUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	IsUnavailable: func(err error) bool {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			// Class 08: connection exception; class 57: operator intervention
			// (shutdown, cannot connect now).
			return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57")
		}
		var ce *pgconn.ConnectError
		var ne net.Error
		return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	},
}

// Open connects to url (postgres://…), migrates the schema to the newest
// version and returns the store. Schema search_path may be set in the URL.
func Open(ctx context.Context, url string) (*sqlstore.Store, error) {
	db, err := openDB(url, "")
	if err != nil {
		return nil, err
	}
	m, err := newMigrate(db)
	if err == nil {
		if err = m.Up(); errors.Is(err, migrate.ErrNoChange) {
			err = nil
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	marker, err := openDB(url, "off")
	if err != nil {
		db.Close()
		return nil, err
	}
	marker.SetMaxOpenConns(4)
	return sqlstore.New(db, Dialect, marker), nil
}

// openDB opens a pool of connections to url; syncCommit, when not empty,
// sets their synchronous_commit.
func openDB(url, syncCommit string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if syncCommit != "" {
		cfg.RuntimeParams["synchronous_commit"] = syncCommit
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// Migrate returns a golang-migrate instance for `aetherd migrate`. The caller
// closes it.
func Migrate(url string) (*migrate.Migrate, error) {
	db, err := openDB(url, "")
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
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return migrate.NewWithInstance("iofs", src, "pgx5", drv)
}
