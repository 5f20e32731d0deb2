//! CommerceML items as the streaming reader yields them.
//!
//! One item is one `Группа`, `Свойство`, `ТипЦены`, `Склад`, `Товар`, `Предложение` or `Документ`
//! (plus section markers). Fields that a file may leave out are `Option`s so that a partial file
//! (prices only, stock only) updates only what it carries. Numbers are kept as normalised decimal
//! strings (`"1500.5"`) so nothing is lost to floating point on the way to the store.

use serde::{Deserialize, Serialize};

/// What kind of top-level section an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    /// `Классификатор`: groups, properties, price types, warehouses, units.
    Classifier,
    /// `Каталог`: goods.
    Catalog,
    /// `ПакетПредложений`: offers with prices and/or stock.
    OfferPackage,
    /// `ИзмененияПакетаПредложений`: quick price/stock changes (always incremental).
    OfferChanges,
    /// `Документ` elements (orders), possibly wrapped in `Контейнер`.
    Documents,
}

/// Root attributes of `КоммерческаяИнформация`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `ВерсияСхемы`, e.g. "2.07", "3.1".
    pub schema_version: Option<String>,
    /// `ДатаФормирования`, normalised to `YYYY-MM-DDTHH:MM:SS` when it parses.
    pub generated_at: Option<String>,
    /// The (default) namespace URI if any, e.g. `urn:1C.ru:commerceml_2`.
    pub namespace: Option<String>,
    /// The encoding the file was decoded from (`UTF-8`, `windows-1251`, `UTF-16LE` …).
    pub encoding: String,
}

/// Start of a top-level section (`Классификатор`, `Каталог`, `ПакетПредложений`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub kind: SectionKind,
    /// `Ид` of the section, when it comes before the first item (it normally does).
    pub id: Option<String>,
    pub name: Option<String>,
    /// `ИдКлассификатора`.
    pub classifier_id: Option<String>,
    /// `ИдКаталога`.
    pub catalog_id: Option<String>,
    /// `СодержитТолькоИзменения` (attribute or child element); `None` when absent.
    /// `ИзмененияПакетаПредложений` is always `Some(true)`.
    pub only_changes: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// The enclosing group's `Ид` (groups nest through `Группы/Группа`).
    pub parent_id: Option<String>,
    /// `ПометкаУдаления=true`.
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PropertyValueVariant {
    /// `ИдЗначения` (Справочник) or `Ид` (Вариант); may be absent for plain `ВариантыЗначений/Значение`.
    pub id: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub id: String,
    pub name: String,
    /// `ТипЗначений`: `Строка`, `Число`, `Справочник`, `Дата`, `Булево` …
    pub value_type: Option<String>,
    /// Enumerated values (`ВариантыЗначений/Справочник`, `…/Вариант`, `…/Значение`).
    pub variants: Vec<PropertyValueVariant>,
    /// `ДляТоваров`, `ДляПредложений` as given.
    pub for_goods: Option<bool>,
    pub for_offers: Option<bool>,
    /// `Множественное`.
    pub multiple: Option<bool>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceType {
    pub id: String,
    pub name: String,
    /// `Валюта` as written (`руб`, `RUB`, `643`).
    pub currency: Option<String>,
    /// `Налог/Наименование` and `Налог/УчтеноВСумме`.
    pub tax_name: Option<String>,
    pub tax_included: Option<bool>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Warehouse {
    pub id: String,
    pub name: Option<String>,
    /// `Адрес/Представление` when present.
    pub address: Option<String>,
    pub deleted: bool,
}

/// `БазоваяЕдиница` (code may carry trailing spaces in the file; trimmed here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Attribute `Код`, e.g. "796".
    pub code: Option<String>,
    /// Element text, e.g. "шт".
    pub name: Option<String>,
    /// Attribute `НаименованиеПолное`.
    pub full_name: Option<String>,
    /// Attribute `МеждународноеСокращение`.
    pub intl: Option<String>,
}

/// A value of a property on a good or offer (`ЗначенияСвойств/ЗначенияСвойства`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PropertyValue {
    /// Property `Ид`.
    pub id: String,
    /// Every `Значение` (several for multiple-valued properties); for `Справочник` properties this is
    /// the value id as the file gives it (resolved to text by the catalog layer).
    pub values: Vec<String>,
}

