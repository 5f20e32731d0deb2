-- The whole schema for PostgreSQL, equal to the SQLite migrations up to 2026-11-30-000080 (generated
-- from them and src/store/schema.rs; later changes get their own migration in both folders).

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE exchange_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    sessid TEXT NOT NULL,
    exchange_type TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    user_agent TEXT,
    login TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    auth_timestamp BIGINT NOT NULL,
    version TEXT,
    cml_version TEXT,
    zip BOOLEAN NOT NULL DEFAULT FALSE,
    file_limit BIGINT NOT NULL DEFAULT 0,
    initialized BOOLEAN NOT NULL DEFAULT FALSE,
    closed BOOLEAN NOT NULL DEFAULT FALSE,
    files TEXT NOT NULL DEFAULT '',
    failed BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE exchange_requests (
    id SERIAL PRIMARY KEY NOT NULL,
    session_id TEXT,
    at BIGINT NOT NULL,
    client_addr TEXT NOT NULL,
    method TEXT NOT NULL,
    exchange_type TEXT,
    mode TEXT,
    filename TEXT,
    bytes BIGINT NOT NULL,
    http_status INTEGER NOT NULL,
    answer TEXT NOT NULL,
    detail TEXT,
    duration_ms BIGINT NOT NULL
);

CREATE TABLE uploaded_files (
    id SERIAL PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    original_name TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    chunks INTEGER NOT NULL,
    is_archive BOOLEAN NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    error TEXT,
    UNIQUE (session_id, name)
);

CREATE TABLE import_jobs (
    id SERIAL PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    kind TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    bytes BIGINT NOT NULL DEFAULT 0,
    goods_total BIGINT NOT NULL DEFAULT 0,
    offers_total BIGINT NOT NULL DEFAULT 0,
    groups INTEGER NOT NULL DEFAULT 0,
    properties INTEGER NOT NULL DEFAULT 0,
    price_types INTEGER NOT NULL DEFAULT 0,
    warehouses INTEGER NOT NULL DEFAULT 0,
    goods INTEGER NOT NULL DEFAULT 0,
    offers INTEGER NOT NULL DEFAULT 0,
    documents INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    only_changes BOOLEAN,
    error TEXT,
    error_line BIGINT,
    error_column BIGINT,
    UNIQUE (session_id, filename)
);

