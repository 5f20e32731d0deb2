-- Wrong exchange passwords counted per client address; an address locked after too many
-- (exchange.lock_after, exchange.lock_minutes). Shared by every instance of a cluster.
CREATE TABLE exchange_auth_failures (
    client_addr TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    last_failed_at BIGINT NOT NULL,
    locked_until BIGINT
);
