//! CDEK as a [`Carrier`]: the delivery order (`POST /v2/orders`, then polled until SUCCESSFUL
//! with `cdek_number` or INVALID with CDEK's errors), its deletion (same async model), the
//! waybill (print form polled until READY, downloaded with the token) and the status.
//!
//! Idempotency: the create step remembers that it sent the order (`create_sent`); every later
//! try first looks the order up by our number (`GET /v2/orders?im_number=`), so a create whose
//! answer was lost never makes a second CDEK order.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::client::{order_state, CallError, CdekClient, RequestState};
use crate::config::CdekConfig;
use crate::connectors::shipping::{state, Carrier, Op, Parcel, Shipment, Step, Update};
use crate::relay::OutcomeKind;

const POLL: Duration = Duration::from_secs(1);

pub struct Cdek {
    pub client: Arc<CdekClient>,
    pub cfg: CdekConfig,
}

/// CDEK's status names for people and 1C (the codes CDEK sends, the names it shows).
pub fn status_name(code: &str) -> &str {
    match code {
        "ACCEPTED" => "Принят",
        "CREATED" => "Создан",
        "INVALID" => "Некорректный заказ",
        "RECEIVED_AT_SHIPMENT_WAREHOUSE" => "Принят на склад отправителя",
        "READY_FOR_SHIPMENT_IN_SENDER_CITY" => "Выдан на отправку в г. отправителе",
        "TAKEN_BY_TRANSPORTER_FROM_SENDER_CITY" => "Сдан перевозчику в г. отправителе",
        "SENT_TO_TRANSIT_CITY" => "Отправлен в г. транзит",
        "SENT_TO_RECIPIENT_CITY" => "Отправлен в г. получатель",
        "ACCEPTED_IN_RECIPIENT_CITY" => "Встречен в г. получателе",
        "ACCEPTED_AT_RECIPIENT_CITY_WAREHOUSE" => "Принят на склад доставки",
        "ACCEPTED_AT_PICK_UP_POINT" => "Принят на склад до востребования",
        "TAKEN_BY_COURIER" => "Выдан на доставку",
        "DELIVERED" => "Вручен",
        "NOT_DELIVERED" => "Не вручен",
        "REMOVED" => "Удален",
        _ => "В пути",
    }
}

