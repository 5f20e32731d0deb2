//! The order model: amounts, statuses and the state machine, the intake shape (the REST
//! contract) and the stored shape.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::i18n::Lang;

/// Where a change came from (the timeline's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[serde(rename = "1c")]
    OneC,
    Api,
    Ozon,
    Courier,
    Dashboard,
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::OneC => "1c",
            Source::Api => "api",
            Source::Ozon => "ozon",
            Source::Courier => "courier",
            Source::Dashboard => "dashboard",
            Source::System => "system",
        }
    }

    /// Changes from 1C itself never trigger a re-send to 1C.
    pub fn resends_to_1c(self) -> bool {
        !matches!(self, Source::OneC | Source::System)
    }
}

/// Our side's status of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Taken in, not yet accepted by 1C.
    New,
    /// 1C has the order (posted or numbered).
    Accepted,
    /// 1C says it is ready to ship.
    ReadyToShip,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::New,
        Status::Accepted,
        Status::ReadyToShip,
        Status::Shipped,
        Status::Delivered,
        Status::Cancelled,
        Status::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Accepted => "accepted",
            Status::ReadyToShip => "ready_to_ship",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// One-letter code in the Bitrix style (`[N] Принят`), used in `Статус заказа` and in the
    /// `mode=info` reference book.
    pub fn code(self) -> &'static str {
        match self {
            Status::New => "N",
            Status::Accepted => "A",
            Status::ReadyToShip => "R",
            Status::Shipped => "S",
            Status::Delivered => "F",
            Status::Cancelled => "C",
            Status::Returned => "V",
        }
    }

    pub fn title(self, lang: Lang) -> &'static str {
        match self {
            Status::New => lang.pick("Принят", "New"),
            Status::Accepted => lang.pick("Подтвержден", "Accepted"),
            Status::ReadyToShip => lang.pick("Готов к отгрузке", "Ready to ship"),
            Status::Shipped => lang.pick("Отгружен", "Shipped"),
            Status::Delivered => lang.pick("Доставлен", "Delivered"),
            Status::Cancelled => lang.pick("Отменен", "Cancelled"),
            Status::Returned => lang.pick("Возврат", "Returned"),
        }
    }

    /// No further business transition (only a return after delivery).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Cancelled | Status::Returned
        )
    }

    /// The state machine: which moves are allowed. Moving to the same status is not a move.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        if self == to {
            return false;
        }
        match (self, to) {
            (Cancelled, _) => false,
            (Returned, _) => false,
            (Delivered, Returned) => true,
            (Delivered, _) => false,
            (_, Returned) => matches!(self, Shipped),
            (_, Cancelled) => true,
            (_, New) => false,
            // Forward only along new → accepted → ready_to_ship → shipped → delivered.
            (from, to) => rank(to) > rank(from),
        }
    }
}

