//! Validation rules of `POST /v2/orders`: the static ones answered synchronously (HTTP 400),
//! the stricter production-only ones, and the asynchronous ones applied after the process delay.

use serde_json::Value;

/// One error of a request journal: `{code, message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::json!({"code": self.code, "message": self.message})
    }
}

fn empty(path: &str) -> ApiError {
    ApiError::new("v2_field_is_empty", format!("[{path}] is empty"))
}

/// Tariffs the simulator knows (reference §4.2); others fail asynchronously.
pub const TARIFFS: &[i64] = &[
    7, 8, 62, 121, 122, 123, 136, 137, 138, 139, 184, 185, 186, 187, 231, 232, 233, 234, 291, 293,
    294, 295, 366, 368, 376, 378, 480, 481, 482, 483, 484, 485, 486,
];

/// Item `payment.vat_rate` values accepted in production mode (null is accepted too).
pub const VAT_RATES: &[i64] = &[0, 5, 7, 10, 20, 22];

/// Most distinct items in one package.
pub const MAX_ITEMS: usize = 126;

/// Order status codes the control API accepts (reference §4.4).
pub const STATUSES: &[&str] = &[
    "ACCEPTED",
    "CREATED",
    "INVALID",
    "RECEIVED_AT_SHIPMENT_WAREHOUSE",
    "READY_FOR_SHIPMENT_IN_SENDER_CITY",
    "TAKEN_BY_TRANSPORTER_FROM_SENDER_CITY",
    "SENT_TO_TRANSIT_CITY",
    "ACCEPTED_IN_TRANSIT_CITY",
    "ACCEPTED_AT_TRANSIT_WAREHOUSE",
    "READY_FOR_SHIPMENT_IN_TRANSIT_CITY",
    "TAKEN_BY_TRANSPORTER_FROM_TRANSIT_CITY",
    "SENT_TO_RECIPIENT_CITY",
    "ACCEPTED_IN_RECIPIENT_CITY",
    "ACCEPTED_AT_RECIPIENT_CITY_WAREHOUSE",
    "ACCEPTED_AT_PICK_UP_POINT",
    "TAKEN_BY_COURIER",
    "DELIVERED",
    "NOT_DELIVERED",
    "REMOVED",
    "RETURNED_TO_SENDER_CITY_WAREHOUSE",
    "RETURNED_TO_TRANSIT_WAREHOUSE",
    "RETURNED_TO_RECIPIENT_CITY_WAREHOUSE",
    "SENT_TO_SENDER_CITY",
    "ACCEPTED_IN_SENDER_CITY",
    "POSTOMAT_POSTED",
    "POSTOMAT_SEIZED",
    "POSTOMAT_RECEIVED",
];

/// The Russian name CDEK gives a status.
pub fn status_name(code: &str) -> &'static str {
    match code {
        "ACCEPTED" => "Принят",
        "CREATED" => "Создан",
        "INVALID" => "Некорректный заказ",
        "REMOVED" => "Удален",
        "RECEIVED_AT_SHIPMENT_WAREHOUSE" => "Принят на склад отправителя",
        "ACCEPTED_AT_PICK_UP_POINT" => "Принят на склад до востребования",
        "TAKEN_BY_COURIER" => "Выдан на доставку",
        "DELIVERED" => "Вручен",
        "NOT_DELIVERED" => "Не вручен",
        _ => "В пути",
    }
}

fn missing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `phones` as CDEK tolerates it: an array or one object.
pub fn phones(recipient: &Value) -> Vec<Value> {
    match &recipient["phones"] {
        Value::Array(a) => a.clone(),
        v @ Value::Object(_) => vec![v.clone()],
        _ => Vec::new(),
    }
}

