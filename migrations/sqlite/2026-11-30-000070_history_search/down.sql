DROP INDEX exchange_requests_answer;
ALTER TABLE exchange_sessions DROP COLUMN files;
