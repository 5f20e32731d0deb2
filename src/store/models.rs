//! Row types for the catalog tables (insert and read shapes).

use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = goods, treat_none_as_default_value = false)]
pub struct GoodRow {
    pub id: String,
    pub article: Option<String>,
    pub name: Option<String>,
    pub data: String,
    pub hash: String,
    pub deleted: bool,
    pub active: bool,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = offers, treat_none_as_default_value = false)]
pub struct OfferRow {
    pub id: String,
    pub good_id: String,
    pub article: Option<String>,
    pub name: Option<String>,
    pub quantity: Option<String>,
    pub by_warehouse: bool,
    pub data: String,
    pub hash: String,
    pub deleted: bool,
    pub active: bool,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = prices, treat_none_as_default_value = false)]
pub struct PriceRow {
    pub offer_id: String,
    pub price_type_id: String,
    pub value: String,
    pub currency: Option<String>,
    pub unit: Option<String>,
    pub coefficient: Option<String>,
    pub presentation: Option<String>,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = stock, treat_none_as_default_value = false)]
pub struct StockRow {
    pub offer_id: String,
    pub warehouse_id: String,
    pub quantity: String,
    pub changed_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = images)]
pub struct ImageRow {
    pub good_id: String,
    pub path: String,
    pub position: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = catalog_groups, treat_none_as_default_value = false)]
pub struct GroupRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub deleted: bool,
    pub hash: String,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = properties, treat_none_as_default_value = false)]
pub struct PropertyRow {
    pub id: String,
    pub name: String,
    pub value_type: Option<String>,
    pub for_goods: Option<bool>,
    pub for_offers: Option<bool>,
    pub multiple: Option<bool>,
    pub deleted: bool,
    pub hash: String,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = property_values, treat_none_as_default_value = false)]
pub struct PropertyValueRow {
    pub property_id: String,
    pub value_id: String,
    pub value: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = price_types, treat_none_as_default_value = false)]
pub struct PriceTypeRow {
    pub id: String,
    pub name: String,
    pub currency: Option<String>,
    pub tax_name: Option<String>,
    pub tax_included: Option<bool>,
    pub deleted: bool,
    pub hash: String,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = warehouses, treat_none_as_default_value = false)]
pub struct WarehouseRow {
    pub id: String,
    pub name: Option<String>,
    pub address: Option<String>,
    pub defined: bool,
    pub deleted: bool,
    pub hash: String,
    pub created_at: i64,
    pub changed_at: i64,
    pub seen_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = deletions, treat_none_as_default_value = false)]
pub struct DeletionRow {
    pub entity: String,
    pub entity_id: String,
    pub reason: String,
    pub job_id: Option<i64>,
    pub at: i64,
}
