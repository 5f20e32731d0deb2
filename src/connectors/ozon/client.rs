//! The Ozon Seller API over HTTP: auth headers, rate limits (governor), error classification
//! and a journal row for every call.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use crate::config::OzonConfig;
use crate::relay::journal::{self, Call};
use crate::relay::OutcomeKind;
use crate::store::DbPool;

pub const TARGET: &str = "ozon";

/// Why a call failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The key or client id is refused (404 code 5, 403): nothing will pass until it is fixed.
    Auth(String),
    /// 429 / code 8.
    RateLimited(String),
    /// 5xx, or a gateway error.
    Server(u16, String),
    /// No answer in time.
    Timeout(String),
    /// Connection refused, reset …
    Transport(String),
    /// A 200 whose body is not the JSON expected.
    Malformed(String),
    /// A business refusal (4xx with an Ozon error body): `code`/`message` as Ozon gave them.
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Auth(m) => write!(f, "Ozon refused the credentials: {m}"),
            CallError::RateLimited(m) => write!(f, "Ozon rate limit (429): {m}"),
            CallError::Server(s, m) => write!(f, "Ozon server error {s}: {m}"),
            CallError::Timeout(m) => write!(f, "no answer from Ozon in time: {m}"),
            CallError::Transport(m) => write!(f, "cannot reach Ozon: {m}"),
            CallError::Malformed(m) => write!(f, "Ozon answered with malformed JSON: {m}"),
            CallError::Rejected {
                status, message, ..
            } => write!(f, "Ozon refused the request ({status}): {message}"),
        }
    }
}

impl CallError {
    /// What becomes of the messages of a call that failed as a whole.
    pub fn outcome(&self) -> OutcomeKind {
        match self {
            CallError::Auth(_) => OutcomeKind::Wait {
                error: self.to_string(),
                after: Duration::from_secs(60),
            },
            CallError::RateLimited(_) => OutcomeKind::Retry {
                error: self.to_string(),
                after: Some(Duration::from_secs(2)),
            },
            CallError::Server(..)
            | CallError::Timeout(_)
            | CallError::Transport(_)
            | CallError::Malformed(_) => OutcomeKind::Retry {
                error: self.to_string(),
                after: None,
            },
            CallError::Rejected { .. } => OutcomeKind::Dead {
                error: self.to_string(),
            },
        }
    }

    /// Certainly not applied by Ozon (refused before any work); a timeout or a 5xx may have been.
    pub fn not_applied(&self) -> bool {
        matches!(
            self,
            CallError::Auth(_) | CallError::RateLimited(_) | CallError::Rejected { .. }
        )
    }

    /// A failure that may well not happen again (rate limit, server error, timeout, transport,
    /// garbled answer), as opposed to a refused key or a refused request.
    pub fn passing(&self) -> bool {
        !matches!(self, CallError::Auth(_) | CallError::Rejected { .. })
    }

