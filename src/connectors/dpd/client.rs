//! The DPD SOAP client: request building, answer classification and a journal row for every
//! call (target `dpd`, endpoint `<service>/<operation>`, the clientKey masked).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::xml::{self, el, Node, NS_ORDER, NS_TRACING};
use crate::relay::journal::{self, Call};
use crate::relay::OutcomeKind;
use crate::store::DbPool;

pub const TARGET: &str = "dpd";

/// Why a call failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// `auth` refused (fault code `no-auth`, HTTP 401/403): nothing passes until it is fixed.
    Auth(String),
    /// 5xx without a SOAP fault, or a gateway error.
    Server(u16, String),
    /// No answer in time: the call may have been applied.
    Timeout(String),
    /// Connection refused, reset …
    Transport(String),
    /// A 200 that is not the SOAP answer expected.
    Malformed(String),
    /// Another 4xx without a SOAP fault.
    Rejected { status: u16, message: String },
    /// A SOAP fault other than auth (an invalid request): `code` from `detail/WSFault/code`
    /// (or `faultcode`), `message` the faultstring.
    Fault { code: String, message: String },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Auth(m) => write!(f, "DPD refused the credentials: {m}"),
            CallError::Server(s, m) => write!(f, "DPD server error {s}: {m}"),
            CallError::Timeout(m) => write!(f, "no answer from DPD in time: {m}"),
            CallError::Transport(m) => write!(f, "cannot reach DPD: {m}"),
            CallError::Malformed(m) => write!(f, "DPD answered with malformed SOAP: {m}"),
            CallError::Rejected { status, message } => {
                write!(f, "DPD refused the request ({status}): {message}")
            }
            CallError::Fault { code, message } => write!(f, "DPD fault {code}: {message}"),
        }
    }
}

impl CallError {
    /// What becomes of the message behind a call that failed as a whole.
    pub fn outcome(&self) -> OutcomeKind {
        match self {
            CallError::Auth(_) => OutcomeKind::Wait {
                error: self.to_string(),
                after: Duration::from_secs(60),
            },
            CallError::Server(..)
            | CallError::Timeout(_)
            | CallError::Transport(_)
            | CallError::Malformed(_) => OutcomeKind::Retry {
                error: self.to_string(),
                after: None,
            },
            CallError::Rejected { .. } | CallError::Fault { .. } => OutcomeKind::Dead {
                error: self.to_string(),
            },
        }
    }

    /// Certainly not applied by DPD (refused before any work). A timeout, a 5xx, a transport
    /// error after sending, or a malformed answer may have been applied: after such a
    /// createOrder, look the order up with getOrderStatus instead of creating it again.
    pub fn not_applied(&self) -> bool {
        matches!(
            self,
            CallError::Auth(_) | CallError::Rejected { .. } | CallError::Fault { .. }
        )
    }
}

/// The per-order `status` of createOrder / getOrderStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpdStatus {
    /// `OK`: `orderNum` is the tracking number.
    Ok,
    /// `OrderPending`: accepted, no number yet — poll getOrderStatus.
    Pending,
    /// `OrderDuplicate`: this orderNumberInternal exists already.
    Duplicate,
    /// `OrderError`: refused (or, from getOrderStatus, not found); see `error`.
    Error,
    /// `OrderCancelled`.
    Cancelled,
    /// Anything else, verbatim.
    Other(String),
}

impl DpdStatus {
    pub fn parse(s: &str) -> DpdStatus {
        match s {
            "OK" => DpdStatus::Ok,
            "OrderPending" => DpdStatus::Pending,
            "OrderDuplicate" => DpdStatus::Duplicate,
            "OrderError" => DpdStatus::Error,
            "OrderCancelled" => DpdStatus::Cancelled,
            other => DpdStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DpdStatus::Ok => "OK",
            DpdStatus::Pending => "OrderPending",
            DpdStatus::Duplicate => "OrderDuplicate",
            DpdStatus::Error => "OrderError",
            DpdStatus::Cancelled => "OrderCancelled",
            DpdStatus::Other(s) => s,
        }
    }
}

