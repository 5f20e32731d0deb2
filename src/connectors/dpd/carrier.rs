//! DPD as a [`Carrier`]: the order by `createOrder` (`OrderPending` → `getOrderStatus` until
//! `OK` with `orderNum`, the tracking number), never created twice: once a create was sent, every
//! later step asks `getOrderStatus` by our number instead (after a timeout too); only DPD's "not
//! found" lets it create again. Deletion by `cancelOrder`; status by `getStatesByClientOrder`.
//! DPD labels are not fetched (no waybill step).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::client::{CallError, CreateResult, DpdAddress, DpdClient, DpdOrder, DpdStatus};
use crate::config::DpdConfig;
use crate::connectors::shipping::{state, Carrier, Op, Parcel, Shipment, Step, Update};
use crate::relay::OutcomeKind;

const POLL: Duration = Duration::from_secs(1);

pub struct Dpd {
    pub client: Arc<DpdClient>,
    pub cfg: DpdConfig,
}

/// DPD state names for people and 1C.
pub fn state_name(s: &str) -> &str {
    match s {
        "NewOrderByClient" => "Оформлен",
        "NotDone" => "Отменен",
        "OnTerminalPickup" => "Принят на терминале",
        "OnRoad" => "В пути",
        "OnTerminal" => "На терминале",
        "OnTerminalDelivery" => "На терминале доставки",
        "Delivering" => "Выдан на доставку",
        "Delivered" => "Доставлен",
        "Lost" => "Утерян",
        "Problem" => "Проблема",
        "ReturnedFromDelivery" => "Возвращен с доставки",
        "NewOrderByDPD" => "Оформлен DPD",
        _ => "В пути",
    }
}

impl Dpd {
    pub fn order(&self, p: &Parcel, date_pickup: &str) -> DpdOrder {
        let c = &self.cfg;
        let (street, house) = split_house(p.address.as_deref().unwrap_or(""));
        DpdOrder {
            number_internal: p.order_number.chars().take(20).collect(),
            date_pickup: date_pickup.to_string(),
            pickup_time_period: "9-18".into(),
            service_code: c.service_code.clone(),
            service_variant: c.service_variant.clone(),
            weight_kg: (p.weight_g as f64 / 1000.0).max(0.001),
            packages: 1,
            value: Some(p.total),
            cargo_category: "Товары".into(),
            receiver_name: p.recipient_name.clone(),
            receiver_phone: p.phone.clone(),
            receiver_city: p.city.clone().unwrap_or_default(),
            receiver_street: street,
            receiver_house: house,
            sender: DpdAddress {
                name: c.sender_name.clone(),
                country_name: "Россия".into(),
                city: c.sender_city.clone(),
                street: c.sender_street.clone(),
                house: c.sender_house.clone(),
                contact_fio: c.sender_contact.clone(),
                contact_phone: c.sender_phone.clone(),
                terminal_code: None,
            },
        }
    }

    fn registered(r: &CreateResult) -> Step {
        let n = r.order_num.clone().unwrap_or_default();
        Step::done(Update {
            state: Some(state::REGISTERED),
            carrier_number: Some(n.clone()),
            tracking_number: Some(n.clone()),
            status_code: Some("NewOrderByClient".into()),
            status_name: Some(state_name("NewOrderByClient").into()),
            error: Some(None),
            note: Some(format!("DPD registered the order: {n}")),
            ..Default::default()
        })
    }
}

/// "ул. Ленина, д. 5" → ("ул. Ленина", "5"): DPD wants the house apart.
fn split_house(a: &str) -> (String, String) {
    match a.rsplit_once(',') {
        Some((street, house)) => {
            let h = house
                .trim()
                .trim_start_matches("д.")
                .trim_start_matches("дом")
                .trim();
            (street.trim().to_string(), h.to_string())
        }
        None => (a.trim().to_string(), "-".into()),
    }
}

