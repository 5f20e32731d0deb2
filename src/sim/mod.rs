//! Local simulators of external APIs (marketplaces, couriers) for tests and demo mode.

pub mod cdek;
pub mod dpd;
pub mod ozon;
