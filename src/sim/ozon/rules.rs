//! Pure rules of the simulated Ozon API: id parsing, price discount gaps, batch caps, cooldowns,
//! sliding windows and the posting state machine. No I/O, no clock (times are passed in).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Max product×warehouse pairs per `/v2/products/stocks` call.
pub const STOCKS_MAX_PAIRS: usize = 100;
/// Max entries per `/v1/product/import/prices` call.
pub const PRICES_MAX_ITEMS: usize = 1000;
/// Max items per `/v3/product/import` call.
pub const IMPORT_MAX_ITEMS: usize = 100;
/// Max page size / id list of product lists.
pub const LIST_MAX: usize = 1000;
/// Max posting numbers per label call.
pub const LABEL_MAX: usize = 20;
/// A product×warehouse pair may be updated once per this long.
pub const STOCK_COOLDOWN: Duration = Duration::from_secs(30);
/// Stock must be below this.
pub const STOCK_MAX: i64 = 1_000_000;
/// Price updates per product per hour.
pub const PRICE_UPDATES_PER_HOUR: usize = 10;
/// Global requests per second per Client-Id.
pub const GLOBAL_RPS: usize = 50;
/// `/v2/products/stocks` requests per minute per Client-Id.
pub const STOCKS_PER_MINUTE: usize = 80;
/// Allowed VAT values of a card.
pub const VATS: [&str; 5] = ["0", "0.05", "0.07", "0.1", "0.2"];

/// An int64 id sent as a JSON number or a JSON string (protobuf JSON mapping).
pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A decimal sent as a string ("1448.50") or a number.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

/// A non-empty string field.
pub fn as_str(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// Validates a new price against the strike-through price (`old_price`, 0 = none).
/// Returns the Ozon error code, or None when the pair is acceptable.
pub fn price_error(price: f64, old_price: f64) -> Option<&'static str> {
    if price < 0.0 || old_price < 0.0 {
        return Some("price_negative");
    }
    if old_price <= 0.0 {
        return None;
    }
    let gap = old_price - price;
    if gap / old_price >= 0.9 {
        return Some("discount_too_big");
    }
    if price < 400.0 {
        if gap < 20.0 {
            return Some("discount_for_low_price_is_too_small");
        }
    } else if price <= 10_000.0 {
        if gap / old_price < 0.05 {
            return Some("discount_for_average_price_is_too_small");
        }
    } else if gap < 500.0 {
        return Some("discount_for_top_price_is_too_small");
    }
    None
}

/// Human text for a price error code.
pub fn price_error_message(code: &str) -> &'static str {
    match code {
        "price_negative" => "Price must not be negative",
        "discount_too_big" => "The discount must be less than 90%",
        "discount_for_low_price_is_too_small" => {
            "For a price below 400 RUB the difference to old_price must be at least 20 RUB"
        }
        "discount_for_average_price_is_too_small" => {
            "For a price of 400-10000 RUB the difference to old_price must be at least 5%"
        }
        "discount_for_top_price_is_too_small" => {
            "For a price above 10000 RUB the difference to old_price must be at least 500 RUB"
        }
        _ => "Invalid price",
    }
}

/// True when `last` (the last accepted update of a pair) is less than the cooldown ago.
pub fn in_cooldown(last: Option<Instant>, now: Instant, cooldown: Duration) -> bool {
    last.is_some_and(|t| now.saturating_duration_since(t) < cooldown)
}

/// A sliding-window counter: admits at most `max` events per `window`.
#[derive(Debug, Default, Clone)]
pub struct Window {
    events: VecDeque<Instant>,
}

impl Window {
    /// Drops events older than the window, then admits (and records) the event if there is room.
    pub fn admit(&mut self, now: Instant, window: Duration, max: usize) -> bool {
        while self
            .events
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.events.pop_front();
        }
        if self.events.len() >= max {
            return false;
        }
        self.events.push_back(now);
        true
    }

    /// Events currently in the window (after the last `admit`).
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Every FBS posting status the simulator accepts.
pub const STATUSES: [&str; 15] = [
    "acceptance_in_progress",
    "awaiting_approve",
    "awaiting_packaging",
    "awaiting_registration",
    "awaiting_deliver",
    "arbitration",
    "client_arbitration",
    "delivering",
    "driver_pickup",
    "delivered",
    "cancelled",
    "cancelled_from_split_pending",
    "not_accepted",
    "sent_by_seller",
    "awaiting_verification",
];

