//! The delivery worker: one loop per message kind claims due messages, hands them to the
//! kind's handler and records the outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::store::{self as ostore, Backoff};
use super::{Handler, Message, Outcome, OutcomeKind};
use crate::store::{now_ms, DbPool};

/// Retry policy of the relay.
#[derive(Debug, Clone)]
pub struct Policy {
    /// After this many failed tries a message is `dead`.
    pub max_attempts: i32,
    /// First retry delay; doubles each try.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a claim holds a message before another worker may take it.
    pub lease: Duration,
    /// Longest sleep when nothing is due.
    pub idle: Duration,
    /// Longest pause after a target-wide refusal (a rejected key), whatever the handler asks.
    pub wait_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 10,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(600),
            lease: Duration::from_secs(120),
            idle: Duration::from_secs(1),
            wait_max: Duration::from_secs(60),
        }
    }
}

pub struct Relay {
    pool: DbPool,
    policy: Policy,
    owner: String,
    handlers: Vec<Arc<dyn Handler>>,
    /// Targets paused until (unix ms) after a target-wide refusal.
    paused: Mutex<HashMap<&'static str, i64>>,
    notify: Notify,
}

impl Relay {
    pub fn new(pool: DbPool, policy: Policy, handlers: Vec<Arc<dyn Handler>>) -> Arc<Relay> {
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "obmen".into()),
            std::process::id(),
            crate::exchange::random_token(6)
        );
        Arc::new(Relay {
            pool,
            policy,
            owner,
            handlers,
            paused: Mutex::new(HashMap::new()),
            notify: Notify::new(),
        })
    }

    /// Wake the loops (new messages were queued).
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Start one loop per handler on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        self.handlers
            .iter()
            .map(|h| {
                let me = self.clone();
                let h = h.clone();
                tokio::spawn(async move { me.run_loop(h).await })
            })
            .collect()
    }

    fn paused_until(&self, target: &str) -> Option<i64> {
        let p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        p.get(target).copied().filter(|t| *t > now_ms())
    }

    async fn run_loop(self: Arc<Self>, h: Arc<dyn Handler>) {
        loop {
            if let Some(until) = self.paused_until(h.target()) {
                let wait = (until - now_ms()).clamp(10, 60_000) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
            match self.step(&h).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {
                    let idle = self.idle_for(&h).await;
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep(idle) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = h.kind(), error = %e, "relay step failed");
                    tokio::time::sleep(self.policy.idle).await;
                }
            }
        }
    }

    async fn idle_for(&self, h: &Arc<dyn Handler>) -> Duration {
        let pool = self.pool.clone();
        let kind = h.kind();
        let due = tokio::task::spawn_blocking(move || {
            let mut c = pool.get().ok()?;
            ostore::next_due(&mut c, kind).ok().flatten()
        })
        .await
        .ok()
        .flatten();
        match due {
            Some(t) => {
                Duration::from_millis((t - now_ms()).clamp(5, 1000) as u64).min(self.policy.idle)
            }
            None => self.policy.idle,
        }
    }

    /// Claim one batch of a handler's kind, deliver it, record the outcomes. Returns how many
    /// messages were handled (0: nothing due).
    pub async fn step(&self, h: &Arc<dyn Handler>) -> anyhow::Result<usize> {
        let pool = self.pool.clone();
        let (kind, batch, owner, lease) =
            (h.kind(), h.batch(), self.owner.clone(), self.policy.lease);
        let msgs = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Message>> {
            let mut c = pool.get()?;
            Ok(ostore::claim(&mut c, kind, batch, &owner, lease)?)
        })
        .await??;
        if msgs.is_empty() {
            return Ok(0);
        }
        let n = msgs.len();
        let outcomes = h.deliver(msgs.clone()).await;
        self.record(h, msgs, outcomes).await?;
        Ok(n)
    }

    async fn record(
        &self,
        h: &Arc<dyn Handler>,
        msgs: Vec<Message>,
        outcomes: Vec<Outcome>,
    ) -> anyhow::Result<()> {
        let mut by_id: HashMap<i32, Outcome> = outcomes.into_iter().map(|o| (o.id, o)).collect();
        let mut pause: Option<Duration> = None;
        let paired: Vec<(Message, Outcome)> = msgs
            .into_iter()
            .map(|m| {
                let mut o = by_id.remove(&m.id).unwrap_or_else(|| {
                    Outcome::retry(m.id, None, "the connector gave no result for this message")
                });
                if let OutcomeKind::Wait { after, .. } = &mut o.kind {
                    *after = (*after).min(self.policy.wait_max);
                    pause = Some(pause.map_or(*after, |p| p.max(*after)));
                }
                (m, o)
            })
            .collect();
        if let Some(p) = pause {
            let mut g = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            g.insert(h.target(), now_ms() + p.as_millis() as i64);
        }
        let pool = self.pool.clone();
        let owner = self.owner.clone();
        let backoff = Backoff {
            base: self.policy.backoff_base,
            max: self.policy.backoff_max,
            max_attempts: self.policy.max_attempts,
        };
        let h = h.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut c = pool.get()?;
            c.immediate_transaction(|c| {
                for (m, o) in &paired {
                    if ostore::record_outcome(c, m, o, &owner, &backoff)? {
                        h.record(c, m, o)?;
                    } else {
                        tracing::warn!(
                            id = m.id,
                            "outbox message lease lost; outcome not recorded"
                        );
                    }
                }
                diesel::QueryResult::Ok(())
            })?;
            Ok(())
        })
        .await??;
        Ok(())
    }

    /// Deliver everything due now, kind by kind, until nothing is due (tests and `--once` runs).
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut round = 0;
            for h in &self.handlers {
                if self.paused_until(h.target()).is_some() {
                    continue;
                }
                round += self.step(h).await?;
            }
            total += round;
            if round == 0 {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests;
