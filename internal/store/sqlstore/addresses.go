package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/aetherium/aetherium/internal/store"
)

const addressColumns = `subnet, address, vm_id, created_at`

func scanAddress(row interface{ Scan(...any) error }) (*store.AddressLease, error) {
	var a store.AddressLease
	var created int64
	if err := row.Scan(&a.Subnet, &a.Address, &a.VMID, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

// AddressLease implements store.Store.
func (s *Store) AddressLease(ctx context.Context, p *store.AddressLeaseParams) (*store.AddressLease, error) {
	held, err := scanAddress(s.db.QueryRowContext(ctx, `SELECT `+addressColumns+` FROM addresses
		WHERE subnet = ? AND vm_id = ?`, p.Subnet, p.VMID))
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return held, s.mapErr(err, "address lease of "+p.VMID)
	}
	a, err := scanAddress(s.db.QueryRowContext(ctx, `INSERT INTO addresses (`+addressColumns+`) VALUES (?,?,?,?)
		RETURNING `+addressColumns, p.Subnet, p.Address, p.VMID, now()))
	return a, s.mapErr(err, "address "+p.Address)
}

// AddressList implements store.Store.
func (s *Store) AddressList(ctx context.Context, subnet string) ([]*store.AddressLease, error) {
	return queryAll(ctx, s, "list addresses", scanAddress,
		`SELECT `+addressColumns+` FROM addresses WHERE subnet = ? ORDER BY created_at, address`, subnet)
}

// AddressRelease implements store.Store.
func (s *Store) AddressRelease(ctx context.Context, vmID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM addresses WHERE vm_id = ?`, vmID)
	return s.mapErr(err, "release addresses of "+vmID)
}
