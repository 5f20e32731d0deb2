//! Read side for the dashboard: what obmen last pushed to Ozon for one of our offers (its card
//! link, the stock per Ozon warehouse, the price) and when Ozon acknowledged it.

use diesel::prelude::*;

use crate::store::schema::{ozon_offers, ozon_price_state, ozon_stock_state};
use crate::store::Conn;

/// The link of one of our offers to Ozon (`ozon_offers`).
#[derive(Debug, Clone, Queryable)]
pub struct Card {
    pub offer_id: String,
    pub product_id: Option<i64>,
    pub sku: Option<i64>,
    pub card_state: Option<String>,
    pub card_errors: Option<String>,
    pub updated_at: i64,
}

/// The stock obmen queued for one Ozon warehouse and what Ozon acknowledged.
#[derive(Debug, Clone, Queryable)]
pub struct StockState {
    pub warehouse_id: i64,
    pub queued: i64,
    pub acked: Option<i64>,
    pub acked_at: Option<i64>,
    pub error: Option<String>,
}

/// The price obmen queued (Ozon's JSON shape) and what Ozon acknowledged.
#[derive(Debug, Clone, Queryable)]
pub struct PriceState {
    pub queued: String,
    pub acked: Option<String>,
    pub acked_at: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct OfferOzon {
    pub card: Option<Card>,
    pub stock: Vec<StockState>,
    pub price: Option<PriceState>,
}

/// Everything obmen keeps about one of our offers (by our offer id) on the Ozon side.
pub fn offer_state(conn: &mut Conn, offer_ref: &str) -> QueryResult<OfferOzon> {
    let card = ozon_offers::table
        .find(offer_ref)
        .select((
            ozon_offers::offer_id,
            ozon_offers::product_id,
            ozon_offers::sku,
            ozon_offers::card_state,
            ozon_offers::card_errors,
            ozon_offers::updated_at,
        ))
        .first::<Card>(conn)
        .optional()?;
    let stock = ozon_stock_state::table
        .filter(ozon_stock_state::offer_ref.eq(offer_ref))
        .order(ozon_stock_state::warehouse_id)
        .select((
            ozon_stock_state::warehouse_id,
            ozon_stock_state::queued,
            ozon_stock_state::acked,
            ozon_stock_state::acked_at,
            ozon_stock_state::error,
        ))
        .load::<StockState>(conn)?;
    let price = ozon_price_state::table
        .find(offer_ref)
        .select((
            ozon_price_state::queued,
            ozon_price_state::acked,
            ozon_price_state::acked_at,
            ozon_price_state::error,
        ))
        .first::<PriceState>(conn)
        .optional()?;
    Ok(OfferOzon { card, stock, price })
}