impl Carrier for Dpd {
    fn name(&self) -> &'static str {
        "dpd"
    }
    fn title(&self) -> &'static str {
        "DPD"
    }
    fn kind(&self, op: Op) -> &'static str {
        match op {
            Op::Create => "dpd.create",
            Op::Delete => "dpd.delete",
            Op::Waybill => "dpd.waybill",
            Op::Track => "dpd.track",
        }
    }
    fn methods(&self) -> Vec<String> {
        self.cfg.methods.clone()
    }
    fn default_weight_g(&self) -> Option<u64> {
        self.cfg.default_weight_g
    }
    fn has_waybill(&self) -> bool {
        false
    }

    fn create<'a>(&'a self, s: &'a Shipment, p: &'a Parcel) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let stored = s.get("date_pickup");
            let date = match stored.as_str() {
                Some(d) if !d.is_empty() => d.to_string(),
                _ => (chrono::Local::now().date_naive()
                    + chrono::Duration::days(self.cfg.pickup_after_days.max(0)))
                .format("%Y-%m-%d")
                .to_string(),
            };
            let number: String = p.order_number.chars().take(20).collect();
            if s.get("create_sent") == json!(true) {
                // Sent before (maybe its answer was lost): ask, never create blindly again.
                return match self.client.order_status(&number, &date).await {
                    Ok(r) => match r.status {
                        DpdStatus::Ok => Dpd::registered(&r),
                        DpdStatus::Pending => {
                            Step::later(Update::default(), POLL, "DPD: OrderPending")
                        }
                        DpdStatus::Error
                            if r.error
                                .as_deref()
                                .unwrap_or("")
                                .to_lowercase()
                                .contains("not found") =>
                        {
                            // It never arrived: send it again.
                            Step {
                                update: Update {
                                    data: Some(json!({"create_sent": false})),
                                    ..Default::default()
                                },
                                outcome: OutcomeKind::Retry {
                                    error: "DPD does not know the order: sending it again".into(),
                                    after: Some(Duration::ZERO),
                                },
                            }
                        }
                        other => Step::fail(OutcomeKind::Dead {
                            error: format!(
                                "DPD: {} {}",
                                other.as_str(),
                                r.error.unwrap_or_default()
                            ),
                        }),
                    },
                    Err(e) => Step::fail(e.outcome()),
                };
            }
            let mark = Update {
                carrier_ref: Some(number.clone()),
                data: Some(json!({"create_sent": true, "date_pickup": date})),
                ..Default::default()
            };
            match self.client.create_order(&self.order(p, &date)).await {
                Ok(r) => match r.status {
                    DpdStatus::Ok => {
                        let mut st = Dpd::registered(&r);
                        st.update.carrier_ref = mark.carrier_ref;
                        st.update.data = mark.data;
                        st
                    }
                    DpdStatus::Pending | DpdStatus::Duplicate => Step::later(
                        Update {
                            note: Some(format!("sent to DPD: {}", r.status.as_str())),
                            ..mark
                        },
                        POLL,
                        "DPD: OrderPending",
                    ),
                    other => Step::fail(OutcomeKind::Dead {
                        error: format!("DPD: {} {}", other.as_str(), r.error.unwrap_or_default()),
                    }),
                },
                Err(e) => Step {
                    update: if e.not_applied() {
                        Update::default()
                    } else {
                        mark
                    },
                    outcome: match e {
                        CallError::Rejected { .. } | CallError::Fault { .. } => OutcomeKind::Dead {
                            error: e.to_string(),
                        },
                        _ => e.outcome(),
                    },
                },
            }
        })
    }

    fn delete<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let Some(number) = &s.carrier_ref else {
                return Step::done(Update {
                    state: Some(state::DELETED),
                    note: Some("no DPD order existed; marked deleted".into()),
                    ..Default::default()
                });
            };
            match self.client.cancel_order(number).await {
                Ok(r) if r.status == "Canceled" || r.status == "CanceledPreviously" => {
                    Step::done(Update {
                        state: Some(state::DELETED),
                        note: Some(format!("DPD cancelled the order: {}", r.status)),
                        ..Default::default()
                    })
                }
                Ok(r) => Step::fail(OutcomeKind::Dead {
                    error: format!("DPD: {} {}", r.status, r.error.unwrap_or_default()),
                }),
                Err(e) => Step::fail(e.outcome()),
            }
        })
    }

    fn waybill<'a>(&'a self, _s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move { Step::done(Update::default()) })
    }

    fn track<'a>(&'a self, s: &'a Shipment) -> BoxFuture<'a, Step> {
        Box::pin(async move {
            let Some(number) = &s.carrier_ref else {
                return Step::done(Update::default());
            };
            match self.client.states(number).await {
                Ok(states) => Step::done(match states.last() {
                    Some(last) if Some(&last.state) != s.status_code.as_ref() => Update {
                        status_name: Some(state_name(&last.state).to_string()),
                        note: Some(format!("DPD state: {}", last.state)),
                        status_code: Some(last.state.clone()),
                        ..Default::default()
                    },
                    _ => Update::default(),
                }),
                Err(e) => Step::fail(e.outcome()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn house_apart_from_street() {
        assert_eq!(
            split_house("ул. Ленина, д. 5"),
            ("ул. Ленина".to_string(), "5".to_string())
        );
        assert_eq!(
            split_house("Тверская"),
            ("Тверская".to_string(), "-".to_string())
        );
    }
}