CREATE TABLE catalog_sections (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    classifier_id TEXT,
    only_changes BOOLEAN,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE catalog_groups (
    id TEXT PRIMARY KEY NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE properties (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    value_type TEXT,
    for_goods BOOLEAN,
    for_offers BOOLEAN,
    multiple BOOLEAN,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE property_values (
    property_id TEXT NOT NULL,
    value_id TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (property_id, value_id)
);

CREATE TABLE price_types (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    currency TEXT,
    tax_name TEXT,
    tax_included BOOLEAN,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE warehouses (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    address TEXT,
    defined BOOLEAN NOT NULL DEFAULT FALSE,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE goods (
    id TEXT PRIMARY KEY NOT NULL,
    article TEXT,
    name TEXT,
    data TEXT NOT NULL,
    hash TEXT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE images (
    good_id TEXT NOT NULL,
    path TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (good_id, path)
);

CREATE TABLE offers (
    id TEXT PRIMARY KEY NOT NULL,
    good_id TEXT NOT NULL,
    article TEXT,
    name TEXT,
    quantity TEXT,
    by_warehouse BOOLEAN NOT NULL DEFAULT FALSE,
    data TEXT NOT NULL,
    hash TEXT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE prices (
    offer_id TEXT NOT NULL,
    price_type_id TEXT NOT NULL,
    value TEXT NOT NULL,
    currency TEXT,
    unit TEXT,
    coefficient TEXT,
    presentation TEXT,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (offer_id, price_type_id)
);

CREATE TABLE stock (
    offer_id TEXT NOT NULL,
    warehouse_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (offer_id, warehouse_id)
);

CREATE TABLE deletions (
    id SERIAL PRIMARY KEY NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    job_id BIGINT,
    at BIGINT NOT NULL
);

CREATE TABLE orders (
    id SERIAL PRIMARY KEY NOT NULL,
    number TEXT NOT NULL,
    channel TEXT NOT NULL,
    external_id TEXT,
    date TEXT NOT NULL,
    currency TEXT NOT NULL,
    total BIGINT NOT NULL,
    status TEXT NOT NULL,
    customer TEXT NOT NULL,
    delivery TEXT,
    payment TEXT,
    comment TEXT,
    requisites TEXT NOT NULL DEFAULT '{}',
    onec_id TEXT,
    onec_number TEXT,
    onec_date TEXT,
    onec_posted BOOLEAN NOT NULL DEFAULT FALSE,
    onec_paid BOOLEAN NOT NULL DEFAULT FALSE,
    onec_payment_number TEXT,
    onec_payment_date TEXT,
    onec_shipped BOOLEAN NOT NULL DEFAULT FALSE,
    onec_shipment_number TEXT,
    onec_shipment_date TEXT,
    onec_cancelled BOOLEAN NOT NULL DEFAULT FALSE,
    onec_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    onec_status TEXT,
    onec_updated_at BIGINT,
    version BIGINT NOT NULL DEFAULT 1,
    exported_version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (number)
);

CREATE TABLE order_lines (
    order_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    offer_id TEXT,
    article TEXT,
    name TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    price BIGINT NOT NULL,
    discount BIGINT NOT NULL DEFAULT 0,
    vat TEXT,
    sum BIGINT NOT NULL,
    PRIMARY KEY (order_id, position),
    FOREIGN KEY (order_id) REFERENCES orders(id)
);

CREATE TABLE order_events (
    id SERIAL PRIMARY KEY NOT NULL,
    order_id INTEGER NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT,
    FOREIGN KEY (order_id) REFERENCES orders(id)
);

CREATE TABLE order_exports (
    session_id TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    version BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (session_id, order_id)
);

CREATE TABLE order_unknown (
    onec_id TEXT PRIMARY KEY NOT NULL,
    number TEXT,
    date TEXT,
    total TEXT,
    data TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE order_imports (
    id SERIAL PRIMARY KEY NOT NULL,
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

CREATE TABLE outbox (
    id SERIAL PRIMARY KEY NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    lease_owner TEXT,
    last_error TEXT,
    response TEXT,
    last_call_id BIGINT,
    order_id INTEGER,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    done_at BIGINT
);

CREATE TABLE api_calls (
    id SERIAL PRIMARY KEY NOT NULL,
    target TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    http_status INTEGER,
    outcome TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    request TEXT,
    response TEXT
);

CREATE TABLE ozon_offers (
    offer_ref TEXT PRIMARY KEY NOT NULL,
    offer_id TEXT NOT NULL,
    article_now TEXT,
    product_id BIGINT,
    sku BIGINT,
    card_hash TEXT,
    card_state TEXT,
    card_task_id BIGINT,
    card_errors TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (offer_id)
);

CREATE TABLE ozon_stock_state (
    offer_ref TEXT NOT NULL,
    warehouse_id BIGINT NOT NULL,
    queued BIGINT NOT NULL,
    acked BIGINT,
    acked_at BIGINT,
    error TEXT,
    PRIMARY KEY (offer_ref, warehouse_id)
);

CREATE TABLE ozon_price_state (
    offer_ref TEXT PRIMARY KEY NOT NULL,
    queued TEXT NOT NULL,
    acked TEXT,
    acked_at BIGINT,
    error TEXT
);

CREATE TABLE ozon_postings (
    posting_number TEXT PRIMARY KEY NOT NULL,
    order_number TEXT,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ozon_push (
    hash TEXT PRIMARY KEY NOT NULL,
    message_type TEXT NOT NULL,
    posting_number TEXT,
    body TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE order_documents (
    id SERIAL PRIMARY KEY NOT NULL,
    order_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    token TEXT NOT NULL DEFAULT ''
);

CREATE TABLE reconciliation_reports (
    id SERIAL PRIMARY KEY NOT NULL,
    target TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    state TEXT NOT NULL,
    checked INTEGER NOT NULL DEFAULT 0,
    differences INTEGER NOT NULL DEFAULT 0,
    error TEXT
);

CREATE TABLE reconciliation_items (
    report_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    offer_ref TEXT,
    offer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    ours TEXT,
    theirs TEXT,
    PRIMARY KEY (report_id, position)
);

CREATE TABLE shipments (
    id SERIAL PRIMARY KEY NOT NULL,
    order_id INTEGER NOT NULL,
    order_number TEXT NOT NULL,
    carrier TEXT NOT NULL,
    state TEXT NOT NULL,
    carrier_ref TEXT,
    carrier_number TEXT,
    tracking_number TEXT,
    status_code TEXT,
    status_name TEXT,
    waybill_url TEXT,
    error TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders(id)
);

CREATE TABLE users (
    id SERIAL PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT,
    UNIQUE (name)
);

CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    client_addr TEXT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
);

CREATE TABLE audit_log (
    id SERIAL PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    before TEXT,
    after TEXT,
    client_addr TEXT
);

CREATE TABLE alert_rules (
    rule TEXT PRIMARY KEY NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    threshold BIGINT NOT NULL DEFAULT 1,
    channels TEXT NOT NULL DEFAULT '',
    active BOOLEAN NOT NULL DEFAULT FALSE,
    episode INTEGER NOT NULL DEFAULT 0,
    cursor BIGINT NOT NULL DEFAULT 0,
    last_checked_at BIGINT,
    last_fired_at BIGINT,
    updated_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE alert_channels (
    id SERIAL PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alert_events (
    id SERIAL PRIMARY KEY NOT NULL,
    rule TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at BIGINT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    message_ids TEXT NOT NULL DEFAULT '',
    UNIQUE (fingerprint)
);

CREATE INDEX exchange_sessions_created ON exchange_sessions(created_at);

CREATE INDEX exchange_requests_session ON exchange_requests(session_id);

CREATE INDEX import_jobs_state ON import_jobs(state);

CREATE INDEX goods_article ON goods(article);

CREATE INDEX goods_changed ON goods(changed_at);

CREATE INDEX offers_good ON offers(good_id);

CREATE INDEX offers_changed ON offers(changed_at);

CREATE UNIQUE INDEX orders_channel_ref ON orders(channel, external_id);

CREATE INDEX orders_pending ON orders(exported_version, version);

CREATE INDEX orders_onec_id ON orders(onec_id);

CREATE INDEX orders_status ON orders(status);

CREATE INDEX order_events_order ON order_events(order_id, id);

CREATE INDEX order_events_kind ON order_events(kind, id);

CREATE INDEX order_imports_hash ON order_imports(hash);

CREATE INDEX outbox_due ON outbox(kind, state, next_attempt_at);

CREATE INDEX outbox_key ON outbox(kind, key);

CREATE INDEX outbox_list ON outbox(target, state, id);

CREATE INDEX outbox_order ON outbox(order_id);

CREATE INDEX api_calls_at ON api_calls(target, at);

CREATE INDEX order_documents_order ON order_documents(order_id);

CREATE INDEX ozon_postings_order ON ozon_postings(order_number);

CREATE UNIQUE INDEX shipments_order_carrier ON shipments(order_id, carrier);

CREATE INDEX shipments_ref ON shipments(carrier, carrier_ref);

CREATE INDEX web_sessions_user ON web_sessions(user_id);

CREATE INDEX audit_log_user ON audit_log(username, id);

CREATE INDEX exchange_requests_session_id ON exchange_requests(session_id, id);

CREATE INDEX exchange_requests_orphans ON exchange_requests(session_id, at);

CREATE INDEX orders_status_id ON orders(status, id);

CREATE INDEX orders_channel_id ON orders(channel, id);

CREATE INDEX outbox_state_id ON outbox(state, id);

CREATE INDEX outbox_kind_id ON outbox(kind, id);

CREATE INDEX import_jobs_session ON import_jobs(session_id, id);

CREATE INDEX offers_article ON offers(article);

CREATE INDEX exchange_requests_answer ON exchange_requests(session_id, answer);

CREATE INDEX exchange_sessions_failed ON exchange_sessions(failed, created_at);

INSERT INTO alert_rules (rule, threshold) VALUES
    ('exchange_failed', 1),
    ('no_exchange', 24),
    ('messages_dead', 1),
    ('reconciliation_diff', 1),
    ('ozon_key_rejected', 1);
