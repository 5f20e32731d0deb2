-- A red session at a glance: set when 1C is answered `failure` or one of its imports fails, so
-- the history's "failed only" filter walks an index instead of every session's requests.
ALTER TABLE exchange_sessions ADD COLUMN failed BOOLEAN NOT NULL DEFAULT 0;
UPDATE exchange_sessions SET failed = 1
WHERE EXISTS (SELECT 1 FROM exchange_requests r WHERE r.session_id = exchange_sessions.id AND r.answer = 'failure')
   OR EXISTS (SELECT 1 FROM import_jobs j WHERE j.session_id = exchange_sessions.id AND j.state = 'failed');
CREATE INDEX exchange_sessions_failed ON exchange_sessions(failed, created_at);