/// Static validation (both modes): every error found, empty = passes.
pub fn check_static(b: &Value) -> Vec<ApiError> {
    let mut e = Vec::new();
    if !b.is_object() {
        e.push(ApiError::new(
            "v2_bad_request",
            "the body is not a JSON object",
        ));
        return e;
    }
    if missing(&b["tariff_code"]) {
        e.push(empty("tariff_code"));
    }
    let r = &b["recipient"];
    if missing(r) {
        e.push(empty("recipient"));
    } else {
        if missing(&r["name"]) {
            e.push(empty("recipient.name"));
        }
        let ph = phones(r);
        if ph.is_empty() {
            e.push(empty("recipient.phones"));
        }
        for (i, p) in ph.iter().enumerate() {
            if missing(&p["number"]) {
                e.push(empty(&format!("recipient.phones[{i}].number")));
            }
        }
    }
    let from = !missing(&b["from_location"]);
    let sp = !missing(&b["shipment_point"]);
    match (from, sp) {
        (false, false) => e.push(ApiError::new(
            "v2_order_location_from_and_shipment_point_empty",
            "[from_location] and [shipment_point] are empty",
        )),
        (true, true) => e.push(ApiError::new(
            "v2_shipment_address_multivalued",
            "only one of [from_location] and [shipment_point] may be given",
        )),
        _ => {}
    }
    let to = !missing(&b["to_location"]);
    let dp = !missing(&b["delivery_point"]);
    match (to, dp) {
        (false, false) => e.push(ApiError::new(
            "v2_order_location_to_and_delivery_point_empty",
            "[to_location] and [delivery_point] are empty",
        )),
        (true, true) => e.push(ApiError::new(
            "v2_delivery_address_multivalued",
            "only one of [to_location] and [delivery_point] may be given",
        )),
        _ => {}
    }
    let eshop = b["type"].as_i64().unwrap_or(1) == 1;
    let Some(packages) = b["packages"].as_array().filter(|a| !a.is_empty()) else {
        e.push(empty("packages"));
        return e;
    };
    for (i, p) in packages.iter().enumerate() {
        for f in ["number", "weight"] {
            if missing(&p[f]) {
                e.push(empty(&format!("packages[{i}].{f}")));
            }
        }
        let items = p["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() && eshop {
            e.push(empty(&format!("packages[{i}].items")));
        }
        if items.len() > MAX_ITEMS {
            e.push(ApiError::new(
                "v2_number_items_is_more_126",
                format!("[packages[{i}].items] has more than {MAX_ITEMS} positions"),
            ));
        }
        for (j, it) in items.iter().enumerate() {
            for f in ["name", "ware_key", "payment", "cost", "weight", "amount"] {
                if missing(&it[f]) {
                    e.push(empty(&format!("packages[{i}].items[{j}].{f}")));
                }
            }
        }
    }
    e
}

/// The stricter rules of production mode (the public test server does not check them).
pub fn check_production(b: &Value) -> Vec<ApiError> {
    let mut e = Vec::new();
    for (i, p) in phones(&b["recipient"]).iter().enumerate() {
        let n = p["number"].as_str().unwrap_or("");
        let digits = n.strip_prefix("+7").unwrap_or("");
        if !(digits.len() == 10 && digits.bytes().all(|c| c.is_ascii_digit())) {
            e.push(ApiError::new(
                "v2_invalid_format",
                format!("[recipient.phones[{i}].number] must be +7 and 10 digits, got {n:?}"),
            ));
        }
    }
    if let Some(n) = b["number"].as_str() {
        if n.chars().count() > 40 || !n.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            e.push(ApiError::new(
                "v2_invalid_format",
                "[number] must be at most 40 ASCII characters",
            ));
        }
    }
    for (i, p) in b["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if p["weight"].as_f64().unwrap_or(0.0) >= 100.0 {
            for f in ["length", "width", "height"] {
                if missing(&p[f]) {
                    e.push(empty(&format!("packages[{i}].{f}")));
                }
            }
        }
        for (j, it) in p["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let vat = &it["payment"]["vat_rate"];
            let ok = match vat {
                Value::Null => true,
                v => v.as_i64().is_some_and(|r| VAT_RATES.contains(&r)),
            };
            if !ok {
                e.push(ApiError::new(
                    "v2_invalid_value_type",
                    format!(
                        "[packages[{i}].items[{j}].payment.vat_rate] must be one of 0, 5, 7, 10, 20, 22 or null, got {vat}"
                    ),
                ));
            }
        }
    }
    e
}

