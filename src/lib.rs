//! obmen: the gateway between 1C:Enterprise and marketplaces and couriers.
//!
//! `exchange` speaks the 1C protocol, `cml` reads CommerceML as a stream, `catalog` applies it to
//! the `store` with change detection, `web` serves the API. See ARCHITECTURE in the README.

pub mod alerts;
pub mod backup;
pub mod catalog;
pub mod cml;
pub mod config;
pub mod connectors;
pub mod demo;
pub mod emulator;
pub mod exchange;
pub mod gen;
pub mod i18n;
pub mod metrics;
pub mod orders;
pub mod relay;
pub mod server;
pub mod sim;
pub mod store;
pub mod tls;
pub mod users;
pub mod web;
