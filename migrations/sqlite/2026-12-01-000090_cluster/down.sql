DROP TABLE schedule_runs;
ALTER TABLE import_jobs DROP COLUMN lease_until;
ALTER TABLE import_jobs DROP COLUMN owner;
