//! CDEK (API v2): the low-level HTTP client. Orders, the outbox and mapping live elsewhere.

pub mod client;

pub use client::{CallError, CdekClient, OrderState, RequestState};
pub mod carrier;