fn errors_text(errs: &[super::client::ApiError]) -> String {
    errs.iter()
        .map(|e| format!("{}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Cdek {
    /// The `POST /v2/orders` body of a parcel.
    pub fn order_body(&self, p: &Parcel) -> Value {
        let c = &self.cfg;
        let mut b = json!({
            "type": 1,
            "number": p.order_number,
            "tariff_code": if p.pickup_point.is_some() { c.tariff_code_pickup_point } else { c.tariff_code },
            "recipient": {
                "name": p.recipient_name,
                "phones": [{"number": p.phone}],
            },
            "packages": [{
                "number": "1",
                "weight": p.weight_g,
                "length": c.default_length_cm,
                "width": c.default_width_cm,
                "height": c.default_height_cm,
                "items": p.items.iter().map(|i| json!({
                    "name": i.name,
                    "ware_key": i.article,
                    "payment": {"value": if p.cod > 0.0 && c.cod { i.price } else { 0.0 }},
                    "cost": i.price,
                    "weight": i.weight_g,
                    "amount": i.quantity,
                })).collect::<Vec<_>>(),
            }],
        });
        if let Some(e) = &p.email {
            b["recipient"]["email"] = json!(e);
        }
        if let Some(cm) = &p.comment {
            b["comment"] = json!(cm.chars().take(255).collect::<String>());
        }
        match (&c.shipment_point, &c.from_location) {
            (Some(sp), _) => b["shipment_point"] = json!(sp),
            (None, Some(from)) => {
                b["from_location"] = match from.trim().parse::<i64>() {
                    Ok(code) => json!({"code": code}),
                    Err(_) => json!({"address": from}),
                }
            }
            (None, None) => {}
        }
        if let Some(pvz) = &p.pickup_point {
            b["delivery_point"] = json!(pvz);
        } else {
            let mut to = json!({});
            if let Some(code) = p.city_code {
                to["code"] = json!(code);
            }
            if let Some(city) = &p.city {
                to["city"] = json!(city);
            }
            if let Some(pc) = &p.postal_code {
                to["postal_code"] = json!(pc);
            }
            if let Some(a) = &p.address {
                to["address"] = json!(a);
            }
            b["to_location"] = to;
        }
        if c.sender_name.is_some() || c.sender_phone.is_some() {
            b["sender"] = json!({
                "name": c.sender_name.clone().unwrap_or_default(),
                "phones": c.sender_phone.iter().map(|p| json!({"number": p})).collect::<Vec<_>>(),
            });
        }
        b
    }

    /// Where a created order stands (GET by uuid).
    async fn poll_create(&self, uuid: &str) -> Step {
        let v = match self.client.get_order(uuid).await {
            Ok(v) => v,
            Err(e) => return Step::fail(e.outcome()),
        };
        let st = order_state(&v);
        match st.request_state {
            RequestState::Accepted | RequestState::Waiting => {
                Step::later(Update::default(), POLL, "CDEK is processing the order")
            }
            // Refused: a retry (after the order was fixed) must create a new CDEK order.
            RequestState::Invalid(errs) => Step {
                update: Update {
                    carrier_ref: Some(String::new()),
                    data: Some(json!({"create_sent": false})),
                    ..Default::default()
                },
                outcome: OutcomeKind::Dead {
                    error: errors_text(&errs),
                },
            },
            RequestState::Successful => match st.cdek_number {
                None => Step::later(Update::default(), POLL, "no CDEK number yet"),
                Some(n) => {
                    let code = st.status_code.unwrap_or_else(|| "CREATED".into());
                    Step::done(Update {
                        state: Some(state::REGISTERED),
                        carrier_number: Some(n.clone()),
                        tracking_number: Some(n.clone()),
                        status_name: Some(status_name(&code).to_string()),
                        status_code: Some(code),
                        error: Some(None),
                        note: Some(format!("CDEK registered the order: {n}")),
                        ..Default::default()
                    })
                }
            },
        }
    }
}

impl Carrier for Cdek {
    fn name(&self) -> &'static str {
        "cdek"
    }
    fn title(&self) -> &'static str {
        "СДЭК"
    }
    fn kind(&self, op: Op) -> &'static str {
        match op {
            Op::Create => "cdek.create",
            Op::Delete => "cdek.delete",
            Op::Waybill => "cdek.waybill",
            Op::Track => "cdek.track",
        }
    }
    fn methods(&self) -> Vec<String> {
        self.cfg.methods.clone()
    }
    fn default_weight_g(&self) -> Option<u64> {
        self.cfg.default_weight_g
    }
    fn has_waybill(&self) -> bool {
        true
    }

    fn create<'a>(&'a self, s: &'a Shipment, p: &'a Parcel) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            if let Some(uuid) = s.carrier_ref.as_ref().filter(|u| !u.is_empty()) {
                return self.poll_create(uuid).await;
            }
            if s.get("create_sent") == json!(true) {
                // An earlier try may have created it: look it up by our number first.
                match self.client.find_by_im_number(&p.order_number).await {
                    Ok(Some(v)) => {
                        let uuid = v["entity"]["uuid"].as_str().unwrap_or("").to_string();
                        return Step::later(
                            Update {
                                carrier_ref: Some(uuid.clone()),
                                note: Some(format!(
                                    "found the CDEK order {uuid} of an earlier try (no second order)"
                                )),
                                ..Default::default()
                            },
                            Duration::ZERO,
                            "found the CDEK order by our number",
                        );
                    }
                    Ok(None) => {}
                    Err(e) => return Step::fail(e.outcome()),
                }
            }
            let body = self.order_body(p);
            // Remember the attempt before making it (a crash or a lost answer leads to a lookup).
            let mark = Update {
                data: Some(json!({"create_sent": true})),
                ..Default::default()
            };
            match self.client.create_order(&body).await {
                Ok(uuid) => Step::later(
                    Update {
                        carrier_ref: Some(uuid.clone()),
                        data: mark.data,
                        note: Some(format!("sent to CDEK (uuid {uuid})")),
                        ..Default::default()
                    },
                    POLL,
                    "CDEK accepted the order for processing",
                ),
                Err(e) => {
                    let outcome = match &e {
                        CallError::Rejected { .. } => OutcomeKind::Dead {
                            error: e.to_string(),
                        },
                        _ => e.outcome(),
                    };
                    Step {
                        update: if e.not_applied() {
                            Update::default()
                        } else {
                            mark
                        },
                        outcome,
                    }
                }
            }
        })
    }

    fn delete<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let Some(uuid) = s.carrier_ref.as_ref().filter(|u| !u.is_empty()) else {
                // Nothing at CDEK: nothing to delete.
                return Step::done(Update {
                    state: Some(state::DELETED),
                    note: Some("no CDEK order existed; marked deleted".into()),
                    ..Default::default()
                });
            };
            if s.get("delete_sent") != json!(true) {
                return match self.client.delete_order(uuid).await {
                    Ok(_) => Step::later(
                        Update {
                            data: Some(json!({"delete_sent": true})),
                            note: Some("deletion sent to CDEK".into()),
                            ..Default::default()
                        },
                        POLL,
                        "CDEK is processing the deletion",
                    ),
                    Err(e) => match &e {
                        CallError::Rejected { .. } => Step::fail(OutcomeKind::Dead {
                            error: e.to_string(),
                        }),
                        _ => Step::fail(e.outcome()),
                    },
                };
            }
            let v = match self.client.get_order(uuid).await {
                Ok(v) => v,
                Err(e) => return Step::fail(e.outcome()),
            };
            match order_state(&v).delete_state {
                None | Some(RequestState::Accepted) | Some(RequestState::Waiting) => {
                    Step::later(Update::default(), POLL, "CDEK is processing the deletion")
                }
                Some(RequestState::Successful) => Step::done(Update {
                    state: Some(state::DELETED),
                    status_code: Some("REMOVED".into()),
                    status_name: Some(status_name("REMOVED").into()),
                    // A later request to delete must send again.
                    data: Some(json!({"delete_sent": false})),
                    note: Some("CDEK deleted the delivery order".into()),
                    ..Default::default()
                }),
                Some(RequestState::Invalid(errs)) => Step {
                    update: Update {
                        data: Some(json!({"delete_sent": false})),
                        ..Default::default()
                    },
                    outcome: OutcomeKind::Dead {
                        error: errors_text(&errs),
                    },
                },
            }
        })
    }

    fn waybill<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let Some(uuid) = s.carrier_ref.as_ref().filter(|u| !u.is_empty()) else {
                return Step::fail(OutcomeKind::Dead {
                    error: "no CDEK order".into(),
                });
            };
            let print = s.get("print_uuid");
            let Some(print) = print.as_str().filter(|p| !p.is_empty()) else {
                return match self.client.print_waybill(uuid).await {
                    Ok(p) => Step::later(
                        Update {
                            data: Some(json!({"print_uuid": p})),
                            ..Default::default()
                        },
                        POLL,
                        "CDEK is making the waybill",
                    ),
                    Err(e) => Step::fail(e.outcome()),
                };
            };
            let v = match self.client.get_print(print).await {
                Ok(v) => v,
                Err(e) => return Step::fail(e.outcome()),
            };
            let code = v["entity"]["statuses"]
                .as_array()
                .and_then(|a| a.last())
                .and_then(|x| x["code"].as_str())
                .unwrap_or("")
                .to_string();
            let url = v["entity"]["url"].as_str().unwrap_or("").to_string();
            match code.as_str() {
                "READY" if !url.is_empty() => match self.client.download(&url).await {
                    Ok(pdf) if pdf.starts_with(b"%PDF") => Step::done(Update {
                        waybill_pdf: Some(pdf),
                        note: Some("CDEK waybill stored".into()),
                        ..Default::default()
                    }),
                    Ok(_) => Step::fail(OutcomeKind::Retry {
                        error: "the waybill is not a PDF".into(),
                        after: None,
                    }),
                    Err(e) => Step::fail(e.outcome()),
                },
                "INVALID" | "REMOVED" => Step {
                    // Expired or refused: ask for a new one.
                    update: Update {
                        data: Some(json!({"print_uuid": ""})),
                        ..Default::default()
                    },
                    outcome: OutcomeKind::Retry {
                        error: format!("the waybill print form is {code}"),
                        after: None,
                    },
                },
                _ => Step::later(Update::default(), POLL, "the waybill is not ready yet"),
            }
        })
    }

    fn track<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let Some(uuid) = s.carrier_ref.as_ref().filter(|u| !u.is_empty()) else {
                return Step::done(Update::default());
            };
            match self.client.get_order(uuid).await {
                Ok(v) => {
                    let code = order_state(&v).status_code;
                    Step::done(match code {
                        Some(c) if Some(&c) != s.status_code.as_ref() => Update {
                            status_name: Some(status_name(&c).to_string()),
                            note: Some(format!("CDEK status: {c}")),
                            status_code: Some(c),
                            ..Default::default()
                        },
                        _ => Update::default(),
                    })
                }
                Err(e) => Step::fail(e.outcome()),
            }
        })
    }
}

