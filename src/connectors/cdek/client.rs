//! The CDEK API v2 over HTTP: the OAuth token (cached, refreshed before expiry and once after a
//! `v2_token_expired`), error classification, and a journal row for every call (token call
//! included). No outbox or order logic here.
//!
//! `base_url` is the API root, e.g. `https://api.cdek.ru/v2`, `https://api.edu.cdek.ru/v2` or a
//! simulator's `http://ADDR/v2` (a base without a trailing `/v2` gets one appended).

use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::relay::journal::{self, Call};
use crate::relay::OutcomeKind;
use crate::store::DbPool;

pub const TARGET: &str = "cdek";

/// A token is refreshed when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why a call failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// Credentials refused (OAuth 401/400, 403), or a token still refused after a refresh.
    Auth(String),
    /// 429.
    RateLimited(String),
    /// 5xx, or a gateway error.
    Server(u16, String),
    /// No answer in time.
    Timeout(String),
    /// Connection refused, reset …
    Transport(String),
    /// A 2xx whose body is not the JSON expected.
    Malformed(String),
    /// A business refusal (4xx with a CDEK error body). `code` is the first error code ("" if
    /// none); `message` lists every `code: message` of `requests[].errors[]` / `errors[]`.
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Auth(m) => write!(f, "CDEK refused the credentials: {m}"),
            CallError::RateLimited(m) => write!(f, "CDEK rate limit (429): {m}"),
            CallError::Server(s, m) => write!(f, "CDEK server error {s}: {m}"),
            CallError::Timeout(m) => write!(f, "no answer from CDEK in time: {m}"),
            CallError::Transport(m) => write!(f, "cannot reach CDEK: {m}"),
            CallError::Malformed(m) => write!(f, "CDEK answered with malformed JSON: {m}"),
            CallError::Rejected {
                status, message, ..
            } => write!(f, "CDEK refused the request ({status}): {message}"),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// What becomes of the outbox message of a call that failed.
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

    /// Certainly not applied by CDEK (refused before any work); a timeout or a 5xx may have been.
    pub fn not_applied(&self) -> bool {
        matches!(
            self,
            CallError::Auth(_) | CallError::RateLimited(_) | CallError::Rejected { .. }
        )
    }

    /// The CDEK error code of a refusal (`v2_entity_not_found` …).
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    fn token_expired(&self) -> bool {
        matches!(self, CallError::Auth(m) if m.contains("v2_token_expired"))
    }
}

/// One `{code, message}` of a request journal.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// Every error of a CDEK body: `requests[].errors[]`, `errors[]`, or OAuth `error`.
pub fn api_errors(v: &Value) -> Vec<ApiError> {
    let mut out = Vec::new();
    let mut take = |errs: &Value| {
        for e in errs.as_array().map(Vec::as_slice).unwrap_or(&[]) {
            out.push(ApiError {
                code: e["code"].as_str().unwrap_or("").to_string(),
                message: e["message"].as_str().unwrap_or("").to_string(),
            });
        }
    };
    for r in v["requests"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        take(&r["errors"]);
    }
    take(&v["errors"]);
    if let Some(e) = v["error"].as_str() {
        out.push(ApiError {
            code: e.to_string(),
            message: v["error_description"].as_str().unwrap_or("").to_string(),
        });
    }
    out
}

fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Turn a non-2xx answer into a [`CallError`].
pub fn classify(status: u16, body: &[u8]) -> CallError {
    let errs = serde_json::from_slice::<Value>(body)
        .map(|v| api_errors(&v))
        .unwrap_or_default();
    let message = if errs.is_empty() {
        let s = lossy(body, 300);
        if s.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            s
        }
    } else {
        errs.iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{}: {}", e.code, e.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let code = errs.first().map(|e| e.code.clone()).unwrap_or_default();
    match status {
        429 => CallError::RateLimited(message),
        401 | 403 => CallError::Auth(message),
        400 if code == "invalid_client" || code == "unsupported_grant_type" => {
            CallError::Auth(message)
        }
        408 => CallError::Timeout(message),
        s if s >= 500 => CallError::Server(s, message),
        s => CallError::Rejected {
            status: s,
            code,
            message,
        },
    }
}

/// The state of one request of an order's journal.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestState {
    Accepted,
    Waiting,
    Successful,
    Invalid(Vec<ApiError>),
}

impl RequestState {
    fn of(r: &Value) -> RequestState {
        match r["state"].as_str().unwrap_or("") {
            "SUCCESSFUL" => RequestState::Successful,
            "WAITING" => RequestState::Waiting,
            "INVALID" => RequestState::Invalid(api_errors(&json!({ "errors": r["errors"] }))),
            _ => RequestState::Accepted,
        }
    }
}

