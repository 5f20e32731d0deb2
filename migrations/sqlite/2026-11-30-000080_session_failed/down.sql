DROP INDEX exchange_sessions_failed;
ALTER TABLE exchange_sessions DROP COLUMN failed;
