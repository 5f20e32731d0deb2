-- Orders: the round trip with 1C (sale query/success, statuses back from 1C) and the intake of
-- every channel. Money is stored in kopecks (BIGINT), quantities in thousandths (BIGINT).

CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    number TEXT NOT NULL UNIQUE,             -- obmen's number: stable, what 1C matches on (Номер)
    channel TEXT NOT NULL,                   -- api, ozon, shop …
    external_id TEXT,                        -- the channel's reference (e.g. an Ozon posting number)
    date TEXT NOT NULL,                      -- order date as given (RFC 3339)
    currency TEXT NOT NULL,                  -- ISO code (RUB)
    total BIGINT NOT NULL,                   -- kopecks: lines + delivery
    status TEXT NOT NULL,                    -- our state machine (orders::model::Status)
    customer TEXT NOT NULL,                  -- JSON
    delivery TEXT,                           -- JSON
    payment TEXT,                            -- JSON
    comment TEXT,
    requisites TEXT NOT NULL DEFAULT '{}',   -- JSON map of extra requisites written to 1C
    onec_id TEXT,                            -- 1C's Ид of its order document
    onec_number TEXT,
    onec_date TEXT,
    onec_posted BOOLEAN NOT NULL DEFAULT 0,
    onec_paid BOOLEAN NOT NULL DEFAULT 0,
    onec_payment_number TEXT,
    onec_payment_date TEXT,
    onec_shipped BOOLEAN NOT NULL DEFAULT 0,
    onec_shipment_number TEXT,
    onec_shipment_date TEXT,
    onec_cancelled BOOLEAN NOT NULL DEFAULT 0,
    onec_deleted BOOLEAN NOT NULL DEFAULT 0,
    onec_status TEXT,
    onec_updated_at BIGINT,
    version BIGINT NOT NULL DEFAULT 1,       -- bumped by every change on our side that 1C must get
    exported_version BIGINT NOT NULL DEFAULT 0, -- the version 1C confirmed (mode=success)
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX orders_channel_ref ON orders(channel, external_id);
CREATE INDEX orders_pending ON orders(exported_version, version);
CREATE INDEX orders_onec_id ON orders(onec_id);
CREATE INDEX orders_status ON orders(status);

CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    position INTEGER NOT NULL,
    offer_id TEXT,                           -- 1C Ид of the good/offer (guid or guid#guid); NULL for a free line
    article TEXT,
    name TEXT NOT NULL,
    quantity BIGINT NOT NULL,                -- thousandths
    price BIGINT NOT NULL,                   -- kopecks per unit
    discount BIGINT NOT NULL DEFAULT 0,      -- kopecks for the line
    vat TEXT,                                -- rate as given: "20", "10", "0", "Без налога"
    sum BIGINT NOT NULL,                     -- kopecks: price × quantity − discount
    PRIMARY KEY (order_id, position)
);

-- The timeline: every change of an order with its source (1c, api, ozon, courier, dashboard).
-- Later issues hook on `kind` (e.g. ready_to_ship, delete_delivery) with a cursor on `id`.
CREATE TABLE order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT                                -- JSON details
);
CREATE INDEX order_events_order ON order_events(order_id, id);
CREATE INDEX order_events_kind ON order_events(kind, id);

-- What the last mode=query of a 1C session handed out (pending until mode=success).
CREATE TABLE order_exports (
    session_id TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    version BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (session_id, order_id)
);

-- Order documents from 1C that match no order of ours: recorded, not dropped.
CREATE TABLE order_unknown (
    onec_id TEXT PRIMARY KEY NOT NULL,       -- 1C's Ид (or its Номер when it sent no Ид)
    number TEXT,
    date TEXT,
    total TEXT,
    data TEXT NOT NULL,                      -- the parsed document as JSON
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1
);

-- Orders files from 1C that were applied (idempotency per content).
CREATE TABLE order_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    session_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    hash TEXT NOT NULL,
    documents INTEGER NOT NULL,
    matched INTEGER NOT NULL,
    changed INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    at BIGINT NOT NULL,
    UNIQUE (session_id, filename)
);
CREATE INDEX order_imports_hash ON order_imports(hash);
