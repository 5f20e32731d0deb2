//! Prometheus metrics: the one registry of obmen. Domain code calls the plain functions here;
//! gauges that mirror the database (outbox depth, orders pending to 1C) are computed at scrape
//! time by [`render`]. Served at `GET /metrics` without authentication (counts only, no data).

use std::sync::OnceLock;

use diesel::prelude::*;
use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::store::Conn;

struct Metrics {
    registry: Registry,
    exchange_requests: IntCounterVec,
    import_bytes: IntCounterVec,
    import_items: IntCounterVec,
    import_duration: HistogramVec,
    api_call_duration: HistogramVec,
    api_call_errors: IntCounterVec,
    outbox: IntGaugeVec,
    orders_pending: IntGauge,
    sqlite_memory: IntGauge,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = Registry::new();
        let exchange_requests = IntCounterVec::new(
            Opts::new(
                "obmen_exchange_requests_total",
                "1C exchange requests by type, mode and answer",
            ),
            &["type", "mode", "answer"],
        )
        .expect("metric");
        let import_bytes = IntCounterVec::new(
            Opts::new(
                "obmen_import_bytes_total",
                "Bytes of CommerceML files imported",
            ),
            &["state"],
        )
        .expect("metric");
        let import_items = IntCounterVec::new(
            Opts::new(
                "obmen_import_items_total",
                "Items read by imports (goods, offers, documents)",
            ),
            &["item"],
        )
        .expect("metric");
        let import_duration = HistogramVec::new(
            HistogramOpts::new(
                "obmen_import_duration_seconds",
                "Duration of import jobs by result",
            )
            .buckets(exponential_buckets(0.01, 4.0, 10).expect("buckets")),
            &["state"],
        )
        .expect("metric");
        let api_call_duration = HistogramVec::new(
            HistogramOpts::new(
                "obmen_api_call_duration_seconds",
                "Latency of calls to external systems by target and endpoint",
            )
            .buckets(exponential_buckets(0.005, 3.0, 10).expect("buckets")),
            &["target", "endpoint"],
        )
        .expect("metric");
        let api_call_errors = IntCounterVec::new(
            Opts::new(
                "obmen_api_call_errors_total",
                "Calls to external systems that did not succeed, by target, endpoint and outcome",
            ),
            &["target", "endpoint", "outcome"],
        )
        .expect("metric");
        let outbox = IntGaugeVec::new(
            Opts::new(
                "obmen_outbox_messages",
                "Outbox messages by target and state",
            ),
            &["target", "state"],
        )
        .expect("metric");
        let orders_pending = IntGauge::new(
            "obmen_orders_pending_1c",
            "Orders whose latest version has not been exported to 1C yet",
        )
        .expect("metric");
        let sqlite_memory = IntGauge::new(
            "obmen_sqlite_memory_bytes",
            "Heap memory SQLite holds in this process: statements, page caches beyond the page slab (SQLite only)",
        )
        .expect("metric");
        for c in [
            Box::new(exchange_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(import_bytes.clone()),
            Box::new(import_items.clone()),
            Box::new(import_duration.clone()),
            Box::new(api_call_duration.clone()),
            Box::new(api_call_errors.clone()),
            Box::new(outbox.clone()),
            Box::new(orders_pending.clone()),
            Box::new(sqlite_memory.clone()),
        ] {
            registry.register(c).expect("register metric");
        }
        Metrics {
            registry,
            exchange_requests,
            import_bytes,
            import_items,
            import_duration,
            api_call_duration,
            api_call_errors,
            outbox,
            orders_pending,
            sqlite_memory,
        }
    })
}

/// A journaled 1C exchange request.
pub fn exchange_request(typ: &str, mode: &str, answer: &str) {
    // The answer's first word only (success, failure, progress …).
    let answer: String = answer
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect();
    metrics()
        .exchange_requests
        .with_label_values(&[
            known(typ, &["catalog", "sale", "get_catalog"]),
            known(
                mode,
                &[
                    "checkauth",
                    "init",
                    "file",
                    "import",
                    "query",
                    "success",
                    "deactivate",
                    "complete",
                ],
            ),
            known(
                &answer,
                &["success", "failure", "progress", "zip=yes", "zip=no"],
            ),
        ])
        .inc();
}

/// A finished import job (`done` or `failed`).
pub fn import_finished(
    state: &str,
    bytes: u64,
    goods: u64,
    offers: u64,
    documents: u64,
    seconds: f64,
) {
    let m = metrics();
    m.import_bytes.with_label_values(&[state]).inc_by(bytes);
    m.import_items.with_label_values(&["goods"]).inc_by(goods);
    m.import_items.with_label_values(&["offers"]).inc_by(offers);
    m.import_items
        .with_label_values(&["documents"])
        .inc_by(documents);
    m.import_duration
        .with_label_values(&[state])
        .observe(seconds);
}

/// A journaled call to an external system.
pub fn api_call(target: &str, endpoint: &str, outcome: &str, duration_ms: i64) {
    let m = metrics();
    let endpoint = endpoint_label(endpoint);
    m.api_call_duration
        .with_label_values(&[target, &endpoint])
        .observe(duration_ms.max(0) as f64 / 1000.0);
    if outcome != "ok" {
        m.api_call_errors
            .with_label_values(&[target, &endpoint, outcome])
            .inc();
    }
}

/// A label from a request: one of the known values, `""` or `other` (labels must stay few even
/// when a client sends anything).
fn known<'a>(s: &'a str, values: &[&str]) -> &'a str {
    if s.is_empty() || values.contains(&s) {
        s
    } else {
        "other"
    }
}

/// An endpoint as a label: its path without the query and with numeric or long segments (ids)
/// replaced, so the label set stays small.
fn endpoint_label(e: &str) -> String {
    let path = e.split('?').next().unwrap_or("");
    path.split('/')
        .map(|seg| {
            if seg.len() > 24 || (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit())) {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The text exposition, with the database gauges refreshed first.
pub fn render(conn: &mut Conn) -> Result<String, crate::store::StoreError> {
    use crate::store::schema::orders;
    let m = metrics();
    let counts = crate::relay::store::counts(conn)?;
    m.outbox.reset();
    // Every state of every target seen, zeros included, so a drained queue reads 0.
    let targets: std::collections::BTreeSet<&str> =
        counts.iter().map(|(t, _, _)| t.as_str()).collect();
    for t in &targets {
        for s in crate::relay::state::ALL {
            m.outbox.with_label_values(&[t, s]).set(0);
        }
    }
    for (t, s, n) in &counts {
        m.outbox.with_label_values(&[t, s]).set(*n);
    }
    let pending: i64 = orders::table
        .filter(orders::exported_version.lt(orders::version))
        .count()
        .get_result(conn)?;
    m.orders_pending.set(pending);
    if !conn.is_pg() {
        // SAFETY: a plain read of SQLite's allocation counter; it takes no argument.
        m.sqlite_memory
            .set(unsafe { libsqlite3_sys::sqlite3_memory_used() });
    }
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut buf)
        .map_err(|e| crate::store::StoreError::Task(format!("metrics: {e}")))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_labels_drop_ids() {
        assert_eq!(
            super::endpoint_label("/v2/orders/123?x=1"),
            "/v2/orders/:id"
        );
        assert_eq!(
            super::endpoint_label("/v3/product/list"),
            "/v3/product/list"
        );
    }
}
