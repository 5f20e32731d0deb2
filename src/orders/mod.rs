//! Orders: the model and state machine, the intake of every channel, the round trip with 1C
//! (`type=sale`: the query document obmen writes, the documents 1C sends back) and the timeline.
//! No transport types here: src/exchange/sale.rs and src/web/orders_api.rs adapt HTTP to it.

pub mod cml_in;
pub mod cml_out;
pub mod info;
pub mod model;
pub mod store;

#[cfg(test)]
mod tests;

use crate::config::StatusMapConfig;
use crate::i18n::Lang;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("line {line}: unknown offer_id {offer_id:?} (no such good or offer in the catalog)")]
    UnknownOffer { line: usize, offer_id: String },
    #[error("line {line}: {message}")]
    Line {
        line: usize,
        offer_id: Option<String>,
        message: String,
    },
    #[error("no order {0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// What a 1C `Статус заказа` value means to obmen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// Ship on the marketplace / create the delivery order.
    ReadyToShip,
    /// Delete the delivery order.
    DeleteDelivery,
    Cancelled,
    Shipped,
    Delivered,
}

/// The configured mapping of 1C status values.
#[derive(Debug, Clone)]
pub struct StatusMap {
    entries: Vec<(String, StatusAction)>,
}

/// Compare status values: without a Bitrix `[X] ` prefix, trimmed, lower-case, `ё` = `е`.
pub fn normalize_status(s: &str) -> String {
    let t = s.trim();
    let t = match (t.starts_with('['), t.find(']')) {
        (true, Some(i)) if i <= 4 => t[i + 1..].trim(),
        _ => t,
    };
    t.to_lowercase().replace('ё', "е")
}

impl StatusMap {
    pub fn from_config(c: &StatusMapConfig) -> StatusMap {
        let mut entries = Vec::new();
        for (list, a) in [
            (&c.ready_to_ship, StatusAction::ReadyToShip),
            (&c.delete_delivery, StatusAction::DeleteDelivery),
            (&c.cancelled, StatusAction::Cancelled),
            (&c.shipped, StatusAction::Shipped),
            (&c.delivered, StatusAction::Delivered),
        ] {
            for v in list {
                entries.push((normalize_status(v), a));
            }
        }
        StatusMap { entries }
    }

    pub fn action(&self, value: &str) -> Option<StatusAction> {
        let v = normalize_status(value);
        self.entries.iter().find(|(k, _)| *k == v).map(|(_, a)| *a)
    }
}

impl Default for StatusMap {
    fn default() -> Self {
        StatusMap::from_config(&StatusMapConfig::default())
    }
}

impl OrderError {
    /// A sentence for the API or the dashboard.
    pub fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (OrderError::UnknownOffer { line, offer_id }, Lang::Ru) => format!(
                "Строка {line}: неизвестный offer_id {offer_id:?} (такого товара или предложения нет в каталоге)"
            ),
            (OrderError::Line { line, message, .. }, Lang::Ru) => {
                format!("Строка {line}: {message}")
            }
            (OrderError::NotFound(n), Lang::Ru) => format!("Заказ {n} не найден"),
            (e, _) => e.to_string(),
        }
    }
}

/// `mode=query`: write every order 1C has not confirmed in its current version, and remember
/// exactly what was written as this session's pending export (committed by `mode=success`).
/// Orders are loaded in pages inside one read transaction (a consistent snapshot), so memory
/// does not grow with their number. Returns the sink and how many orders were written.
pub fn write_query<W: std::io::Write>(
    conn: &mut crate::store::Conn,
    session_id: &str,
    out: W,
    charset: cml_out::Charset,
    schema: cml_out::Schema,
    lang: Lang,
) -> Result<(W, usize), QueryError> {
    let generated = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let (out, written) = conn.snapshot_transaction::<_, QueryError, _>(|conn| {
        let pending = store::pending_for_1c(conn)?;
        let mut w = cml_out::QueryWriter::new(out, charset, schema, lang);
        w.start(&generated)?;
        let mut written = Vec::with_capacity(pending.len());
        for page in pending.chunks(500) {
            let ids: Vec<i32> = page.iter().map(|(id, _)| *id).collect();
            for o in store::load_many(conn, &ids)? {
                w.order(&o)?;
                written.push((o.id, o.version));
            }
        }
        Ok((w.finish()?, written))
    })?;
    store::record_export(conn, session_id, &written)?;
    Ok((out, written.len()))
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("cannot write the document: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod map_tests {
    use super::*;

    #[test]
    fn status_values_match_loosely() {
        let m = StatusMap::default();
        assert_eq!(
            m.action("Готов к отгрузке"),
            Some(StatusAction::ReadyToShip)
        );
        assert_eq!(
            m.action(" [R] готов к ОТГРУЗКЕ "),
            Some(StatusAction::ReadyToShip)
        );
        assert_eq!(
            m.action("Удалить заказ на доставку"),
            Some(StatusAction::DeleteDelivery)
        );
        assert_eq!(m.action("[F] Доставлен"), Some(StatusAction::Delivered));
        assert_eq!(m.action("Отменён"), Some(StatusAction::Cancelled));
        assert_eq!(m.action("В работе"), None);
    }
}
