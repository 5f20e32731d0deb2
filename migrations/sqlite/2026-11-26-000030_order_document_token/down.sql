DROP INDEX ozon_postings_order;
ALTER TABLE order_documents DROP COLUMN token;
