//! The relay: a durable outbox of every outgoing change, and the worker that delivers it.
//!
//! A connector never calls an external system for a change directly. It (or the planner) puts a
//! message into `outbox` inside the same transaction that decided the change; the worker claims
//! due messages with a lease, hands a batch to the connector's [`Handler`], and records each
//! message's [`Outcome`] together with the connector's bookkeeping in one transaction. A crash at
//! any point leaves a message either unsent (it is claimed again when its lease runs out) or
//! recorded — never lost.
//!
//! States: `pending` (not tried yet) → `in_flight` (claimed, lease running) → `done`; a failed
//! try goes to `failed` (tried again at `next_attempt_at`, exponential backoff with jitter) and,
//! after `max_attempts`, to `dead`. `cancelled` is set by an operator. Nothing here knows HTTP.

pub mod journal;
pub mod store;
pub mod worker;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::store::Conn;

pub use store::{enqueue, Enqueue, NewMessage};
pub use worker::{Policy, Relay};

/// Message states as stored.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const IN_FLIGHT: &str = "in_flight";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const DEAD: &str = "dead";
    pub const CANCELLED: &str = "cancelled";
    pub const ALL: [&str; 6] = [PENDING, IN_FLIGHT, DONE, FAILED, DEAD, CANCELLED];
}

/// A claimed message, as a handler sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i32,
    pub target: String,
    pub kind: String,
    pub key: String,
    pub payload: serde_json::Value,
    /// Tries before this one.
    pub attempts: i32,
    pub order_id: Option<i32>,
    pub created_at: i64,
}

/// What became of one message in a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    /// Delivered and acknowledged.
    Done,
    /// A failure worth another try (429, 5xx, timeout, malformed answer, an item error that
    /// may pass later). Counts an attempt; `after` overrides the backoff.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Not a failure: the other side is not ready yet (a label being printed, an import task
    /// still pending). Does not count an attempt.
    Later { reason: String, after: Duration },
    /// The whole target refuses us (a rejected API key): no attempt counted, and the target is
    /// paused for `after` so the worker does not hammer it.
    Wait { error: String, after: Duration },
    /// A permanent refusal of this message (unknown offer, invalid data): no more tries.
    Dead { error: String },
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: i32,
    pub kind: OutcomeKind,
    /// The journaled call that decided it.
    pub call_id: Option<i64>,
    /// An excerpt of the answer about this message.
    pub response: Option<String>,
}

impl Outcome {
    pub fn done(id: i32, call_id: Option<i64>, response: Option<String>) -> Outcome {
        Outcome {
            id,
            kind: OutcomeKind::Done,
            call_id,
            response,
        }
    }
    pub fn retry(id: i32, call_id: Option<i64>, error: impl Into<String>) -> Outcome {
        Outcome {
            id,
            kind: OutcomeKind::Retry {
                error: error.into(),
                after: None,
            },
            call_id,
            response: None,
        }
    }
    pub fn dead(id: i32, call_id: Option<i64>, error: impl Into<String>) -> Outcome {
        Outcome {
            id,
            kind: OutcomeKind::Dead {
                error: error.into(),
            },
            call_id,
            response: None,
        }
    }
    pub fn with_kind(id: i32, call_id: Option<i64>, kind: OutcomeKind) -> Outcome {
        Outcome {
            id,
            kind,
            call_id,
            response: None,
        }
    }
}

/// A connector's deliverer of one message kind.
pub trait Handler: Send + Sync + 'static {
    /// `ozon`, `cdek` …
    fn target(&self) -> &'static str;
    /// The message kind it delivers (`ozon.stock`).
    fn kind(&self) -> &'static str;
    /// Most messages per delivery (the endpoint's batch cap).
    fn batch(&self) -> usize;
    /// Deliver a batch; one outcome per message (a message without one is retried).
    fn deliver(&self, batch: Vec<Message>) -> BoxFuture<'_, Vec<Outcome>>;
    /// Bookkeeping in the same transaction that records the outcome (acknowledgements,
    /// follow-up messages, order timeline).
    fn record(
        &self,
        _conn: &mut Conn,
        _msg: &Message,
        _outcome: &Outcome,
    ) -> diesel::QueryResult<()> {
        Ok(())
    }
}