/// One order's answer to createOrder / getOrderStatus.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateResult {
    pub status: DpdStatus,
    /// The DPD order number (tracking number), with `OK` (and sometimes a duplicate).
    pub order_num: Option<String>,
    /// `errorMessage`.
    pub error: Option<String>,
}

/// One order's answer to cancelOrder.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelResult {
    /// `Canceled`, `CanceledPreviously`, `NotFound`, `CallDPD` …
    pub status: String,
    pub order_num: Option<String>,
    pub error: Option<String>,
}

/// One tracking event.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// `newState`: NewOrderByClient, OnTerminalPickup, OnRoad, Delivering, Delivered, NotDone …
    pub state: String,
    /// `transitionTime` as DPD gives it (`YYYY-MM-DDTHH:MM:SS`).
    pub at: String,
    pub dpd_order_nr: String,
}

/// A sender or pickup address (from configuration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DpdAddress {
    pub name: String,
    pub country_name: String,
    pub city: String,
    pub street: String,
    pub house: String,
    pub contact_fio: String,
    pub contact_phone: String,
    /// Drop-off at a terminal instead of a pickup at the address.
    pub terminal_code: Option<String>,
}

/// One order to create: plain data, mapped by the caller from an obmen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DpdOrder {
    /// `orderNumberInternal`: our id, ≤ 20 characters; the idempotency key at DPD.
    pub number_internal: String,
    /// `datePickup`, YYYY-MM-DD.
    pub date_pickup: String,
    /// `pickupTimePeriod`, e.g. "9-18" (empty = "9-18").
    pub pickup_time_period: String,
    /// `serviceCode`: ECN, PCL, CUR …
    pub service_code: String,
    /// `serviceVariant`: ДД, ДТ, ТД, ТТ.
    pub service_variant: String,
    pub weight_kg: f64,
    /// `cargoNumPack`.
    pub packages: u32,
    /// `cargoValue` (declared value, RUB); None = not declared.
    pub value: Option<f64>,
    /// `cargoCategory` (empty = "Товары").
    pub cargo_category: String,
    pub receiver_name: String,
    pub receiver_phone: String,
    pub receiver_city: String,
    pub receiver_street: String,
    pub receiver_house: String,
    pub sender: DpdAddress,
}

fn address(tag: &str, a: &DpdAddress) -> String {
    let country = if a.country_name.is_empty() {
        "Россия"
    } else {
        &a.country_name
    };
    let mut s = format!("<{tag}>");
    s.push_str(&el("name", &a.name));
    s.push_str(&el("countryName", country));
    s.push_str(&el("city", &a.city));
    s.push_str(&el("street", &a.street));
    s.push_str(&el("house", &a.house));
    s.push_str(&el("contactFio", &a.contact_fio));
    s.push_str(&el("contactPhone", &a.contact_phone));
    if let Some(t) = &a.terminal_code {
        s.push_str(&el("terminalCode", t));
    }
    s.push_str(&format!("</{tag}>"));
    s
}

