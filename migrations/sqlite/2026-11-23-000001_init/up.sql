-- obmen initial schema (SQLite). Times are unix milliseconds (BIGINT) so the same model fits PostgreSQL.

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per 1C session (created by mode=checkauth).
CREATE TABLE exchange_sessions (
    id TEXT PRIMARY KEY NOT NULL,            -- the cookie value
    sessid TEXT NOT NULL,
    exchange_type TEXT NOT NULL,             -- catalog, sale, reference …
    client_addr TEXT NOT NULL,
    user_agent TEXT,
    login TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    auth_timestamp BIGINT NOT NULL,          -- the timestamp= line of checkauth (unix seconds)
    version TEXT,                            -- init&version=…
    cml_version TEXT,                        -- init&cmlVersion=…
    zip BOOLEAN NOT NULL DEFAULT 0,
    file_limit BIGINT NOT NULL DEFAULT 0,
    initialized BOOLEAN NOT NULL DEFAULT 0,
    closed BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX exchange_sessions_created ON exchange_sessions(created_at);

-- The journal: every request of the exchange protocol, including refused ones.
CREATE TABLE exchange_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    session_id TEXT,
    at BIGINT NOT NULL,
    client_addr TEXT NOT NULL,
    method TEXT NOT NULL,
    exchange_type TEXT,
    mode TEXT,
    filename TEXT,
    bytes BIGINT NOT NULL,
    http_status INTEGER NOT NULL,
    answer TEXT NOT NULL,                    -- first line of the answer
    detail TEXT,                             -- the rest of the answer (truncated)
    duration_ms BIGINT NOT NULL
);
CREATE INDEX exchange_requests_session ON exchange_requests(session_id);

CREATE TABLE uploaded_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,                      -- normalised relative name (lookup key)
    original_name TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    chunks INTEGER NOT NULL,
    is_archive BOOLEAN NOT NULL,
    state TEXT NOT NULL,                     -- receiving, unpacked, failed
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (session_id, name)
);

CREATE TABLE import_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    session_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    trigger TEXT NOT NULL,                   -- import, auto, cli, replay
    state TEXT NOT NULL,                     -- queued, running, done, failed
    kind TEXT,                               -- catalog, offers, prices, rests, documents, classifier
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
CREATE INDEX import_jobs_state ON import_jobs(state);

-- Catalog ------------------------------------------------------------------------------------------

-- Classifiers, catalogs and offer packages seen (state that must survive sessions).
CREATE TABLE catalog_sections (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,                      -- classifier, catalog, offers
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
    deleted BOOLEAN NOT NULL DEFAULT 0,
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
    deleted BOOLEAN NOT NULL DEFAULT 0,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE property_values (
    property_id TEXT NOT NULL,
    value_id TEXT NOT NULL,                  -- ИдЗначения, or the value itself when there is no id
    value TEXT NOT NULL,
    PRIMARY KEY (property_id, value_id)
);

CREATE TABLE price_types (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    currency TEXT,
    tax_name TEXT,
    tax_included BOOLEAN,
    deleted BOOLEAN NOT NULL DEFAULT 0,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE warehouses (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    address TEXT,
    defined BOOLEAN NOT NULL DEFAULT 0,      -- 0: only referenced by stock so far
    deleted BOOLEAN NOT NULL DEFAULT 0,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

CREATE TABLE goods (
    id TEXT PRIMARY KEY NOT NULL,
    article TEXT,
    name TEXT,
    data TEXT NOT NULL,                      -- the whole good as JSON (groups, properties, requisites …)
    hash TEXT NOT NULL,                      -- content hash of data
    deleted BOOLEAN NOT NULL DEFAULT 0,      -- ПометкаУдаления / Статус="Удален"
    active BOOLEAN NOT NULL DEFAULT 1,       -- 0 after mode=deactivate or deletion
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
CREATE INDEX goods_article ON goods(article);
CREATE INDEX goods_changed ON goods(changed_at);

CREATE TABLE images (
    good_id TEXT NOT NULL,
    path TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (good_id, path)
);

CREATE TABLE offers (
    id TEXT PRIMARY KEY NOT NULL,            -- goodId or goodId#charId
    good_id TEXT NOT NULL,
    article TEXT,
    name TEXT,
    quantity TEXT,                           -- Количество as received (decimal)
    by_warehouse BOOLEAN NOT NULL DEFAULT 0, -- received per-warehouse stock
    data TEXT NOT NULL,                      -- characteristics, unit, barcode, properties as JSON
    hash TEXT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,              -- any change: fields, prices or stock
    seen_at BIGINT NOT NULL
);
CREATE INDEX offers_good ON offers(good_id);
CREATE INDEX offers_changed ON offers(changed_at);

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
) WITHOUT ROWID;

CREATE TABLE stock (
    offer_id TEXT NOT NULL,
    warehouse_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (offer_id, warehouse_id)
) WITHOUT ROWID;

-- Every deletion or deactivation, with its reason.
CREATE TABLE deletions (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    entity TEXT NOT NULL,                    -- good, offer, group
    entity_id TEXT NOT NULL,
    reason TEXT NOT NULL,                    -- mark, status, deactivate
    job_id BIGINT,
    at BIGINT NOT NULL
);