/// Statuses the unfulfilled list returns (never delivered/cancelled/in transit).
pub fn is_unfulfilled(status: &str) -> bool {
    matches!(
        status,
        "acceptance_in_progress"
            | "awaiting_approve"
            | "awaiting_packaging"
            | "awaiting_registration"
            | "awaiting_deliver"
            | "awaiting_verification"
            | "arbitration"
            | "client_arbitration"
    )
}

/// The `substatus` reported with a status.
pub fn substatus_for(status: &str) -> &'static str {
    match status {
        "awaiting_packaging" | "awaiting_approve" | "awaiting_verification" => "posting_created",
        "awaiting_registration" => "posting_awaiting_registration",
        "awaiting_deliver" => "posting_registered",
        "driver_pickup" => "posting_driver_pick_up",
        "delivering" | "sent_by_seller" => "posting_in_carriage",
        "delivered" => "posting_delivered",
        "cancelled" | "cancelled_from_split_pending" | "not_accepted" => "posting_canceled",
        "arbitration" | "client_arbitration" => "posting_in_arbitration",
        _ => "posting_created",
    }
}

/// The `posting_*` state used in push notifications.
pub fn push_state_for(status: &str) -> &'static str {
    match status {
        "awaiting_packaging" | "awaiting_approve" | "awaiting_verification" => "posting_created",
        "awaiting_deliver" | "awaiting_registration" => "posting_transferring_to_delivery",
        "driver_pickup" | "delivering" | "sent_by_seller" => "posting_in_carriage",
        "delivered" => "posting_delivered",
        "cancelled" | "cancelled_from_split_pending" | "not_accepted" => "posting_canceled",
        "arbitration" | "client_arbitration" => "posting_in_arbitration",
        _ => "posting_created",
    }
}

/// Why `/v4/posting/fbs/ship` refuses a posting in `status` (None = shippable).
pub fn ship_refusal(status: &str) -> Option<&'static str> {
    match status {
        "awaiting_packaging" => None,
        "cancelled" | "cancelled_from_split_pending" | "not_accepted" => {
            Some("POSTING_ALREADY_CANCELLED")
        }
        "awaiting_deliver"
        | "awaiting_registration"
        | "driver_pickup"
        | "delivering"
        | "delivered"
        | "sent_by_seller" => Some("POSTING_ALREADY_SHIPPED"),
        _ => Some("HAS_INCORRECT_STATUS"),
    }
}

/// Why `/v2/posting/fbs/cancel` refuses a posting in `status` (None = cancellable).
pub fn cancel_refusal(status: &str) -> Option<&'static str> {
    match status {
        "cancelled" | "cancelled_from_split_pending" | "not_accepted" => {
            Some("POSTING_ALREADY_CANCELLED")
        }
        "delivered" | "delivering" | "driver_pickup" | "sent_by_seller" => {
            Some("HAS_INCORRECT_STATUS")
        }
        _ => None,
    }
}

/// Actions offered for a posting in `status`.
pub fn available_actions(status: &str) -> Vec<&'static str> {
    match status {
        "awaiting_packaging" => vec!["ship", "ship_async", "cancel"],
        "awaiting_deliver" => vec![
            "cancel",
            "label_download",
            "label_download_big",
            "label_download_small",
        ],
        "awaiting_approve" | "awaiting_verification" | "acceptance_in_progress" => vec!["cancel"],
        "arbitration" | "client_arbitration" => vec!["awaiting_delivery"],
        _ => vec![],
    }
}

/// Cancel reasons: (id, title, type_id, seller may use it).
pub const CANCEL_REASONS: [(i64, &str, &str, bool); 7] = [
    (352, "Товар закончился у продавца", "seller", true),
    (400, "Остался только бракованный товар", "seller", true),
    (401, "Продавец отклонил арбитраж", "seller", true),
    (402, "Другое (вина продавца)", "seller", true),
    (665, "Покупатель не забрал заказ", "buyer", false),
    (
        666,
        "Возврат из службы доставки: нет доставки в указанный регион",
        "ozon",
        false,
    ),
    (667, "Заказ утерян службой доставки", "ozon", false),
];

