DROP TABLE deletions; DROP TABLE stock; DROP TABLE prices; DROP TABLE offers; DROP TABLE images; DROP TABLE goods;
DROP TABLE warehouses; DROP TABLE price_types; DROP TABLE property_values; DROP TABLE properties; DROP TABLE catalog_groups;
DROP TABLE catalog_sections; DROP TABLE import_jobs; DROP TABLE uploaded_files; DROP TABLE exchange_requests;
DROP TABLE exchange_sessions; DROP TABLE settings;