/// Outbox kind of the webhook subscription (`POST /v2/webhooks`).
pub const KIND_WEBHOOK: &str = "cdek.webhook";

/// Subscribes obmen's `/cdek/webhook` to CDEK's ORDER_STATUS (once per URL).
pub struct SubscribeHandler {
    pub client: Arc<CdekClient>,
}

impl crate::relay::Handler for SubscribeHandler {
    fn target(&self) -> &'static str {
        "cdek"
    }
    fn kind(&self) -> &'static str {
        KIND_WEBHOOK
    }
    fn batch(&self) -> usize {
        1
    }
    fn deliver(
        &self,
        batch: Vec<crate::relay::Message>,
    ) -> BoxFuture<'_, Vec<crate::relay::Outcome>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in batch {
                let url = m.payload["url"].as_str().unwrap_or("").to_string();
                let kind = m.payload["type"]
                    .as_str()
                    .unwrap_or("ORDER_STATUS")
                    .to_string();
                out.push(match self.client.subscribe_webhook(&url, &kind).await {
                    Ok(uuid) => crate::relay::Outcome::done(m.id, None, Some(uuid)),
                    Err(e) => crate::relay::Outcome::with_kind(m.id, None, e.outcome()),
                });
            }
            out
        })
    }
}

/// The order uuid of an ORDER_STATUS webhook (its status is read back from CDEK, not taken
/// from the unsigned body).
pub fn webhook_order(v: &Value) -> Option<String> {
    if v["type"] != "ORDER_STATUS" {
        return None;
    }
    v["uuid"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(String::from)
}