    /// The Ozon message of a business refusal (`POSTING_ALREADY_SHIPPED` …).
    pub fn rejected_message(&self) -> Option<&str> {
        match self {
            CallError::Rejected { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// What a successful call gave back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub call_id: Option<i64>,
}

impl Reply {
    pub fn json(&self) -> Result<Value, CallError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CallError::Malformed(format!("{e}: {}", lossy(&self.body, 200))))
    }
}

fn lossy(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    s
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    client_id: String,
    api_key: String,
    pool: DbPool,
    global: DefaultDirectRateLimiter,
    stocks: DefaultDirectRateLimiter,
}

fn spaced(per: Duration, n: u32) -> Quota {
    // Evenly spaced with a small margin, no burst: never more than n in any window `per`.
    let n = n.max(1);
    let period = per / n + Duration::from_millis(2);
    Quota::with_period(period)
        .expect("non-zero period")
        .allow_burst(NonZeroU32::MIN)
}

impl Client {
    pub fn new(cfg: &OzonConfig, pool: DbPool) -> anyhow::Result<Arc<Client>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Arc::new(Client {
            http,
            base: cfg
                .base_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            client_id: cfg.client_id.clone().unwrap_or_default(),
            api_key: cfg.api_key.clone().unwrap_or_default(),
            pool,
            global: RateLimiter::direct(spaced(Duration::from_secs(1), cfg.rps)),
            stocks: RateLimiter::direct(spaced(Duration::from_secs(60), cfg.stocks_per_minute)),
        }))
    }

    /// POST a JSON body; a 200 comes back as a [`Reply`], anything else as a [`CallError`].
    /// Every call is journaled (`api_calls`), with `messages` = how many outbox messages it carries.
    pub async fn post(
        &self,
        endpoint: &str,
        body: &Value,
        messages: usize,
    ) -> (Result<Reply, CallError>, Option<i64>) {
        self.exchange(endpoint, body, messages, false).await
    }

    /// One journaled call. A 200 whose body is not JSON though JSON was expected (`json`) or
    /// announced (its Content-Type) is a [`CallError::Malformed`], journaled as the failed try
    /// it is rather than as a success its caller then rejects.
    async fn exchange(
        &self,
        endpoint: &str,
        body: &Value,
        messages: usize,
        json: bool,
    ) -> (Result<Reply, CallError>, Option<i64>) {
        if endpoint == "/v2/products/stocks" {
            self.stocks.until_ready().await;
        }
        self.global.until_ready().await;
        let started = Instant::now();
        let at = crate::store::now_ms();
        let request = body.to_string();
        let res = self
            .http
            .post(format!("{}{}", self.base, endpoint))
            .header("Client-Id", &self.client_id)
            .header("Api-Key", &self.api_key)
            .header("Content-Type", "application/json")
            .body(request.clone())
            .send()
            .await;
        let (result, status, response) = match res {
            Err(e) => {
                let err = if e.is_timeout() {
                    CallError::Timeout(e.to_string())
                } else {
                    CallError::Transport(e.to_string())
                };
                (Err(err), None, None)
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                match r.bytes().await {
                    Err(e) => {
                        let err = if e.is_timeout() {
                            CallError::Timeout(e.to_string())
                        } else {
                            CallError::Transport(e.to_string())
                        };
                        (Err(err), Some(status), None)
                    }
                    Ok(b) => {
                        let text = if ct.contains("pdf") {
                            format!("<{} bytes of {ct}>", b.len())
                        } else {
                            lossy(&b, journal::EXCERPT + 16)
                        };
                        let result = if status == 200
                            && (json || ct.contains("json"))
                            && serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_err()
                        {
                            Err(CallError::Malformed(format!(
                                "HTTP 200 with a body that is not JSON: {}",
                                lossy(&b, 200)
                            )))
                        } else if status == 200 {
                            Ok(Reply {
                                status,
                                content_type: ct,
                                body: b.to_vec(),
                                call_id: None,
                            })
                        } else {
                            Err(classify(status, &b))
                        };
                        (result, Some(status), Some(text))
                    }
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Auth(_)) => "wait",
            Err(CallError::Rejected { .. }) => "refused",
            Err(_) => "retry",
        };
        let call = Call {
            target: TARGET.into(),
            endpoint: endpoint.into(),
            at,
            duration_ms: started.elapsed().as_millis() as i64,
            http_status: status.map(|s| s as i32),
            outcome: outcome.into(),
            messages: messages as i32,
            error: result.as_ref().err().map(|e| e.to_string()),
            request: Some(request),
            response,
        };
        let pool = self.pool.clone();
        let call_id = tokio::task::spawn_blocking(move || {
            let mut c = pool.get().ok()?;
            journal::record_call(&mut c, &call).ok()
        })
        .await
        .ok()
        .flatten();
        if let Err(e) = &result {
            tracing::info!(endpoint, error = %e, "ozon call failed");
        }
        let result = result.map(|mut r| {
            r.call_id = call_id;
            r
        });
        (result, call_id)
    }

    /// POST expecting JSON back.
    pub async fn post_json(
        &self,
        endpoint: &str,
        body: &Value,
        messages: usize,
    ) -> (Result<Value, CallError>, Option<i64>) {
        let (r, id) = self.exchange(endpoint, body, messages, true).await;
        (r.and_then(|r| r.json()), id)
    }

    /// Plain GET of a file Ozon links to (label task `file_url`).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, CallError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = r.status().as_u16();
        let b = r
            .bytes()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if status != 200 {
            return Err(classify(status, &b));
        }
        Ok(b.to_vec())
    }
}