/// A location code the simulator does not know: 0 or above 100 000.
pub fn unknown_city(code: i64) -> bool {
    code <= 0 || code > 100_000
}

/// The rules checked in the background (route and tariff).
pub fn check_async(b: &Value) -> Vec<ApiError> {
    let mut e = Vec::new();
    if let Some(c) = b["from_location"]["code"].as_i64() {
        if unknown_city(c) {
            e.push(ApiError::new(
                "v2_sender_location_not_recognized",
                format!("sender city code {c} is not recognized"),
            ));
        }
    }
    if let Some(c) = b["to_location"]["code"].as_i64() {
        if unknown_city(c) {
            e.push(ApiError::new(
                "v2_recipient_location_not_recognized",
                format!("recipient city code {c} is not recognized"),
            ));
        }
    }
    match b["tariff_code"].as_i64() {
        Some(t) if TARIFFS.contains(&t) => {}
        t => e.push(ApiError::new(
            "v2_tariff_not_available",
            format!(
                "tariff {} is not available for this route",
                t.map_or_else(|| b["tariff_code"].to_string(), |t| t.to_string())
            ),
        )),
    }
    e
}

/// `delivery_mode` from the shape of the order (1 door-door … 4 warehouse-warehouse).
pub fn delivery_mode(b: &Value) -> &'static str {
    let from_door = !missing(&b["from_location"]);
    let to_door = !missing(&b["to_location"]);
    match (from_door, to_door) {
        (true, true) => "1",
        (true, false) => "2",
        (false, true) => "3",
        (false, false) => "4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> Value {
        json!({ "type": 1, "number": "ORD-1001", "tariff_code": 137,
          "recipient": { "name": "Иван Иванов", "phones": [ { "number": "+79001234567" } ] },
          "from_location": { "code": 44, "address": "ул. Ленина, 1" },
          "to_location": { "code": 137, "address": "пр. Мира, 5, кв. 7" },
          "packages": [ { "number": "1", "weight": 1200, "length": 30, "width": 20, "height": 10,
            "items": [ { "name": "Кружка", "ware_key": "SKU-1", "payment": { "value": 0 }, "cost": 500, "weight": 600, "amount": 2 } ] } ] })
    }

    fn codes(e: &[ApiError]) -> Vec<&str> {
        e.iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn the_reference_example_passes_every_rule() {
        let o = order();
        assert_eq!(check_static(&o), vec![]);
        assert_eq!(check_production(&o), vec![]);
        assert_eq!(check_async(&o), vec![]);
        assert_eq!(delivery_mode(&o), "1");
    }

    #[test]
    fn missing_fields_are_reported_with_their_path() {
        let mut o = order();
        o.as_object_mut().unwrap().remove("tariff_code");
        o["recipient"]["name"] = json!("");
        o["packages"][0]["items"][0]
            .as_object_mut()
            .unwrap()
            .remove("ware_key");
        o["packages"][0]["items"][0]
            .as_object_mut()
            .unwrap()
            .remove("amount");
        let e = check_static(&o);
        let msgs: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            msgs,
            vec![
                "[tariff_code] is empty",
                "[recipient.name] is empty",
                "[packages[0].items[0].ware_key] is empty",
                "[packages[0].items[0].amount] is empty",
            ]
        );
        assert!(codes(&e).iter().all(|c| *c == "v2_field_is_empty"));
        let mut o = order();
        o["packages"] = json!([]);
        assert_eq!(codes(&check_static(&o)), vec!["v2_field_is_empty"]);
        let mut o = order();
        o["recipient"]["phones"] = json!([]);
        assert_eq!(check_static(&o)[0].message, "[recipient.phones] is empty");
    }

    #[test]
    fn phones_may_be_one_object() {
        let mut o = order();
        o["recipient"]["phones"] = json!({"number": "+79001234567"});
        assert_eq!(check_static(&o), vec![]);
        assert_eq!(phones(&o["recipient"]).len(), 1);
    }

    #[test]
    fn locations_are_exclusive_and_required() {
        let mut o = order();
        o["shipment_point"] = json!("MSK1");
        o["delivery_point"] = json!("MSK2");
        assert_eq!(
            codes(&check_static(&o)),
            vec![
                "v2_shipment_address_multivalued",
                "v2_delivery_address_multivalued"
            ]
        );
        let mut o = order();
        let m = o.as_object_mut().unwrap();
        m.remove("from_location");
        m.remove("to_location");
        assert_eq!(
            codes(&check_static(&o)),
            vec![
                "v2_order_location_from_and_shipment_point_empty",
                "v2_order_location_to_and_delivery_point_empty"
            ]
        );
        o["shipment_point"] = json!("MSK1");
        o["delivery_point"] = json!("MSK2");
        assert_eq!(check_static(&o), vec![]);
        assert_eq!(delivery_mode(&o), "4");
    }

    #[test]
    fn more_than_126_items_in_a_package_is_refused() {
        let mut o = order();
        let item = o["packages"][0]["items"][0].clone();
        o["packages"][0]["items"] = Value::Array(vec![item.clone(); 126]);
        assert_eq!(check_static(&o), vec![]);
        o["packages"][0]["items"] = Value::Array(vec![item; 127]);
        assert_eq!(
            codes(&check_static(&o)),
            vec!["v2_number_items_is_more_126"]
        );
    }

    #[test]
    fn production_rules_are_stricter() {
        let mut o = order();
        o["recipient"]["phones"] = json!([{"number": "89001234567"}]);
        o["number"] = json!("Заказ-1");
        o["packages"][0].as_object_mut().unwrap().remove("height");
        o["packages"][0]["items"][0]["payment"]["vat_rate"] = json!(18);
        assert_eq!(check_static(&o), vec![], "the test server accepts it");
        assert_eq!(
            codes(&check_production(&o)),
            vec![
                "v2_invalid_format",
                "v2_invalid_format",
                "v2_field_is_empty",
                "v2_invalid_value_type"
            ]
        );
        // Light packages need no dimensions; vat_rate null and 22 are fine.
        let mut o = order();
        o["packages"][0] = json!({"number": "1", "weight": 99, "items": [
            {"name": "x", "ware_key": "a", "payment": {"value": 0, "vat_rate": null}, "cost": 1, "weight": 99, "amount": 1},
            {"name": "y", "ware_key": "b", "payment": {"value": 0, "vat_rate": 22}, "cost": 1, "weight": 1, "amount": 1}]});
        assert_eq!(check_production(&o), vec![]);
        o["number"] = json!("x".repeat(41));
        assert_eq!(codes(&check_production(&o)), vec!["v2_invalid_format"]);
    }

    #[test]
    fn async_rules_catch_unknown_cities_and_tariffs() {
        let mut o = order();
        o["to_location"]["code"] = json!(0);
        o["from_location"]["code"] = json!(100_001);
        o["tariff_code"] = json!(999);
        assert_eq!(
            codes(&check_async(&o)),
            vec![
                "v2_sender_location_not_recognized",
                "v2_recipient_location_not_recognized",
                "v2_tariff_not_available"
            ]
        );
        let mut o = order();
        o["to_location"]["code"] = json!(100_000);
        o["tariff_code"] = json!(368);
        assert_eq!(check_async(&o), vec![]);
    }
}
