package sqlstore

import (
	"context"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// HistoryPrune implements store.Store. It deletes in batches, so one call
// never holds the database for long: executions that finished before
// before, then finished tasks and jobs, audit entries, webhook deliveries
// and expired preview tokens, each up to limit rows. Running commands, unfinished tasks and
// jobs are never touched.
func (s *Store) HistoryPrune(ctx context.Context, before time.Time, limit int) (int64, error) {
	cut := micros(before)
	var total int64
	for _, q := range []string{
		`DELETE FROM executions WHERE id IN (SELECT id FROM executions WHERE completed_at IS NOT NULL AND completed_at < ? LIMIT ?)`,
		`DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE status IN ('succeeded', 'failed') AND completed_at < ? LIMIT ?)`,
		`DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'failed') AND completed_at < ? LIMIT ?)`,
		`DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? LIMIT ?)`,
		`DELETE FROM webhook_deliveries WHERE (integration, delivery_id) IN
			(SELECT integration, delivery_id FROM webhook_deliveries WHERE received_at < ? LIMIT ?)`,
		`DELETE FROM preview_tokens WHERE id IN (SELECT id FROM preview_tokens WHERE expires_at < ? LIMIT ?)`,
	} {
		res, err := s.db.ExecContext(ctx, q, cut, limit)
		if err != nil {
			return total, s.mapErr(err, "prune history")
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// WebhookDeliveryInsert implements store.Store. The primary key (integration,
// delivery_id) makes a second insert of one delivery ErrAlreadyExists.
func (s *Store) WebhookDeliveryInsert(ctx context.Context, p *store.WebhookDeliveryInsertParams) error {
	if p.Integration == "" || p.DeliveryID == "" {
		return errdefs.InvalidArgument("webhook delivery: integration and delivery ID are required")
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhook_deliveries (integration, delivery_id, project_id, event, received_at) VALUES (?,?,?,?,?)`,
		p.Integration, p.DeliveryID, p.ProjectID, p.Event, now())
	return s.mapErr(err, "webhook delivery "+p.DeliveryID)
}

// WebhookDeliveryDelete implements store.Store.
func (s *Store) WebhookDeliveryDelete(ctx context.Context, p *store.WebhookDeliveryInsertParams) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE integration = ? AND delivery_id = ?`,
		p.Integration, p.DeliveryID)
	return s.mapErr(err, "webhook delivery "+p.DeliveryID)
}
