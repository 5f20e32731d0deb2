//! The SOAP operations of the simulator. Each takes the operation element (already
//! authenticated) and answers the inner XML of `<…Response>`, or a SOAP fault.

use chrono::NaiveDate;

use super::state::{now, Mode, Order, State, TrackState};
use crate::connectors::dpd::xml::{el, Node};

/// What an operation answers.
pub enum Answer {
    /// The children of `<{op}Response>`.
    Ok(String),
    /// A SOAP fault: (faultcode, code, message).
    Fault(&'static str, &'static str, String),
}

fn client_fault(msg: impl Into<String>) -> Answer {
    Answer::Fault("Client", "invalid-request", msg.into())
}

fn order_result(num_internal: &str, order_num: Option<&str>, status: &str, error: &str) -> String {
    let mut s = String::from("<return>");
    s.push_str(&el("orderNumberInternal", num_internal));
    if let Some(n) = order_num {
        s.push_str(&el("orderNum", n));
    }
    s.push_str(&el("status", status));
    if !error.is_empty() {
        s.push_str(&el("errorMessage", error));
    }
    s.push_str("</return>");
    s
}

fn valid_date(s: &str) -> bool {
    s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// Reasons an order is refused (empty = valid).
fn validate(o: &Node, date_pickup: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !valid_date(date_pickup) {
        errs.push(format!(
            "header.datePickup must be a date YYYY-MM-DD, got '{date_pickup}'"
        ));
    }
    let n = o.str("orderNumberInternal");
    if n.is_empty() {
        errs.push("orderNumberInternal is required".into());
    } else if n.chars().count() > 20 {
        errs.push(format!(
            "orderNumberInternal '{n}' is longer than 20 characters"
        ));
    }
    let empty = Node::default();
    let addr = o.child("receiverAddress").unwrap_or(&empty);
    for f in ["name", "city", "street"] {
        if addr.text_of(f).is_none() {
            errs.push(format!("receiverAddress.{f} is required"));
        }
    }
    match o.text_of("cargoWeight").map(|w| w.parse::<f64>()) {
        Some(Ok(w)) if w > 0.0 && w.is_finite() => {}
        Some(_) => errs.push(format!(
            "cargoWeight must be a number > 0, got '{}'",
            o.str("cargoWeight")
        )),
        None => errs.push("cargoWeight is required".into()),
    }
    if o.text_of("serviceCode").is_none() {
        errs.push("serviceCode is required".into());
    }
    errs
}

/// `createOrder{orders{auth, header{datePickup,…}, order*}}` → one `return` per order.
pub fn create_order(st: &mut State, op: &Node) -> Answer {
    let Some(orders) = op.child("orders") else {
        return client_fault("createOrder: <orders> is missing");
    };
    let date_pickup = orders
        .child("header")
        .map(|h| h.str("datePickup").to_string())
        .unwrap_or_default();
    let list: Vec<&Node> = orders.all("order").collect();
    if list.is_empty() {
        return client_fault("createOrder: no <order>");
    }
    let mut out = String::new();
    for o in list {
        let key = o.str("orderNumberInternal").to_string();
        let errs = validate(o, &date_pickup);
        if !errs.is_empty() {
            out.push_str(&order_result(&key, None, "OrderError", &errs.join("; ")));
            continue;
        }
        *st.stats.orders_created.entry(key.clone()).or_default() += 1;
        if let Some(existing) = st.orders.get(&key) {
            st.stats.duplicates += 1;
            let msg = format!("order with number {key} already exists");
            out.push_str(&order_result(
                &key,
                existing.order_num.as_deref(),
                "OrderDuplicate",
                &msg,
            ));
            continue;
        }
        let addr = o.child("receiverAddress").cloned().unwrap_or_default();
        let order = Order {
            order_number_internal: key.clone(),
            date_pickup: date_pickup.clone(),
            service_code: o.str("serviceCode").into(),
            service_variant: o.str("serviceVariant").into(),
            cargo_weight: o.str("cargoWeight").parse().unwrap_or(0.0),
            cargo_num_pack: o.str("cargoNumPack").parse().unwrap_or(1),
            receiver_city: addr.str("city").into(),
            status: "OrderPending".into(),
            order_num: None,
            polls_left: st.cfg.pending_polls,
            states: Vec::new(),
        };
        st.orders.insert(key.clone(), order);
        if st.cfg.mode == Mode::Ok {
            st.assign(&key);
            let num = st.orders[&key].order_num.clone();
            out.push_str(&order_result(&key, num.as_deref(), "OK", ""));
        } else {
            out.push_str(&order_result(&key, None, "OrderPending", ""));
        }
    }
    Answer::Ok(out)
}

/// `getOrderStatus{orderStatus{auth, order*{orderNumberInternal, datePickup}}}`.
pub fn order_status(st: &mut State, op: &Node) -> Answer {
    let Some(req) = op.child("orderStatus") else {
        return client_fault("getOrderStatus: <orderStatus> is missing");
    };
    let list: Vec<&Node> = req.all("order").collect();
    if list.is_empty() {
        return client_fault("getOrderStatus: no <order>");
    }
    let mut out = String::new();
    for o in list {
        let key = o.str("orderNumberInternal").to_string();
        let date = o.text_of("datePickup");
        let found = st
            .orders
            .get(&key)
            .filter(|ord| date.is_none_or(|d| d == ord.date_pickup));
        let Some(ord) = found else {
            let msg = format!("order {key} not found");
            out.push_str(&order_result(&key, None, "OrderError", &msg));
            continue;
        };
        if ord.status == "OrderPending" {
            if ord.polls_left > 0 {
                if let Some(ord) = st.orders.get_mut(&key) {
                    ord.polls_left -= 1;
                }
                out.push_str(&order_result(&key, None, "OrderPending", ""));
                continue;
            }
            st.assign(&key);
        }
        let ord = &st.orders[&key];
        out.push_str(&order_result(
            &key,
            ord.order_num.as_deref(),
            &ord.status,
            "",
        ));
    }
    Answer::Ok(out)
}

/// `cancelOrder{orders{auth, cancel*{orderNumberInternal | orderNum, pin?}}}` → per cancel
/// `return{orderNumberInternal, orderNum, status: Canceled | CanceledPreviously | NotFound}`.
pub fn cancel_order(st: &mut State, op: &Node) -> Answer {
    let Some(req) = op.child("orders") else {
        return client_fault("cancelOrder: <orders> is missing");
    };
    let list: Vec<&Node> = req.all("cancel").collect();
    if list.is_empty() {
        return client_fault("cancelOrder: no <cancel>");
    }
    let mut out = String::new();
    for c in list {
        let by_internal = c.text_of("orderNumberInternal");
        let by_num = c.text_of("orderNum");
        let key = st
            .orders
            .values()
            .find(|o| {
                by_internal == Some(o.order_number_internal.as_str())
                    || (by_num.is_some() && by_num == o.order_num.as_deref())
            })
            .map(|o| o.order_number_internal.clone());
        let Some(key) = key else {
            let shown = by_internal.or(by_num).unwrap_or("");
            out.push_str(&order_result(
                by_internal.unwrap_or(""),
                by_num,
                "NotFound",
                &format!("order {shown} not found"),
            ));
            continue;
        };
        let ord = st.orders.get_mut(&key).expect("found above");
        let status = if ord.status == "OrderCancelled" {
            "CanceledPreviously"
        } else {
            ord.status = "OrderCancelled".into();
            ord.polls_left = 0;
            ord.states.push(TrackState {
                state: "NotDone".into(),
                at: now(),
            });
            "Canceled"
        };
        out.push_str(&order_result(&key, ord.order_num.as_deref(), status, ""));
    }
    Answer::Ok(out)
}

fn states_answer(st: &State, orders: &[&Order]) -> String {
    let mut s = String::from("<return>");
    s.push_str(&el("docId", &(st.next_num + 1000).to_string()));
    s.push_str(&el("docDate", &now()));
    s.push_str(&el("clientNumber", &st.cfg.client_number));
    s.push_str(&el("resultComplete", "true"));
    for o in orders {
        let Some(num) = &o.order_num else { continue };
        for t in &o.states {
            s.push_str("<states>");
            s.push_str(&el("clientOrderNr", &o.order_number_internal));
            s.push_str(&el("dpdOrderNr", num));
            s.push_str(&el("pickupDate", &o.date_pickup));
            s.push_str(&el("newState", &t.state));
            s.push_str(&el("transitionTime", &t.at));
            s.push_str(&el("terminalCity", &o.receiver_city));
            s.push_str("</states>");
        }
    }
    s.push_str("</return>");
    s
}

/// `getStatesByClientOrder{request{auth, clientOrderNr, pickupDate?}}`.
pub fn states_by_client_order(st: &mut State, op: &Node) -> Answer {
    let Some(req) = op.child("request") else {
        return client_fault("getStatesByClientOrder: <request> is missing");
    };
    let Some(nr) = req.text_of("clientOrderNr") else {
        return client_fault("getStatesByClientOrder: clientOrderNr is required");
    };
    let found: Vec<&Order> = st.orders.get(nr).into_iter().collect();
    Answer::Ok(states_answer(st, &found))
}

/// `getStatesByDPDOrder{request{auth, dpdOrderNr, pickupYear?}}`.
pub fn states_by_dpd_order(st: &mut State, op: &Node) -> Answer {
    let Some(req) = op.child("request") else {
        return client_fault("getStatesByDPDOrder: <request> is missing");
    };
    let Some(nr) = req.text_of("dpdOrderNr") else {
        return client_fault("getStatesByDPDOrder: dpdOrderNr is required");
    };
    let found: Vec<&Order> = st
        .orders
        .values()
        .filter(|o| o.order_num.as_deref() == Some(nr))
        .collect();
    Answer::Ok(states_answer(st, &found))
}