/// The reason a seller may cancel with, by id.
pub fn seller_cancel_reason(id: i64) -> Option<&'static str> {
    CANCEL_REASONS
        .iter()
        .find(|r| r.0 == id && r.3)
        .map(|r| r.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_accept_numbers_and_strings() {
        assert_eq!(as_i64(&json!(22142605386000i64)), Some(22142605386000));
        assert_eq!(as_i64(&json!("22142605386000")), Some(22142605386000));
        assert_eq!(as_i64(&json!("x1")), None);
        assert_eq!(as_i64(&json!(null)), None);
        assert_eq!(as_f64(&json!("1448.50")), Some(1448.5));
        assert_eq!(as_f64(&json!(12)), Some(12.0));
        assert_eq!(as_f64(&json!("abc")), None);
    }

    #[test]
    fn discount_gap_rules() {
        // No strike-through price: anything non-negative passes.
        assert_eq!(price_error(100.0, 0.0), None);
        assert_eq!(price_error(-1.0, 0.0), Some("price_negative"));
        // Below 400: at least 20 RUB.
        assert_eq!(
            price_error(300.0, 319.0),
            Some("discount_for_low_price_is_too_small")
        );
        assert_eq!(price_error(300.0, 320.0), None);
        // Old price not above the price at all.
        assert_eq!(
            price_error(300.0, 300.0),
            Some("discount_for_low_price_is_too_small")
        );
        // 400..10000: at least 5 %.
        assert_eq!(
            price_error(1000.0, 1050.0),
            Some("discount_for_average_price_is_too_small")
        );
        assert_eq!(price_error(950.0, 1000.0), None);
        // Above 10000: at least 500 RUB.
        assert_eq!(
            price_error(20000.0, 20499.0),
            Some("discount_for_top_price_is_too_small")
        );
        assert_eq!(price_error(20000.0, 20500.0), None);
        // 90 % and more is too big.
        assert_eq!(price_error(100.0, 1000.0), Some("discount_too_big"));
        assert_eq!(price_error(101.0, 1000.0), None);
    }

    #[test]
    fn cooldown_and_windows() {
        let t0 = Instant::now();
        assert!(!in_cooldown(None, t0, STOCK_COOLDOWN));
        assert!(in_cooldown(
            Some(t0),
            t0 + Duration::from_secs(29),
            STOCK_COOLDOWN
        ));
        assert!(!in_cooldown(
            Some(t0),
            t0 + Duration::from_secs(30),
            STOCK_COOLDOWN
        ));

        let mut w = Window::default();
        let minute = Duration::from_secs(60);
        for i in 0..STOCKS_PER_MINUTE {
            assert!(w.admit(
                t0 + Duration::from_millis(i as u64),
                minute,
                STOCKS_PER_MINUTE
            ));
        }
        assert!(!w.admit(t0 + Duration::from_secs(1), minute, STOCKS_PER_MINUTE));
        assert_eq!(w.len(), STOCKS_PER_MINUTE);
        // A minute after the first events they leave the window.
        assert!(w.admit(
            t0 + Duration::from_millis(60_000),
            minute,
            STOCKS_PER_MINUTE
        ));
    }

    #[test]
    fn posting_state_machine() {
        assert_eq!(ship_refusal("awaiting_packaging"), None);
        assert_eq!(
            ship_refusal("awaiting_deliver"),
            Some("POSTING_ALREADY_SHIPPED")
        );
        assert_eq!(ship_refusal("delivered"), Some("POSTING_ALREADY_SHIPPED"));
        assert_eq!(ship_refusal("cancelled"), Some("POSTING_ALREADY_CANCELLED"));
        assert_eq!(
            ship_refusal("awaiting_approve"),
            Some("HAS_INCORRECT_STATUS")
        );
        assert_eq!(cancel_refusal("awaiting_packaging"), None);
        assert_eq!(cancel_refusal("awaiting_deliver"), None);
        assert_eq!(cancel_refusal("delivered"), Some("HAS_INCORRECT_STATUS"));
        assert_eq!(
            cancel_refusal("cancelled"),
            Some("POSTING_ALREADY_CANCELLED")
        );
        assert!(is_unfulfilled("awaiting_packaging") && is_unfulfilled("awaiting_deliver"));
        assert!(!is_unfulfilled("delivered") && !is_unfulfilled("cancelled"));
        assert_eq!(push_state_for("cancelled"), "posting_canceled");
        assert_eq!(push_state_for("delivered"), "posting_delivered");
        for s in STATUSES {
            // Every status has a substatus in the posting_* vocabulary.
            assert!(substatus_for(s).starts_with("posting_"), "{s}");
        }
        assert!(seller_cancel_reason(352).is_some());
        assert!(seller_cancel_reason(665).is_none());
        assert!(seller_cancel_reason(1).is_none());
    }
}
