-- Several instances on one database: an import job is leased by the instance running it (a
-- job whose lease ran out, its instance gone, is queued again), and a schedule runs once per
-- cluster and slot.
ALTER TABLE import_jobs ADD COLUMN owner TEXT;
ALTER TABLE import_jobs ADD COLUMN lease_until BIGINT;
CREATE TABLE schedule_runs (
    job TEXT PRIMARY KEY NOT NULL,
    last_at BIGINT NOT NULL,
    owner TEXT NOT NULL
);