fn num(v: f64) -> String {
    // No exponent, no trailing noise: DPD wants a plain decimal.
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// The request as journaled: the clientKey replaced by `***`.
fn masked(request: &str) -> String {
    let mut out = String::with_capacity(request.len());
    let mut rest = request;
    while let Some(i) = rest.find("<clientKey>") {
        let open_end = i + "<clientKey>".len();
        out.push_str(&rest[..open_end]);
        out.push_str("***");
        rest = &rest[open_end..];
        match rest.find("</clientKey>") {
            Some(j) => rest = &rest[j..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

fn fault_error(status: u16, f: &Node) -> CallError {
    let message = f
        .text_of("faultstring")
        .map(str::to_string)
        .unwrap_or_else(|| format!("SOAP fault (HTTP {status})"));
    let code = f
        .child("detail")
        .and_then(|d| d.find("code"))
        .map(|c| c.text.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| f.str("faultcode").to_string());
    let auth_words = ["no-auth", "auth"];
    if status == 401
        || status == 403
        || auth_words.contains(&code.as_str())
        || message.to_lowercase().contains("авториз")
    {
        CallError::Auth(message)
    } else {
        CallError::Fault { code, message }
    }
}

/// Turn an HTTP answer into the response element `{op}Response`, or a [`CallError`].
pub fn interpret(status: u16, body: &[u8], op: &str) -> Result<Node, CallError> {
    let parsed = xml::parse(body);
    if let Ok(root) = &parsed {
        if let Ok(b) = xml::body_element(root) {
            if b.name == "Fault" {
                return Err(fault_error(status, b));
            }
            if status == 200 {
                return if b.name == format!("{op}Response") {
                    Ok(b.clone())
                } else {
                    Err(CallError::Malformed(format!(
                        "expected <{op}Response>, got <{}>",
                        b.name
                    )))
                };
            }
        }
    }
    let text = lossy(body, 300);
    match status {
        200 => Err(CallError::Malformed(match parsed {
            Err(e) => format!("{e}: {text}"),
            Ok(_) => format!("not a SOAP envelope: {text}"),
        })),
        401 | 403 => Err(CallError::Auth(format!("HTTP {status}: {text}"))),
        408 => Err(CallError::Timeout(format!("HTTP 408: {text}"))),
        s if s >= 500 => Err(CallError::Server(s, text)),
        s => Err(CallError::Rejected {
            status: s,
            message: text,
        }),
    }
}

fn order_result(r: &Node) -> CreateResult {
    CreateResult {
        status: DpdStatus::parse(r.str("status")),
        order_num: r.text_of("orderNum").map(str::to_string),
        error: r.text_of("errorMessage").map(str::to_string),
    }
}

/// The `return` of this orderNumberInternal (or the only one).
fn pick<'a>(resp: &'a Node, number_internal: &str) -> Result<&'a Node, CallError> {
    let mut all = resp.all("return").peekable();
    let first = all.peek().copied();
    all.find(|r| r.str("orderNumberInternal") == number_internal)
        .or(first)
        .ok_or_else(|| CallError::Malformed(format!("<{}> without <return>", resp.name)))
}

pub struct DpdClient {
    http: reqwest::Client,
    base: String,
    client_number: String,
    client_key: String,
    pool: DbPool,
}

impl DpdClient {
    /// `base_url` like `https://ws.dpd.ru` (the `/services/<name>` paths are appended).
    pub fn new(
        base_url: &str,
        client_number: &str,
        client_key: &str,
        timeout: Duration,
        pool: DbPool,
    ) -> Arc<DpdClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout.max(Duration::from_millis(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client without TLS options always builds");
        Arc::new(DpdClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            client_number: client_number.to_string(),
            client_key: client_key.to_string(),
            pool,
        })
    }

    fn auth(&self) -> String {
        format!(
            "<auth>{}{}</auth>",
            el("clientNumber", &self.client_number),
            el("clientKey", &self.client_key)
        )
    }

    /// One SOAP call, journaled; Ok = the `{op}Response` element.
    async fn call(&self, service: &str, op: &str, inner: String) -> Result<Node, CallError> {
        let ns = if service == "tracing" {
            NS_TRACING
        } else {
            NS_ORDER
        };
        let request = xml::envelope(ns, op, &inner);
        let started = Instant::now();
        let at = crate::store::now_ms();
        let res = self
            .http
            .post(format!("{}/services/{service}", self.base))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(request.clone())
            .send()
            .await;
        let to_err = |e: reqwest::Error| {
            if e.is_timeout() {
                CallError::Timeout(e.to_string())
            } else {
                CallError::Transport(e.to_string())
            }
        };
        let (result, status, response) = match res {
            Err(e) => (Err(to_err(e)), None, None),
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Err(e) => (Err(to_err(e)), Some(status), None),
                    Ok(b) => (
                        interpret(status, &b, op),
                        Some(status),
                        Some(lossy(&b, journal::EXCERPT + 16)),
                    ),
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Auth(_)) => "wait",
            Err(CallError::Rejected { .. } | CallError::Fault { .. }) => "refused",
            Err(_) => "retry",
        };
        let call = Call {
            target: TARGET.into(),
            endpoint: format!("{service}/{op}"),
            at,
            duration_ms: started.elapsed().as_millis() as i64,
            http_status: status.map(|s| s as i32),
            outcome: outcome.into(),
            messages: 0,
            error: result.as_ref().err().map(|e| e.to_string()),
            request: Some(masked(&request)),
            response,
        };
        let pool = self.pool.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut c = pool.get().ok()?;
            journal::record_call(&mut c, &call).ok()
        })
        .await;
        if let Err(e) = &result {
            tracing::info!(op, error = %e, "dpd call failed");
        }
        result
    }

    /// `order2/createOrder` with one order.
    pub async fn create_order(&self, o: &DpdOrder) -> Result<CreateResult, CallError> {
        let period = if o.pickup_time_period.is_empty() {
            "9-18"
        } else {
            &o.pickup_time_period
        };
        let category = if o.cargo_category.is_empty() {
            "Товары"
        } else {
            &o.cargo_category
        };
        let mut s = String::from("<orders>");
        s.push_str(&self.auth());
        s.push_str("<header>");
        s.push_str(&el("datePickup", &o.date_pickup));
        s.push_str(&el("payer", &self.client_number));
        s.push_str(&address("senderAddress", &o.sender));
        s.push_str(&el("pickupTimePeriod", period));
        s.push_str("</header><order>");
        s.push_str(&el("orderNumberInternal", &o.number_internal));
        s.push_str(&el("serviceCode", &o.service_code));
        s.push_str(&el("serviceVariant", &o.service_variant));
        s.push_str(&el("cargoNumPack", &o.packages.max(1).to_string()));
        s.push_str(&el("cargoWeight", &num(o.weight_kg)));
        s.push_str(&el("cargoRegistered", "false"));
        if let Some(v) = o.value {
            s.push_str(&el("cargoValue", &num(v)));
        }
        s.push_str(&el("cargoCategory", category));
        let receiver = DpdAddress {
            name: o.receiver_name.clone(),
            city: o.receiver_city.clone(),
            street: o.receiver_street.clone(),
            house: o.receiver_house.clone(),
            contact_fio: o.receiver_name.clone(),
            contact_phone: o.receiver_phone.clone(),
            ..Default::default()
        };
        s.push_str(&address("receiverAddress", &receiver));
        s.push_str("</order></orders>");
        let resp = self.call("order2", "createOrder", s).await?;
        Ok(order_result(pick(&resp, &o.number_internal)?))
    }

    /// `order2/getOrderStatus` by our number and pickup date.
    pub async fn order_status(
        &self,
        number_internal: &str,
        date_pickup: &str,
    ) -> Result<CreateResult, CallError> {
        let s = format!(
            "<orderStatus>{}<order>{}{}</order></orderStatus>",
            self.auth(),
            el("orderNumberInternal", number_internal),
            el("datePickup", date_pickup)
        );
        let resp = self.call("order2", "getOrderStatus", s).await?;
        Ok(order_result(pick(&resp, number_internal)?))
    }

    /// `order2/cancelOrder` by our number.
    pub async fn cancel_order(&self, number_internal: &str) -> Result<CancelResult, CallError> {
        let s = format!(
            "<orders>{}<cancel>{}</cancel></orders>",
            self.auth(),
            el("orderNumberInternal", number_internal)
        );
        let resp = self.call("order2", "cancelOrder", s).await?;
        let r = pick(&resp, number_internal)?;
        Ok(CancelResult {
            status: r.str("status").to_string(),
            order_num: r.text_of("orderNum").map(str::to_string),
            error: r.text_of("errorMessage").map(str::to_string),
        })
    }

    fn parse_states(resp: &Node) -> Vec<State> {
        resp.all("return")
            .flat_map(|r| r.all("states"))
            .map(|s| State {
                state: s.str("newState").to_string(),
                at: s.str("transitionTime").to_string(),
                dpd_order_nr: s.str("dpdOrderNr").to_string(),
            })
            .collect()
    }

    /// `tracing/getStatesByClientOrder`: the tracking events of our order number.
    pub async fn states(&self, client_order_nr: &str) -> Result<Vec<State>, CallError> {
        let s = format!(
            "<request>{}{}</request>",
            self.auth(),
            el("clientOrderNr", client_order_nr)
        );
        let resp = self.call("tracing", "getStatesByClientOrder", s).await?;
        Ok(Self::parse_states(&resp))
    }

    /// `tracing/getStatesByDPDOrder`: the tracking events of a DPD order number.
    pub async fn states_by_dpd_order(&self, dpd_order_nr: &str) -> Result<Vec<State>, CallError> {
        let s = format!(
            "<request>{}{}</request>",
            self.auth(),
            el("dpdOrderNr", dpd_order_nr)
        );
        let resp = self.call("tracing", "getStatesByDPDOrder", s).await?;
        Ok(Self::parse_states(&resp))
    }

    /// Poll getOrderStatus until the order leaves `OrderPending` (at most `max_polls` calls,
    /// `interval` apart, the first one at once). Transient failures count as a poll; a
    /// refusal (auth, fault) is returned. Still pending at the end → the last `OrderPending`.
    pub async fn await_number(
        &self,
        number_internal: &str,
        date_pickup: &str,
        max_polls: u32,
        interval: Duration,
    ) -> Result<CreateResult, CallError> {
        let mut last: Result<CreateResult, CallError> = Ok(CreateResult {
            status: DpdStatus::Pending,
            order_num: None,
            error: None,
        });
        for i in 0..max_polls {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            match self.order_status(number_internal, date_pickup).await {
                Ok(r) if r.status == DpdStatus::Pending => last = Ok(r),
                Ok(r) => return Ok(r),
                Err(e) if e.not_applied() => return Err(e),
                Err(e) => last = Err(e),
            }
        }
        last
    }

    /// The whole protocol for one order: createOrder once; on `OrderPending`, on
    /// `OrderDuplicate` (it exists: fetch its number), or on a failure that may have been
    /// applied (timeout, 5xx …), poll getOrderStatus (after `interval`) instead of creating
    /// again. If, after such a failure, DPD does not know the order (`OrderError`), the
    /// original error is returned so the caller may retry the create later (a late arrival
    /// then answers `OrderDuplicate`, which this function resolves).
    pub async fn obtain_number(
        &self,
        o: &DpdOrder,
        max_polls: u32,
        interval: Duration,
    ) -> Result<CreateResult, CallError> {
        let first = match self.create_order(o).await {
            Ok(r) if matches!(r.status, DpdStatus::Pending | DpdStatus::Duplicate) => Ok(r),
            Ok(r) => return Ok(r),
            Err(e) if e.not_applied() => return Err(e),
            Err(e) => Err(e),
        };
        tokio::time::sleep(interval).await;
        let r = self
            .await_number(&o.number_internal, &o.date_pickup, max_polls, interval)
            .await?;
        if r.status != DpdStatus::Error {
            return Ok(r);
        }
        match first {
            // The create may not have arrived: the caller may try it again later.
            Err(e) => Err(e),
            // DPD says it exists but cannot find it by number + date (another pickup date?):
            // report the duplicate, which names the conflict.
            Ok(dup) if dup.status == DpdStatus::Duplicate => Ok(dup),
            Ok(_) => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests;
