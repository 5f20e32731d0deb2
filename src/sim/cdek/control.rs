//! The control API under `/sim/` (no auth): faults, config, status moves, token expiry, orders,
//! stats, reset.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::rules;
use super::state::{Faults, State};
use super::{errors, Out, Sim};

fn ok(v: Value) -> Out {
    Out::Json(200, v)
}

fn bad(msg: impl Into<String>) -> Out {
    errors(400, "v2_bad_request", msg)
}

pub fn handle(sim: &Sim, method: &str, path: &str, body: &[u8]) -> Out {
    let body: Value = if body.iter().all(|b| b.is_ascii_whitespace()) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad(format!("Invalid request body: {e}")),
        }
    };
    let rest = path.trim_start_matches("/sim/");
    let parts: Vec<&str> = rest.split('/').collect();
    sim.with(|st| match (method, parts.as_slice()) {
        ("POST", ["faults"]) => faults(st, &body),
        ("GET", ["faults"]) => ok(faults_json(&st.faults)),
        ("POST", ["config"]) => config(st, &body),
        ("GET", ["config"]) => ok(config_json(st)),
        ("POST", ["orders", uuid, "status"]) => move_order(st, uuid, &body),
        ("GET", ["orders"]) => {
            let mut all: Vec<_> = st.orders.values().collect();
            all.sort_by_key(|o| o.seq);
            ok(json!({"orders": all.iter().map(|o| json!({
                "uuid": o.uuid, "number": o.number, "cdek_number": o.cdek_number,
                "status": o.status(), "request_state": o.create_state(),
            })).collect::<Vec<_>>()}))
        }
        ("POST", ["tokens", "expire"]) => {
            let n = st.tokens.len();
            st.tokens.clear();
            ok(json!({"expired": n}))
        }
        ("GET", ["webhooks"]) => ok(json!({"webhooks": st.webhook_log})),
        ("GET", ["stats"]) => ok(st.stats.json()),
        ("POST", ["reset"]) => {
            st.reset();
            ok(json!({"result": true}))
        }
        _ => errors(404, "v2_bad_request", "Not Found"),
    })
}

fn faults_json(f: &Faults) -> Value {
    json!({
        "rate_429": f.rate_429, "rate_500": f.rate_500, "rate_timeout": f.rate_timeout,
        "rate_garbage": f.rate_garbage,
        "timeout_ms": f.timeout_ms, "apply_before_timeout": f.apply_before_timeout,
        "seed": f.seed, "only": f.only,
    })
}

fn faults(st: &mut State, b: &Value) -> Out {
    let f: Faults = match serde_json::from_value(b.clone()) {
        Ok(f) => f,
        Err(e) => return bad(format!("Invalid request body: {e}")),
    };
    for r in [f.rate_429, f.rate_500, f.rate_timeout, f.rate_garbage] {
        if !(0.0..=1.0).contains(&r) {
            return bad("rates must be between 0 and 1");
        }
    }
    if let Some(seed) = f.seed {
        st.rng = StdRng::seed_from_u64(seed);
    }
    st.faults = f;
    ok(faults_json(&st.faults))
}

fn config_json(st: &State) -> Value {
    let c = &st.cfg;
    json!({
        "client_id": c.client_id, "client_secret": c.client_secret,
        "process_delay_ms": c.process_delay_ms, "print_delay_ms": c.print_delay_ms,
        "token_ttl_secs": c.token_ttl_secs, "print_ttl_secs": c.print_ttl_secs,
        "production": c.production, "public_url": c.public_url,
        "fail_next_create": st.fail_next_create,
    })
}

fn config(st: &mut State, b: &Value) -> Out {
    let c = &mut st.cfg;
    if let Some(v) = b.get("production").and_then(Value::as_bool) {
        c.production = v;
    }
    for (k, slot) in [
        ("process_delay_ms", &mut c.process_delay_ms),
        ("print_delay_ms", &mut c.print_delay_ms),
        ("token_ttl_secs", &mut c.token_ttl_secs),
        ("print_ttl_secs", &mut c.print_ttl_secs),
    ] {
        if let Some(v) = b.get(k).and_then(Value::as_u64) {
            *slot = v;
        }
    }
    if let Some(v) = b.get("client_id").and_then(Value::as_str) {
        c.client_id = v.to_string();
    }
    if let Some(v) = b.get("client_secret").and_then(Value::as_str) {
        c.client_secret = v.to_string();
    }
    if let Some(v) = b.get("fail_next_create") {
        st.fail_next_create = v.as_str().filter(|s| !s.is_empty()).map(String::from);
    }
    ok(config_json(st))
}

fn move_order(st: &mut State, uuid: &str, b: &Value) -> Out {
    let Some(code) = b["code"].as_str() else {
        return bad("code is required");
    };
    if !rules::STATUSES.contains(&code) {
        return bad(format!("unknown status code {code:?}"));
    }
    let Some(o) = st.orders.get(uuid) else {
        return errors(404, "v2_entity_not_found", "Entity is not found");
    };
    if o.cdek_number.is_none() {
        return errors(
            409,
            "v2_entity_invalid",
            format!(
                "the order is not created (status {})",
                o.status().unwrap_or("")
            ),
        );
    }
    st.set_status(uuid, code);
    ok(st.orders[uuid].json())
}
