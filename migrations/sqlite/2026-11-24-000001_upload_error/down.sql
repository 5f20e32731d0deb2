ALTER TABLE uploaded_files DROP COLUMN error;
