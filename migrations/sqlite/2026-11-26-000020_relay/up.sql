-- The relay: every outgoing change is a durable message here before any call is made, and every
-- call to an external system is journaled. Plus the Ozon connector's own state: the stored
-- offer mapping, what was queued and acknowledged per item, postings and documents.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    target TEXT NOT NULL,                    -- ozon, cdek, …
    kind TEXT NOT NULL,                      -- ozon.stock, ozon.price, ozon.card, ozon.ship …
    key TEXT NOT NULL,                       -- coalescing / idempotency key within the kind
    payload TEXT NOT NULL,                   -- JSON
    state TEXT NOT NULL,                     -- pending, in_flight, done, failed, dead, cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    lease_owner TEXT,
    last_error TEXT,
    response TEXT,                           -- excerpt of the last answer
    last_call_id BIGINT,
    order_id INTEGER,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX outbox_due ON outbox(kind, state, next_attempt_at);
CREATE INDEX outbox_key ON outbox(kind, key);
CREATE INDEX outbox_list ON outbox(target, state, id);
CREATE INDEX outbox_order ON outbox(order_id);

-- One row per call to an external system (the journal that explains every retry).
CREATE TABLE api_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    target TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    http_status INTEGER,                     -- NULL: no answer (timeout, connection refused)
    outcome TEXT NOT NULL,                   -- ok, item_errors, retry, wait, fatal
    messages INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    request TEXT,                            -- excerpt
    response TEXT                            -- excerpt
);
CREATE INDEX api_calls_at ON api_calls(target, at);

-- Ozon: the link between a 1C offer and an Ozon offer_id, stored at first export so a later
-- Артикул change in 1C does not break it.
CREATE TABLE ozon_offers (
    offer_ref TEXT PRIMARY KEY NOT NULL,     -- 1C offer Ид (offers.id)
    offer_id TEXT NOT NULL UNIQUE,           -- Ozon offer_id
    article_now TEXT,                        -- the 1C article when last seen (differs: reported)
    product_id BIGINT,
    sku BIGINT,
    card_hash TEXT,                          -- hash of the last queued card
    card_state TEXT,                         -- queued, pending, imported, failed, skipped
    card_task_id BIGINT,
    card_errors TEXT,                        -- JSON list
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Per offer × Ozon warehouse: the stock last queued and the stock Ozon acknowledged.
CREATE TABLE ozon_stock_state (
    offer_ref TEXT NOT NULL,
    warehouse_id BIGINT NOT NULL,
    queued BIGINT NOT NULL,
    acked BIGINT,
    acked_at BIGINT,
    error TEXT,
    PRIMARY KEY (offer_ref, warehouse_id)
) WITHOUT ROWID;

-- Per offer: the prices last queued and acknowledged (JSON {price, old_price, min_price}).
CREATE TABLE ozon_price_state (
    offer_ref TEXT PRIMARY KEY NOT NULL,
    queued TEXT NOT NULL,
    acked TEXT,
    acked_at BIGINT,
    error TEXT
) WITHOUT ROWID;

-- FBS postings seen (by poll or push): the order they became, Ozon's status and the raw posting.
CREATE TABLE ozon_postings (
    posting_number TEXT PRIMARY KEY NOT NULL,
    order_number TEXT,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Push notifications received (duplicates ignored by hash).
CREATE TABLE ozon_push (
    hash TEXT PRIMARY KEY NOT NULL,
    message_type TEXT NOT NULL,
    posting_number TEXT,
    body TEXT NOT NULL,
    at BIGINT NOT NULL
);

-- Documents stored on orders (labels, waybills).
CREATE TABLE order_documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    order_id INTEGER NOT NULL,
    kind TEXT NOT NULL,                      -- ozon_label, cdek_waybill …
    name TEXT NOT NULL,
    path TEXT NOT NULL,                      -- relative to the data folder
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX order_documents_order ON order_documents(order_id);

-- Reconciliation reports (marketplace read-back against obmen's catalog).
CREATE TABLE reconciliation_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    target TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    state TEXT NOT NULL,                     -- running, done, failed
    checked INTEGER NOT NULL DEFAULT 0,
    differences INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE reconciliation_items (
    report_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    offer_ref TEXT,
    offer_id TEXT NOT NULL,
    field TEXT NOT NULL,                     -- stock:<warehouse_id>, price, old_price, min_price, missing_on_ozon, unknown_to_obmen
    ours TEXT,
    theirs TEXT,
    PRIMARY KEY (report_id, position)
);
