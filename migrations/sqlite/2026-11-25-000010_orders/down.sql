DROP TABLE order_imports;
DROP TABLE order_unknown;
DROP TABLE order_exports;
DROP TABLE order_events;
DROP TABLE order_lines;
DROP TABLE orders;
