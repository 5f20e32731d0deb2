-- The exchange history's search and its "failed" filter without scanning every request:
-- the names of a session's files on the session, and failures found by (session, answer).
ALTER TABLE exchange_sessions ADD COLUMN files TEXT NOT NULL DEFAULT '';
UPDATE exchange_sessions SET files = COALESCE((
    SELECT group_concat(filename, char(10)) FROM (
        SELECT DISTINCT filename FROM exchange_requests r
        WHERE r.session_id = exchange_sessions.id AND r.filename IS NOT NULL
          AND r.mode IN ('file', 'import'))), '');
CREATE INDEX exchange_requests_answer ON exchange_requests(session_id, answer);
