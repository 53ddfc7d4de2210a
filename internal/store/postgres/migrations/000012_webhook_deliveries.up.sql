-- Webhook deliveries an integration accepted, keyed by the sender's delivery ID (GitHub's
-- X-GitHub-Delivery, a Slack request's signature): a redelivery or a replay finds its row and does
-- nothing. Pruned with the rest of the history.
CREATE TABLE webhook_deliveries (
    integration TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    event TEXT NOT NULL DEFAULT '',
    received_at BIGINT NOT NULL,
    PRIMARY KEY (integration, delivery_id)
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
