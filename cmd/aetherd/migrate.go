package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/golang-migrate/migrate/v4"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/store/postgres"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

// runMigrate implements `aetherd migrate up|down|version|force N`. Versions
// are golang-migrate's, so the stock migrate CLI agrees with this command.
func runMigrate(args []string) error {
	cfg, rest, err := config.Parse("aetherd migrate", args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return errors.New("migrate: want up, down, version or force VERSION")
	}
	m, err := openMigrate(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer m.Close()
	switch rest[0] {
	case "up":
		err = m.Up()
	case "down":
		err = m.Steps(-1)
	case "force":
		if len(rest) != 2 {
			return errors.New("migrate force: want a version number")
		}
		v, perr := strconv.Atoi(rest[1])
		if perr != nil {
			return fmt.Errorf("migrate force: %q is not a version number", rest[1])
		}
		err = m.Force(v)
	case "version":
		v, dirty, verr := m.Version()
		if errors.Is(verr, migrate.ErrNilVersion) {
			fmt.Println("no migrations applied")
			return nil
		}
		if verr != nil {
			return verr
		}
		fmt.Printf("%d (dirty: %v)\n", v, dirty)
		return nil
	default:
		return fmt.Errorf("migrate: unknown command %q (want up, down, version or force)", rest[0])
	}
	if errors.Is(err, migrate.ErrNoChange) {
		fmt.Println("no change")
		return nil
	}
	return err
}

// openMigrate returns the migrator of the configured store: PostgreSQL when
// database_url is set, else the SQLite file in the data dir.
func openMigrate(databaseURL, dataDir string) (*migrate.Migrate, error) {
	if databaseURL != "" {
		return postgres.Migrate(databaseURL)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	return sqlite.Migrate(filepath.Join(dataDir, "aether.db"))
}
