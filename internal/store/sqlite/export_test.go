package sqlite

import "database/sql"

// OpenBare opens path as OpenDB does but through the bare driver, whose
// connections prepare nothing (the benchmarks' baseline).
func OpenBare(path, sync string) (*sql.DB, error) {
	name, err := dsn(path, sync)
	if err != nil {
		return nil, err
	}
	return sql.Open("sqlite", name)
}
