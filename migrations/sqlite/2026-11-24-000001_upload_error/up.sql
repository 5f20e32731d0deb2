-- Why an archive could not be unpacked (uploaded_files.state = 'failed'); later `mode=import`
-- calls of the session answer it.
ALTER TABLE uploaded_files ADD COLUMN error TEXT;