/// Turn a non-200 answer into a [`CallError`]. Ozon's body is the gRPC shape
/// `{code, message, details}`; the older `{"error":{"code","message"}}` is read too.
pub fn classify(status: u16, body: &[u8]) -> CallError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let (code, message) = match &v {
        Some(v) if v.get("message").is_some() => (
            v["code"].as_i64(),
            v["message"].as_str().unwrap_or("").to_string(),
        ),
        Some(v) if v.get("error").is_some() => (
            None,
            format!(
                "{} {}",
                v["error"]["code"].as_str().unwrap_or(""),
                v["error"]["message"].as_str().unwrap_or("")
            )
            .trim()
            .to_string(),
        ),
        _ => (None, lossy(body, 300)),
    };
    let message = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message
    };
    match (status, code) {
        (429, _) | (_, Some(8)) => CallError::RateLimited(message),
        // Code 5 is gRPC NOT_FOUND: a refused key, or a missing object (`POSTING_NOT_FOUND`).
        (404, Some(5)) if message.contains("NOT_FOUND") => CallError::Rejected {
            status,
            code,
            message,
        },
        (404, Some(5)) | (401, _) | (403, _) => CallError::Auth(message),
        (404, _) if message.contains("Api-Key") => CallError::Auth(message),
        (s, _) if s >= 500 => CallError::Server(s, message),
        (408, _) => CallError::Timeout(message),
        (s, c) => CallError::Rejected {
            status: s,
            code: c,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_as_ozon_sends_them() {
        let bad_key = br#"{"code":5,"message":"Invalid Api-Key, please check the key and try again","details":[]}"#;
        assert!(matches!(classify(404, bad_key), CallError::Auth(_)));
        let rl = br#"{"code":8,"message":"You have reached request rate limit per second","details":[]}"#;
        assert!(matches!(classify(429, rl), CallError::RateLimited(_)));
        assert!(matches!(
            classify(500, br#"{"code":13,"message":"Internal error"}"#),
            CallError::Server(500, _)
        ));
        match classify(
            400,
            br#"{"code":3,"message":"POSTING_ALREADY_SHIPPED","details":[]}"#,
        ) {
            CallError::Rejected { code, message, .. } => {
                assert_eq!(
                    (code, message.as_str()),
                    (Some(3), "POSTING_ALREADY_SHIPPED")
                )
            }
            other => panic!("{other:?}"),
        }
        match classify(
            404,
            br#"{"error":{"code":"NOT_FOUND_ERROR","message":"POSTING_NOT_FOUND","data":[]}}"#,
        ) {
            CallError::Rejected { message, .. } => {
                assert_eq!(message, "NOT_FOUND_ERROR POSTING_NOT_FOUND")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(
                404,
                br#"{"code":5,"message":"POSTING_NOT_FOUND","details":[]}"#
            ),
            CallError::Rejected { .. }
        ));
        assert!(matches!(
            classify(502, b"<html>bad gateway"),
            CallError::Server(502, _)
        ));
    }

    #[test]
    fn whole_call_failures_map_to_relay_outcomes() {
        assert!(matches!(
            CallError::Auth("x".into()).outcome(),
            OutcomeKind::Wait { .. }
        ));
        assert!(matches!(
            CallError::Malformed("x".into()).outcome(),
            OutcomeKind::Retry { .. }
        ));
        assert!(matches!(
            CallError::Timeout("x".into()).outcome(),
            OutcomeKind::Retry { .. }
        ));
    }
}