fn rank(s: Status) -> u8 {
    match s {
        Status::New => 0,
        Status::Accepted => 1,
        Status::ReadyToShip => 2,
        Status::Shipped => 3,
        Status::Delivered => 4,
        Status::Cancelled | Status::Returned => 5,
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kopecks (two decimals). Parsed from JSON numbers and from 1C's decimal strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub i64);

/// Thousandths of a unit (three decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Qty(pub i64);

/// Parse a decimal string (`1200`, `231.7400`, `1 200,50`, `-3`) scaled by 10^scale, rounded half
/// away from zero.
pub fn parse_decimal(s: &str, scale: u32) -> Option<i64> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    if t.is_empty() {
        return None;
    }
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f = 10i64.pow(scale);
    v = v.checked_mul(f)?;
    let digits: Vec<u32> = frac.chars().map(|c| c.to_digit(10).unwrap_or(0)).collect();
    let mut part = 0i64;
    for i in 0..scale as usize {
        part = part * 10 + *digits.get(i).unwrap_or(&0) as i64;
    }
    if digits.get(scale as usize).is_some_and(|d| *d >= 5) {
        part += 1;
    }
    v = v.checked_add(part)?;
    Some(if neg { -v } else { v })
}

fn format_decimal(v: i64, scale: u32, keep: u32) -> String {
    let f = 10i64.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let int = a / f as u64;
    let frac = a % f as u64;
    let mut fs = format!("{:0width$}", frac, width = scale as usize);
    while fs.len() > keep as usize && fs.ends_with('0') {
        fs.pop();
    }
    if fs.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{fs}")
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Serialize for Qty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Money {
    pub fn parse(s: &str) -> Option<Money> {
        parse_decimal(s, 2).map(Money)
    }
    pub fn from_f64(v: f64) -> Option<Money> {
        v.is_finite().then(|| Money((v * 100.0).round() as i64))
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Money {
    /// Always two decimals: `1200.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_decimal(self.0, 2, 2))
    }
}

impl Qty {
    pub fn parse(s: &str) -> Option<Qty> {
        parse_decimal(s, 3).map(Qty)
    }
    pub fn from_f64(v: f64) -> Option<Qty> {
        v.is_finite().then(|| Qty((v * 1000.0).round() as i64))
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// price × quantity, rounded to kopecks.
    pub fn times(self, price: Money) -> Money {
        let p = price.0 as i128 * self.0 as i128;
        let r = if p >= 0 {
            (p + 500) / 1000
        } else {
            (p - 500) / 1000
        };
        Money(r as i64)
    }
}

impl fmt::Display for Qty {
    /// Without trailing zeros: `2`, `1.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_decimal(self.0, 3, 0))
    }
}

// --- the intake shape (POST /api/v1/orders) -------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Customer {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// Legal requisites, when the buyer is a company.
    pub inn: Option<String>,
    pub kpp: Option<String>,
    pub legal_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Delivery {
    /// How it is delivered: `cdek`, `dpd`, a marketplace … (chooses the carrier).
    pub method: Option<String>,
    pub address: Option<String>,
    pub cost: Option<f64>,
    /// For couriers: the recipient's city, the carrier's city code, postal code, and a
    /// pickup point (PVZ) code when not delivered to the door.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_point: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Payment {
    pub method: Option<String>,
    pub paid: bool,
    pub date: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LineInput {
    /// 1C Ид of the offer (`guid` or `guid#guid` for a variant). Absent for a free line.
    pub offer_id: Option<String>,
    pub name: Option<String>,
    pub article: Option<String>,
    pub quantity: f64,
    pub price: f64,
    /// Discount for the whole line.
    pub discount: Option<f64>,
    pub vat: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderInput {
    pub channel: String,
    pub external_id: Option<String>,
    pub date: Option<String>,
    pub currency: Option<String>,
    pub customer: Customer,
    pub lines: Vec<LineInput>,
    pub delivery: Option<Delivery>,
    pub payment: Option<Payment>,
    pub comment: Option<String>,
}

/// A validated line, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub offer_id: Option<String>,
    pub article: Option<String>,
    pub name: String,
    pub quantity: Qty,
    pub price: Money,
    pub discount: Money,
    pub vat: Option<String>,
    pub sum: Money,
}

/// The 1C side of an order, as 1C last reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OneCState {
    pub id: Option<String>,
    pub number: Option<String>,
    pub date: Option<String>,
    pub posted: bool,
    pub paid: bool,
    pub payment_number: Option<String>,
    pub payment_date: Option<String>,
    pub shipped: bool,
    pub shipment_number: Option<String>,
    pub shipment_date: Option<String>,
    pub cancelled: bool,
    pub deleted: bool,
    pub status: Option<String>,
}

/// An order with its lines, as stored.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: i32,
    pub number: String,
    pub channel: String,
    pub external_id: Option<String>,
    pub date: String,
    pub currency: String,
    pub total: Money,
    pub status: Status,
    pub customer: Customer,
    pub delivery: Option<Delivery>,
    pub payment: Option<Payment>,
    pub comment: Option<String>,
    /// Extra requisites written to 1C (carrier registration, waybill link …), in order.
    pub requisites: Vec<(String, String)>,
    pub onec: OneCState,
    pub version: i64,
    pub exported_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub lines: Vec<Line>,
}

impl Order {
    pub fn exported_to_1c(&self) -> bool {
        self.exported_version > 0
    }
    pub fn delivery_cost(&self) -> Money {
        self.delivery
            .as_ref()
            .and_then(|d| d.cost)
            .and_then(Money::from_f64)
            .unwrap_or_default()
    }
}

/// Requisite names obmen writes back to 1C for the delivery flow (set by the courier/marketplace
/// connectors through [`super::store::set_requisite`]).
pub mod requisite {
    pub const REGISTERED_BY_CARRIER: &str = "Зарегистрирован перевозчиком";
    pub const DELIVERY_ORDER_DELETED: &str = "Заказ на доставку удален";
    pub const DELIVERY_ORDER_NOT_DELETED: &str = "Заказ на доставку НЕ удален";
    pub const WAYBILL: &str = "Ссылка на накладную";
}

/// Currency as 1C expects it in documents: the first three letters of its name (`руб`).
pub fn currency_for_1c(iso: &str) -> String {
    match iso.trim().to_ascii_uppercase().as_str() {
        "RUB" | "RUR" | "643" | "" => "руб".into(),
        "USD" | "840" => "USD".into(),
        "EUR" | "978" => "EUR".into(),
        "KZT" => "тен".into(),
        "BYN" => "бел".into(),
        other => other.to_string(),
    }
}

/// Currency from 1C (`руб`, `RUB`, `643`) to ISO.
pub fn currency_from_1c(v: &str) -> String {
    let t = v.trim().to_lowercase();
    if t.is_empty() || t.starts_with("руб") || t == "rub" || t == "rur" || t == "643" {
        "RUB".into()
    } else {
        v.trim().to_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_and_print() {
        assert_eq!(Money::parse("231.7400"), Some(Money(23174)));
        assert_eq!(Money::parse("1 200,5"), Some(Money(120050)));
        assert_eq!(Money::parse("0.005"), Some(Money(1)));
        assert_eq!(Money::parse("-3"), Some(Money(-300)));
        assert_eq!(Money::parse(""), None);
        assert_eq!(Money::parse("abc"), None);
        assert_eq!(Money(120000).to_string(), "1200.00");
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(Qty::parse("1.00"), Some(Qty(1000)));
        assert_eq!(Qty(1500).to_string(), "1.5");
        assert_eq!(Qty(2000).to_string(), "2");
        assert_eq!(Qty(1500).times(Money(1001)), Money(1502));
        assert_eq!(Money::from_f64(1200.00), Some(Money(120000)));
    }

    #[test]
    fn state_machine_moves_forward_only() {
        use Status::*;
        assert!(New.can_move_to(Accepted));
        assert!(New.can_move_to(ReadyToShip));
        assert!(Accepted.can_move_to(Cancelled));
        assert!(Shipped.can_move_to(Returned));
        assert!(Delivered.can_move_to(Returned));
        assert!(!Accepted.can_move_to(New));
        assert!(!Shipped.can_move_to(Accepted));
        assert!(!Cancelled.can_move_to(Accepted));
        assert!(!New.can_move_to(Returned));
        assert!(!Delivered.can_move_to(Cancelled));
        assert!(!New.can_move_to(New));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn currency_mapping() {
        assert_eq!(currency_for_1c("RUB"), "руб");
        assert_eq!(currency_from_1c("руб."), "RUB");
        assert_eq!(currency_from_1c("UAH"), "UAH");
    }
}
