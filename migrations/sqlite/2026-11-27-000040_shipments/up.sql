-- Delivery orders at carriers (CDEK, DPD …): one live shipment per order and carrier.
CREATE TABLE shipments (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    order_number TEXT NOT NULL,
    carrier TEXT NOT NULL,
    -- invalid (obmen refused: nothing sent), creating, registered, failed (the carrier refused),
    -- deleting, deleted
    state TEXT NOT NULL,
    -- The carrier's id of the order (CDEK uuid; DPD: our orderNumberInternal).
    carrier_ref TEXT,
    carrier_number TEXT,
    tracking_number TEXT,
    status_code TEXT,
    status_name TEXT,
    waybill_url TEXT,
    error TEXT,
    -- Carrier-specific progress (request sent, print form uuid, pickup date …), JSON.
    data TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX shipments_order_carrier ON shipments(order_id, carrier);
CREATE INDEX shipments_ref ON shipments(carrier, carrier_ref);
