//! Connectors to external systems: one folder per system (client, mapping, its jobs). They
//! adapt the outside world to the domain (catalog, orders, relay); the domain never sees HTTP.

pub mod cdek;
pub mod dpd;
pub mod ozon;
pub mod shipping;