/// What `GET /v2/orders/{uuid}` says about an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    /// The (last) CREATE request.
    pub request_state: RequestState,
    /// The last DELETE request, if any.
    pub delete_state: Option<RequestState>,
    pub cdek_number: Option<String>,
    /// `statuses[0].code`: the current status.
    pub status_code: Option<String>,
}

/// Reads the order envelope (`entity` + `requests`).
pub fn order_state(v: &Value) -> OrderState {
    let reqs = v["requests"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let last = |kind: &str| reqs.iter().rev().find(|r| r["type"] == kind);
    let cdek_number = match &v["entity"]["cdek_number"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    OrderState {
        request_state: last("CREATE").map_or(RequestState::Accepted, RequestState::of),
        delete_state: last("DELETE").map(RequestState::of),
        cdek_number,
        status_code: v["entity"]["statuses"][0]["code"]
            .as_str()
            .map(String::from),
    }
}

/// What a successful call gave back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Result<Value, CallError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CallError::Malformed(format!("{e}: {}", lossy(&self.body, 200))))
    }
}

struct Token {
    value: String,
    expires: Instant,
}

enum Body {
    None,
    Json(Value),
    Form(String),
}

pub struct CdekClient {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: String,
    pool: DbPool,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// RFC 3986 unreserved characters stay as they are.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

impl CdekClient {
    pub fn new(
        base_url: &str,
        client_id: &str,
        client_secret: &str,
        timeout: Duration,
        pool: DbPool,
    ) -> Arc<CdekClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout.max(Duration::from_millis(100)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let mut base = base_url.trim_end_matches('/').to_string();
        if !base.ends_with("/v2") {
            base.push_str("/v2");
        }
        Arc::new(CdekClient {
            http,
            base,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            pool,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The API root in use (`…/v2`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A valid access token: the cached one, or a fresh one when under 60 s are left.
    pub async fn token(&self) -> Result<String, CallError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if t.expires > Instant::now() + REFRESH_MARGIN {
                return Ok(t.value.clone());
            }
        }
        let t = self.fetch_token().await?;
        let v = t.value.clone();
        *slot = Some(t);
        Ok(v)
    }

    /// Forgets the cached token if it is still `stale` (another task may have refreshed it).
    async fn drop_token(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale) {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, CallError> {
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            enc(&self.client_id),
            enc(&self.client_secret)
        );
        let url = format!("{}/oauth/token", self.base);
        let started = Instant::now();
        let r = self
            .send(
                "/oauth/token",
                reqwest::Method::POST,
                &url,
                None,
                Body::Form(form),
            )
            .await?;
        let v = r.json()?;
        let Some(value) = v["access_token"].as_str().filter(|s| !s.is_empty()) else {
            return Err(CallError::Malformed(format!(
                "no access_token in {}",
                lossy(&r.body, 200)
            )));
        };
        let ttl = v["expires_in"].as_u64().unwrap_or(3600);
        Ok(Token {
            value: value.to_string(),
            expires: started + Duration::from_secs(ttl),
        })
    }

    /// One HTTP exchange, journaled. 2xx → [`Reply`], else a [`CallError`].
    async fn send(
        &self,
        endpoint: &str,
        method: reqwest::Method,
        url: &str,
        bearer: Option<&str>,
        body: Body,
    ) -> Result<Reply, CallError> {
        let started = Instant::now();
        let at = crate::store::now_ms();
        let mut rb = self.http.request(method.clone(), url);
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        let request = match body {
            Body::None => None,
            Body::Json(v) => {
                let s = v.to_string();
                rb = rb
                    .header("Content-Type", "application/json")
                    .body(s.clone());
                Some(s)
            }
            Body::Form(f) => {
                rb = rb
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(f);
                // Never journal the secret.
                Some(format!(
                    "grant_type=client_credentials&client_id={}&client_secret=***",
                    enc(&self.client_id)
                ))
            }
        };
        let (result, status, response) = match rb.send().await {
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
                        } else if endpoint == "/oauth/token" && status == 200 {
                            "<token>".to_string()
                        } else {
                            lossy(&b, journal::EXCERPT + 16)
                        };
                        let result = if (200..300).contains(&status)
                            && ct.contains("json")
                            && serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_err()
                        {
                            // Journaled as the failure it is (an answer cut short, a proxy's
                            // page with a JSON type), not as a success the caller then rejects.
                            Err(CallError::Malformed(format!(
                                "HTTP {status} with a body that is not JSON: {}",
                                if endpoint == "/oauth/token" {
                                    // Never journal (part of) a token.
                                    "<token answer>".to_string()
                                } else {
                                    lossy(&b, 200)
                                }
                            )))
                        } else if (200..300).contains(&status) {
                            Ok(Reply {
                                status,
                                content_type: ct,
                                body: b.to_vec(),
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
            endpoint: format!("{method} {endpoint}"),
            at,
            duration_ms: started.elapsed().as_millis() as i64,
            http_status: status.map(|s| s as i32),
            outcome: outcome.into(),
            messages: 0,
            error: result.as_ref().err().map(|e| e.to_string()),
            request,
            response,
        };
        let pool = self.pool.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut c = pool.get().ok()?;
            journal::record_call(&mut c, &call).ok()
        })
        .await;
        if let Err(e) = &result {
            tracing::info!(endpoint, error = %e, "cdek call failed");
        }
        result
    }

    /// An authorised call; after a `v2_token_expired` the token is refreshed and the call
    /// repeated once. `endpoint` is the journal name (`/orders/{uuid}`), `url` the full URL.
    async fn call(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, CallError> {
        let mk = || body.map_or(Body::None, |b| Body::Json(b.clone()));
        let t = self.token().await?;
        match self
            .send(endpoint, method.clone(), url, Some(&t), mk())
            .await
        {
            Err(e) if e.token_expired() => {
                self.drop_token(&t).await;
                let t = self.token().await?;
                self.send(endpoint, method, url, Some(&t), mk()).await
            }
            r => r,
        }
    }

    async fn call_json(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        self.call(method, endpoint, &url, body).await?.json()
    }

    fn entity_uuid(v: &Value) -> Result<String, CallError> {
        v["entity"]["uuid"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| CallError::Malformed(format!("no entity.uuid in {v}")))
    }

    /// `POST /orders` → the order uuid (202; the outcome is known only from [`Self::get_order`]).
    pub async fn create_order(&self, order: &Value) -> Result<String, CallError> {
        let v = self
            .call_json(reqwest::Method::POST, "/orders", "/orders", Some(order))
            .await?;
        Self::entity_uuid(&v)
    }

    /// `GET /orders/{uuid}` → the envelope (read it with [`order_state`]).
    pub async fn get_order(&self, uuid: &str) -> Result<Value, CallError> {
        self.call_json(
            reqwest::Method::GET,
            "/orders/{uuid}",
            &format!("/orders/{}", enc(uuid)),
            None,
        )
        .await
    }

    /// `GET /orders?im_number=` → the latest order with this number, None only when CDEK says
    /// there is none (`v2_entity_not_found*`); any other failure is an error.
    pub async fn find_by_im_number(&self, number: &str) -> Result<Option<Value>, CallError> {
        self.find("im_number", number).await
    }

    /// `GET /orders?cdek_number=`.
    pub async fn find_by_cdek_number(&self, number: &str) -> Result<Option<Value>, CallError> {
        self.find("cdek_number", number).await
    }

    async fn find(&self, key: &str, value: &str) -> Result<Option<Value>, CallError> {
        match self
            .call_json(
                reqwest::Method::GET,
                &format!("/orders?{key}="),
                &format!("/orders?{key}={}", enc(value)),
                None,
            )
            .await
        {
            Ok(v) if v["entity"]["uuid"].is_string() => Ok(Some(v)),
            Ok(v) => Err(CallError::Malformed(format!("no entity.uuid in {v}"))),
            // Only CDEK's own "no such order" means absent: a 404 of a wrong URL must not let a
            // caller conclude that an order does not exist (and create a duplicate).
            Err(CallError::Rejected {
                status: 404, code, ..
            }) if code.starts_with("v2_entity_not_found") || code == "v2_order_not_found" => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /orders/{uuid}` → the envelope (202 ACCEPTED; the result shows in `get_order`).
    pub async fn delete_order(&self, uuid: &str) -> Result<Value, CallError> {
        self.call_json(
            reqwest::Method::DELETE,
            "/orders/{uuid}",
            &format!("/orders/{}", enc(uuid)),
            None,
        )
        .await
    }

    /// `POST /print/orders` for one order → the print form uuid.
    pub async fn print_waybill(&self, order_uuid: &str) -> Result<String, CallError> {
        let body = json!({"orders": [{"order_uuid": order_uuid}], "copy_count": 2});
        let v = self
            .call_json(
                reqwest::Method::POST,
                "/print/orders",
                "/print/orders",
                Some(&body),
            )
            .await?;
        Self::entity_uuid(&v)
    }

    /// `GET /print/orders/{uuid}`: `entity.url` is there once `statuses` reach READY.
    pub async fn get_print(&self, uuid: &str) -> Result<Value, CallError> {
        self.call_json(
            reqwest::Method::GET,
            "/print/orders/{uuid}",
            &format!("/print/orders/{}", enc(uuid)),
            None,
        )
        .await
    }

    /// GET a file CDEK links to (a print form url), with the Bearer token.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, CallError> {
        let endpoint = url
            .strip_prefix(&self.base)
            .map(|p| {
                if p.starts_with("/print/") {
                    "/print/{file}".to_string()
                } else {
                    p.to_string()
                }
            })
            .unwrap_or_else(|| "download".to_string());
        Ok(self
            .call(reqwest::Method::GET, &endpoint, url, None)
            .await?
            .body)
    }

    /// `POST /webhooks {url, type}` → the subscription uuid.
    pub async fn subscribe_webhook(&self, url: &str, kind: &str) -> Result<String, CallError> {
        let body = json!({"url": url, "type": kind});
        let v = self
            .call_json(reqwest::Method::POST, "/webhooks", "/webhooks", Some(&body))
            .await?;
        Self::entity_uuid(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_as_cdek_sends_them() {
        let expired = br#"{"requests":[{"type":"AUTH","state":"INVALID","errors":[{"code":"v2_token_expired","message":"x"}]}]}"#;
        let e = classify(401, expired);
        assert!(matches!(e, CallError::Auth(_)) && e.token_expired());
        let e = classify(401, br#"{"errors":[{"code":"v2_token_expired"}]}"#);
        assert!(e.token_expired());
        let e = classify(
            401,
            br#"{"error":"invalid_client","error_description":"Bad client credentials"}"#,
        );
        assert_eq!(
            e,
            CallError::Auth("invalid_client: Bad client credentials".into())
        );
        assert!(!e.token_expired());
        match classify(
            400,
            br#"{"requests":[{"type":"CREATE","state":"INVALID","errors":[{"code":"v2_field_is_empty","message":"[tariff_code] is empty"},{"code":"v2_field_is_empty","message":"[packages] is empty"}]}]}"#,
        ) {
            CallError::Rejected {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code.as_str()), (400, "v2_field_is_empty"));
                assert_eq!(
                    message,
                    "v2_field_is_empty: [tariff_code] is empty; v2_field_is_empty: [packages] is empty"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(429, br#"{"errors":[{"code":"too_many_requests"}]}"#),
            CallError::RateLimited(m) if m == "too_many_requests"
        ));
        assert!(matches!(
            classify(502, b"<html>bad gateway"),
            CallError::Server(502, _)
        ));
        assert_eq!(
            classify(
                404,
                br#"{"errors":[{"code":"v2_entity_not_found","message":"gone"}]}"#
            )
            .code(),
            Some("v2_entity_not_found")
        );
    }

    #[test]
    fn failures_map_to_relay_outcomes() {
        assert!(matches!(
            CallError::Auth("x".into()).outcome(),
            OutcomeKind::Wait { .. }
        ));
        assert!(matches!(
            CallError::Timeout("x".into()).outcome(),
            OutcomeKind::Retry { .. }
        ));
        let rejected = CallError::Rejected {
            status: 400,
            code: "v2_field_is_empty".into(),
            message: "x".into(),
        };
        assert!(matches!(rejected.outcome(), OutcomeKind::Dead { .. }));
        assert!(rejected.not_applied());
        assert!(!CallError::Timeout("x".into()).not_applied());
        assert!(!CallError::Server(500, "x".into()).not_applied());
    }

    #[test]
    fn order_state_reads_the_envelope() {
        let v = json!({"entity": {"uuid": "u", "cdek_number": "1105088384",
            "statuses": [{"code": "REMOVED"}, {"code": "CREATED"}, {"code": "ACCEPTED"}]},
            "requests": [
                {"type": "CREATE", "state": "SUCCESSFUL", "errors": []},
                {"type": "DELETE", "state": "INVALID", "errors": [{"code": "v2_entity_has_final_status", "message": "moved"}]}]});
        let s = order_state(&v);
        assert_eq!(s.request_state, RequestState::Successful);
        assert_eq!(
            s.delete_state,
            Some(RequestState::Invalid(vec![ApiError {
                code: "v2_entity_has_final_status".into(),
                message: "moved".into()
            }]))
        );
        assert_eq!(s.cdek_number.as_deref(), Some("1105088384"));
        assert_eq!(s.status_code.as_deref(), Some("REMOVED"));
        let s = order_state(&json!({"entity": {"uuid": "u"},
            "requests": [{"type": "CREATE", "state": "ACCEPTED"}]}));
        assert_eq!(
            (
                s.request_state,
                s.cdek_number,
                s.status_code,
                s.delete_state
            ),
            (RequestState::Accepted, None, None, None)
        );
    }
}
