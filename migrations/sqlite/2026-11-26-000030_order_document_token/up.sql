-- A random token per stored document: its download link carries it so links cannot be guessed.
ALTER TABLE order_documents ADD COLUMN token TEXT NOT NULL DEFAULT '';
-- Postings by the order they became (the shipping dispatcher joins on it).
CREATE INDEX ozon_postings_order ON ozon_postings(order_number);