/// A name/value pair: `ЗначениеРеквизита`, `ХарактеристикаТовара`, `СтавкаНалога`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Good {
    /// `Ид` as given (may be `guid#guid` when a client exports characteristics as goods).
    pub id: String,
    pub article: Option<String>,
    pub name: Option<String>,
    /// `ПолноеНаименование`, or the `Полное наименование` requisite.
    pub full_name: Option<String>,
    pub code: Option<String>,
    /// `Штрихкод` / `ШтрихКод`.
    pub barcode: Option<String>,
    pub description: Option<String>,
    pub unit: Option<Unit>,
    /// `Группы/Ид`, in file order.
    pub groups: Vec<String>,
    /// `Категория` (3.1 / 2.08+).
    pub category: Option<String>,
    pub properties: Vec<PropertyValue>,
    pub requisites: Vec<NameValue>,
    pub characteristics: Vec<NameValue>,
    pub taxes: Vec<NameValue>,
    /// `Картинка` paths (and `ДополнительнаяКартинкаN`), relative to the exchange folder, `/`-separated.
    pub images: Vec<String>,
    /// `Изготовитель/Наименование`.
    pub manufacturer: Option<String>,
    pub country: Option<String>,
    pub weight: Option<String>,
    /// `Статус` attribute or element as given (`Удален`, `Черновик` …).
    pub status: Option<String>,
    /// `ПометкаУдаления=true` or `Статус="Удален"`.
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// `ИдТипаЦены`.
    pub price_type_id: String,
    /// `ЦенаЗаЕдиницу`, normalised decimal string.
    pub value: String,
    pub currency: Option<String>,
    /// `Единица`.
    pub unit: Option<String>,
    /// `Коэффициент`.
    pub coefficient: Option<String>,
    /// `Представление`.
    pub presentation: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Warehouse `Ид` (`Склад/@ИдСклада`, `Остатки/Остаток/Склад/Ид`,
    /// `Склады/ОстаткиПоСкладам/@ИдСклада`).
    pub warehouse_id: String,
    /// Normalised decimal string.
    pub quantity: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// `Ид` as given: `goodId` or `goodId#charId`.
    pub id: String,
    pub article: Option<String>,
    pub name: Option<String>,
    pub barcode: Option<String>,
    pub unit: Option<Unit>,
    pub characteristics: Vec<NameValue>,
    pub properties: Vec<PropertyValue>,
    /// `Some` when the offer carries `Цены` (possibly empty), `None` when the file says nothing of prices.
    pub prices: Option<Vec<Price>>,
    /// `Количество` directly under `Предложение` (or `Остатки/Остаток/Количество` without a warehouse).
    pub quantity: Option<String>,
    /// `Some` when the offer carries per-warehouse stock, `None` otherwise.
    pub stock: Option<Vec<StockLevel>>,
    pub status: Option<String>,
    pub deleted: bool,
}

impl Offer {
    /// The good this offer belongs to: the part before `#`.
    pub fn good_id(&self) -> &str {
        self.id.split('#').next().unwrap_or(&self.id)
    }
}

/// An order document. The catalog pipeline only counts these; the orders module reads them fully.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: Option<String>,
    pub number: Option<String>,
    pub date: Option<String>,
    pub operation: Option<String>,
}

/// One step of the pull reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// Always the first item.
    Header(Header),
    SectionStart(Section),
    /// A `СодержитТолькоИзменения` child element seen after the section start.
    OnlyChanges(bool),
    Group(Group),
    Property(Property),
    PriceType(PriceType),
    Warehouse(Warehouse),
    Good(Good),
    Offer(Offer),
    Document(Document),
    SectionEnd(SectionKind),
}
