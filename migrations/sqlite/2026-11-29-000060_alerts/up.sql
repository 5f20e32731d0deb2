-- Alerts: rules (one row per known rule), delivery channels, and every firing remembered so
-- one incident alerts once.
CREATE TABLE alert_rules (
    rule TEXT PRIMARY KEY NOT NULL,          -- exchange_failed, no_exchange, messages_dead, reconciliation_diff, ozon_key_rejected
    enabled BOOLEAN NOT NULL DEFAULT 0,
    threshold BIGINT NOT NULL DEFAULT 1,
    channels TEXT NOT NULL DEFAULT '',       -- comma-separated alert_channels ids
    active BOOLEAN NOT NULL DEFAULT 0,       -- count rules: above the threshold now (re-armed below)
    episode INTEGER NOT NULL DEFAULT 0,      -- count rules: incidents so far (part of the fingerprint)
    cursor BIGINT NOT NULL DEFAULT 0,        -- ozon_key_rejected: the last api_calls id looked at
    last_checked_at BIGINT,
    last_fired_at BIGINT,
    updated_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO alert_rules (rule, threshold) VALUES
    ('exchange_failed', 1),
    ('no_exchange', 24),
    ('messages_dead', 1),
    ('reconciliation_diff', 1),
    ('ozon_key_rejected', 1);

CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,                      -- webhook, telegram, email
    name TEXT NOT NULL,
    config TEXT NOT NULL,                    -- JSON; secrets (token, password) never shown back
    enabled BOOLEAN NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    message_ids TEXT NOT NULL DEFAULT ''     -- comma-separated outbox ids (one per channel)
);
