-- Dashboard users (argon2 hashes), their browser sessions, and the audit log of their actions.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    -- admin, operator, viewer
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie value (the value itself is never stored).
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    client_addr TEXT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    before TEXT,
    after TEXT,
    client_addr TEXT
);
CREATE INDEX audit_log_user ON audit_log(username, id);

-- Keyset pages of the dashboard.
CREATE INDEX exchange_requests_session_id ON exchange_requests(session_id, id);
CREATE INDEX exchange_requests_orphans ON exchange_requests(session_id, at);
CREATE INDEX orders_status_id ON orders(status, id);
CREATE INDEX orders_channel_id ON orders(channel, id);
CREATE INDEX outbox_state_id ON outbox(state, id);
CREATE INDEX outbox_kind_id ON outbox(kind, id);
CREATE INDEX import_jobs_session ON import_jobs(session_id, id);
CREATE INDEX offers_article ON offers(article);
