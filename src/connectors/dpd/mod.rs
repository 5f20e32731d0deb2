//! DPD Russia (tracking numbers): a SOAP client of the `order2` and `tracing` services, without
//! outbox or orders logic (those belong to the caller). Facts: `shared/reference/other-apis.md` §1.
//!
//! # The protocol
//! Create an order with `createOrder`; the per-order answer is `OK` + `orderNum` (the tracking
//! number), `OrderPending` (accepted, the number comes later), `OrderDuplicate` (this
//! orderNumberInternal already exists), `OrderError` (refused, `errorMessage` says why) or
//! `OrderCancelled`. After `OrderPending`, **or a timeout / 5xx of createOrder** (it may have
//! been applied), poll `getOrderStatus` by orderNumberInternal + datePickup until `OK`; never
//! re-send createOrder blindly. [`DpdClient::obtain_number`] does exactly that.
//!
//! # Wire shapes (SOAP 1.1, document/literal)
//! The element names below are those of DPD's WSDLs as far as known (the reference marks the
//! exact names of getOrderStatus as uncertain). Both the client and the simulator
//! (`crate::sim::dpd`) read by *local name*, so namespace prefixes do not matter; requests put
//! the operation element in the service namespace and its children unqualified.
//!
//! `POST {base}/services/order2`, namespace `http://dpd.ru/ws/order2/2012-04-04`:
//! ```text
//! createOrder
//!   orders
//!     auth { clientNumber, clientKey }
//!     header { datePickup (YYYY-MM-DD), payer (= clientNumber), pickupTimePeriod ("9-18"),
//!              senderAddress { name, countryName, city, street, house, contactFio, contactPhone, terminalCode? } }
//!     order* { orderNumberInternal (≤ 20), serviceCode, serviceVariant, cargoNumPack, cargoWeight,
//!              cargoRegistered, cargoValue?, cargoCategory,
//!              receiverAddress { name, countryName, city, street, house, contactFio, contactPhone } }
//! → createOrderResponse / return* { orderNumberInternal, orderNum?, status, errorMessage? }
//!
//! getOrderStatus
//!   orderStatus { auth, order* { orderNumberInternal, datePickup } }
//! → getOrderStatusResponse / return* { orderNumberInternal, orderNum?, status, errorMessage? }
//!
//! cancelOrder
//!   orders { auth, cancel* { orderNumberInternal | orderNum, pin? } }
//! → cancelOrderResponse / return* { orderNumberInternal, orderNum?, status
//!   (Canceled | CanceledPreviously | NotFound | CallDPD), errorMessage? }
//! ```
//! `POST {base}/services/tracing`, namespace `http://dpd.ru/ws/tracing/2012-04-04`:
//! ```text
//! getStatesByClientOrder  request { auth, clientOrderNr, pickupDate? }
//! getStatesByDPDOrder     request { auth, dpdOrderNr, pickupYear? }
//! → …Response / return { docId, docDate, clientNumber, resultComplete,
//!     states* { clientOrderNr, dpdOrderNr, pickupDate, newState, transitionTime, terminalCity, … } }
//! ```
//! Errors: SOAP `Fault { faultcode, faultstring, detail/WSFault { code, message } }` (HTTP 500);
//! a refused `auth` has code `no-auth`.

pub mod carrier;
pub mod client;
pub mod xml;

pub use client::*;
