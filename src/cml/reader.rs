//! The streaming CommerceML pull reader.
//!
//! `CmlReader::next_item` yields one [`Item`] at a time: a group, a property, a good, an offer …
//! Nothing but the item being built is kept, so memory does not depend on the file size. Under it
//! is quick-xml's buffered reader over a [`Source`] that hands it UTF-8 whatever the file's
//! encoding. Elements are matched by local name (any namespace or prefix: `commerceml_2`,
//! `_205`, `_210`, `commerceml_3`, none); elements the reader has no use for are skipped by depth
//! counting without looking at their names.
//!
//! Hostile input: a DOCTYPE that declares entities is refused (entities are never expanded),
//! nesting deeper than [`MAX_DEPTH`] is refused, and every error carries the line and column of
//! the original file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use quick_xml::errors::{IllFormedError, SyntaxError};
use quick_xml::events::{BytesStart, Event};

use super::model::*;
use super::source::{Source, SourceProblem};
use super::values::{boolean, datetime, decimal_or_raw, non_empty};
use crate::i18n::Lang;

/// Deepest element nesting accepted (real files stay under 15).
pub const MAX_DEPTH: usize = 256;

/// What is wrong with an unreadable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidKind {
    /// Not well-formed XML; the parser's own (English) wording.
    Syntax(String),
    /// `</found>` closes `<expected>`.
    MismatchedEndTag { expected: String, found: String },
    /// A closing tag with no element open.
    UnmatchedEndTag(String),
    /// The file ends inside an element.
    UnexpectedEof { open: String },
    /// Bytes invalid in the file's encoding (declared, or UTF-8 by default).
    WrongEncoding {
        encoding: String,
        declared: bool,
        likely: Option<String>,
    },
    /// Declared in a single-byte encoding (windows-1251) but written in UTF-8.
    DeclaredButUtf8 { declared: String },
    /// `encoding="…"` that is no known encoding.
    UnknownEncoding(String),
    /// The root element is not `КоммерческаяИнформация`.
    NotCommerceMl { root: String },
    /// A DOCTYPE declaring entities (billion laughs and friends): refused, never expanded.
    EntitiesRefused,
    /// `&name;` that is neither predefined nor a character reference.
    UnknownEntity(String),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep(usize),
    /// No element at all.
    NoRoot,
    /// The file ends inside a UTF-8 character (an incomplete upload).
    CutCharacter,
}

impl InvalidKind {
    fn text(&self, lang: Lang) -> String {
        use InvalidKind::*;
        match (self, lang) {
            (Syntax(m), Lang::Ru) => format!("Ошибка в XML ({m})"),
            (Syntax(m), Lang::En) => format!("Malformed XML ({m})"),
            (MismatchedEndTag { expected, found }, Lang::Ru) => format!(
                "Ошибка в XML: закрывающий тег </{found}> не соответствует открытому элементу <{expected}>"
            ),
            (MismatchedEndTag { expected, found }, Lang::En) => format!(
                "Malformed XML: closing tag </{found}> does not match the open element <{expected}>"
            ),
            (UnmatchedEndTag(n), Lang::Ru) => {
                format!("Ошибка в XML: лишний закрывающий тег </{n}>")
            }
            (UnmatchedEndTag(n), Lang::En) => {
                format!("Malformed XML: closing tag </{n}> without an open element")
            }
            (UnexpectedEof { open }, Lang::Ru) => {
                format!("Файл оборван: элемент <{open}> не закрыт до конца файла")
            }
            (UnexpectedEof { open }, Lang::En) => {
                format!("The file is cut short: element <{open}> is not closed before its end")
            }
            (
                WrongEncoding {
                    encoding,
                    declared,
                    likely,
                },
                Lang::Ru,
            ) => {
                let how = if *declared {
                    format!("объявлен в кодировке {encoding}")
                } else {
                    format!("не объявляет кодировку (значит, {encoding})")
                };
                let hint = match likely {
                    Some(l) => format!(
                        "; похоже, он записан в {l} — укажите её в заголовке <?xml … encoding=\"{l}\"?>"
                    ),
                    None => String::new(),
                };
                format!("Файл {how}, но содержит байты, недопустимые в {encoding}{hint}")
            }
            (
                WrongEncoding {
                    encoding,
                    declared,
                    likely,
                },
                Lang::En,
            ) => {
                let how = if *declared {
                    format!("is declared as {encoding}")
                } else {
                    format!("declares no encoding (so {encoding})")
                };
                let hint = match likely {
                    Some(l) => format!(
                        "; it looks like {l}: declare it as <?xml … encoding=\"{l}\"?>"
                    ),
                    None => String::new(),
                };
                format!("The file {how} but contains bytes invalid in {encoding}{hint}")
            }
            (DeclaredButUtf8 { declared }, Lang::Ru) => format!(
                "Файл объявлен в кодировке {declared}, но на самом деле записан в UTF-8 — исправьте encoding в заголовке <?xml?>"
            ),
            (DeclaredButUtf8 { declared }, Lang::En) => format!(
                "The file is declared as {declared} but is actually written in UTF-8; fix the encoding in its <?xml?> declaration"
            ),
            (UnknownEncoding(l), Lang::Ru) => {
                format!("Неизвестная кодировка «{l}» в заголовке XML")
            }
            (UnknownEncoding(l), Lang::En) => {
                format!("Unknown encoding \"{l}\" in the XML declaration")
            }
            (NotCommerceMl { root }, Lang::Ru) => format!(
                "Это не файл CommerceML: корневой элемент <{root}> вместо <КоммерческаяИнформация>"
            ),
            (NotCommerceMl { root }, Lang::En) => format!(
                "Not a CommerceML file: the root element is <{root}>, not <КоммерческаяИнформация>"
            ),
            (EntitiesRefused, Lang::Ru) => "Файл содержит DOCTYPE с объявлениями сущностей (<!ENTITY>); такие файлы не принимаются (защита от атаки «billion laughs»)".to_string(),
            (EntitiesRefused, Lang::En) => "The file has a DOCTYPE declaring entities (<!ENTITY>); such files are refused (billion laughs protection)".to_string(),
            (UnknownEntity(n), Lang::Ru) => format!(
                "Неизвестная сущность &{n}; (допускаются только &lt; &gt; &amp; &apos; &quot; и числовые ссылки)"
            ),
            (UnknownEntity(n), Lang::En) => format!(
                "Unknown entity &{n}; (only &lt; &gt; &amp; &apos; &quot; and numeric references are allowed)"
            ),
            (TooDeep(max), Lang::Ru) => {
                format!("Слишком глубокая вложенность элементов (больше {max})")
            }
            (TooDeep(max), Lang::En) => {
                format!("Elements are nested too deep (more than {max})")
            }
            (NoRoot, Lang::Ru) => "Файл пуст или не содержит XML-элементов".to_string(),
            (NoRoot, Lang::En) => "The file is empty or has no XML element".to_string(),
            (CutCharacter, Lang::Ru) => {
                "Файл оборван посреди символа UTF-8: он передан не полностью, повторите выгрузку"
                    .to_string()
            }
            (CutCharacter, Lang::En) => {
                "The file is cut short inside a UTF-8 character: it was not sent completely, send it again"
                    .to_string()
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CmlError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{}", .kind.text(Lang::En) + &format!(": line {line}, column {column}"))]
    Invalid {
        line: u64,
        column: u64,
        kind: InvalidKind,
    },
}

impl CmlError {
    /// A sentence for a person: Russian or English; a positioned error ends with
    /// "строка L, столбец C" ("line L, column C").
    pub fn describe(&self, lang: Lang) -> String {
        match self {
            CmlError::Io(e) => match lang {
                Lang::Ru => format!("Ошибка чтения файла: {e}"),
                Lang::En => format!("Cannot read the file: {e}"),
            },
            CmlError::Invalid { line, column, kind } => match lang {
                Lang::Ru => format!("{}: строка {line}, столбец {column}", kind.text(lang)),
                Lang::En => format!("{}: line {line}, column {column}", kind.text(lang)),
            },
        }
    }

    /// Line and column (1-based, in characters of the original file).
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            CmlError::Invalid { line, column, .. } => Some((*line, *column)),
            CmlError::Io(_) => None,
        }
    }

    pub fn kind(&self) -> Option<&InvalidKind> {
        match self {
            CmlError::Invalid { kind, .. } => Some(kind),
            CmlError::Io(_) => None,
        }
    }
}

/// Element names the reader knows (local names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum N {
    Other,
    Root,
    Classifier,
    Catalog,
    Package,
    Changes,
    Document,
    Container,
    Id,
    Name,
    ClassifierId,
    CatalogId,
    OnlyChanges,
    Groups,
    Group,
    Properties,
    Property,
    Deleted,
    ValueType,
    ValueTypes,
    Type,
    Variants,
    Variant,
    ValueId,
    Value,
    ForGoods,
    ForOffers,
    Multiple,
    PriceTypes,
    PriceType,
    Currency,
    Tax,
    TaxIncluded,
    Warehouses,
    Warehouse,
    Address,
    Presentation,
    Goods,
    Good,
    Article,
    FullName,
    Code,
    Barcode,
    Description,
    BaseUnit,
    Category,
    PropValues,
    PropValue,
    PropValueInner,
    Requisites,
    Requisite,
    Characteristics,
    Characteristic,
    Taxes,
    TaxRate,
    Rate,
    Picture,
    Manufacturer,
    Country,
    Weight,
    Status,
    Offers,
    Offer,
    Prices,
    Price,
    PriceTypeId,
    PricePerUnit,
    Unit,
    Coefficient,
    Quantity,
    Rests,
    Rest,
    CharId,
    Number,
    Date,
    Operation,
}

fn classify(s: &str) -> N {
    match s {
        "Ид" => N::Id,
        "Наименование" => N::Name,
        "Значение" => N::Value,
        "Товар" => N::Good,
        "Предложение" => N::Offer,
        "Группы" => N::Groups,
        "Группа" => N::Group,
        "ЗначенияСвойства" => N::PropValue,
        "ЗначениеРеквизита" => N::Requisite,
        "Цена" => N::Price,
        "Склад" => N::Warehouse,
        "Количество" => N::Quantity,
        "Артикул" => N::Article,
        "БазоваяЕдиница" => N::BaseUnit,
        "Картинка" => N::Picture,
        "Описание" => N::Description,
        "Штрихкод" | "ШтрихКод" => N::Barcode,
        "ЗначенияСвойств" => N::PropValues,
        "ЗначенияРеквизитов" => N::Requisites,
        "Цены" => N::Prices,
        "ИдТипаЦены" => N::PriceTypeId,
        "ЦенаЗаЕдиницу" => N::PricePerUnit,
        "Валюта" => N::Currency,
        "Единица" => N::Unit,
        "Коэффициент" => N::Coefficient,
        "Представление" => N::Presentation,
        "Остатки" => N::Rests,
        "Остаток" => N::Rest,
        "СтавкиНалогов" => N::Taxes,
        "СтавкаНалога" => N::TaxRate,
        "Ставка" => N::Rate,
        "ХарактеристикиТовара" => N::Characteristics,
        "ХарактеристикаТовара" => N::Characteristic,
        "ПолноеНаименование" => N::FullName,
        "Код" => N::Code,
        "Категория" => N::Category,
        "Изготовитель" => N::Manufacturer,
        "Страна" => N::Country,
        "Вес" => N::Weight,
        "Статус" => N::Status,
        "ПометкаУдаления" => N::Deleted,
        "ЗначениеСвойства" => N::PropValueInner,
        "ИдХарактеристики" => N::CharId,
        "Товары" => N::Goods,
        "Предложения" => N::Offers,
        "Свойства" => N::Properties,
        "Свойство" | "СвойствоНоменклатуры" => N::Property,
        "ТипЗначений" => N::ValueType,
        "ТипыЗначений" => N::ValueTypes,
        "Тип" => N::Type,
        "ВариантыЗначений" => N::Variants,
        "Справочник" | "Вариант" | "ВариантЗначения" | "ВариантЗначенияСвойства" => {
            N::Variant
        }
        "ИдЗначения" => N::ValueId,
        "ДляТоваров" => N::ForGoods,
        "ДляПредложений" => N::ForOffers,
        "Множественное" => N::Multiple,
        "ТипыЦен" => N::PriceTypes,
        "ТипЦены" => N::PriceType,
        "Налог" => N::Tax,
        "УчтеноВСумме" => N::TaxIncluded,
        "Склады" => N::Warehouses,
        "Адрес" => N::Address,
        "ИдКлассификатора" => N::ClassifierId,
        "ИдКаталога" => N::CatalogId,
        "СодержитТолькоИзменения" => N::OnlyChanges,
        "Классификатор" => N::Classifier,
        "Каталог" => N::Catalog,
        "ПакетПредложений" => N::Package,
        "ИзмененияПакетаПредложений" => N::Changes,
        "Документ" => N::Document,
        "Контейнер" => N::Container,
        "КоммерческаяИнформация" => N::Root,
        "Номер" => N::Number,
        "Дата" => N::Date,
        "ХозОперация" => N::Operation,
        _ if s.starts_with("ДополнительнаяКартинка") => N::Picture,
        _ => N::Other,
    }
}

/// Whose property values / name-value lists are being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Good,
    Offer,
}

/// The meaning of an open element the reader cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    Section(SectionKind),
    SectionField(N),
    Container,
    Groups,
    Group,
    GroupField(N),
    Properties,
    Property,
    PropField(N),
    PropTypes,
    Variants,
    Variant,
    VariantField(N),
    VariantsValue,
    PriceTypes,
    PriceType,
    PriceTypeField(N),
    Tax,
    TaxField(N),
    Warehouses,
    Warehouse,
    WarehouseField(N),
    WarehouseAddress,
    WarehouseAddressText,
    Goods,
    Good,
    GoodField(N),
    Unit(Owner),
    GoodGroups,
    GoodGroupId,
    Manufacturer,
    ManufacturerName,
    PropValues(Owner),
    PropValue(Owner),
    PropValueField(Owner, N),
    PropValueInner(Owner),
    NameValues(Owner, N),
    NameValue(Owner, N),
    NameValueField(Owner, N, N),
    Offers,
    Offer,
    OfferField(N),
    OfferStock,
    Prices,
    Price,
    PriceField(N),
    Rests,
    Rest,
    RestWarehouse,
    RestWarehouseField(N),
    RestQuantity,
    Document,
    DocField(N),
}

fn child(parent: Ctx, n: N) -> Option<Ctx> {
    use Ctx as C;
    Some(match (parent, n) {
        (C::Root, N::Classifier) => C::Section(SectionKind::Classifier),
        (C::Root, N::Catalog) => C::Section(SectionKind::Catalog),
        (C::Root, N::Package) => C::Section(SectionKind::OfferPackage),
        (C::Root, N::Changes) => C::Section(SectionKind::OfferChanges),
        (C::Root | C::Container, N::Document) => C::Document,
        (C::Root, N::Container) => C::Container,

        (C::Section(_), N::Id | N::Name | N::ClassifierId | N::CatalogId | N::OnlyChanges) => {
            C::SectionField(n)
        }
        (C::Section(k), N::Classifier) if k != SectionKind::Classifier => {
            C::Section(SectionKind::Classifier)
        }
        (C::Section(_), N::Groups) => C::Groups,
        (C::Section(_), N::Properties) => C::Properties,
        (C::Section(_), N::PriceTypes) => C::PriceTypes,
        (C::Section(_), N::Warehouses) => C::Warehouses,
        (C::Section(_), N::Goods) => C::Goods,
        (C::Section(_), N::Offers) => C::Offers,

        (C::Groups, N::Group) => C::Group,
        (C::Group, N::Id | N::Name | N::Deleted) => C::GroupField(n),
        (C::Group, N::Groups) => C::Groups,

        (C::Properties, N::Property) => C::Property,
        (
            C::Property,
            N::Id | N::Name | N::ValueType | N::ForGoods | N::ForOffers | N::Multiple | N::Deleted,
        ) => C::PropField(n),
        (C::Property, N::ValueTypes) => C::PropTypes,
        (C::PropTypes, N::ValueType) => C::PropField(N::ValueType),
        (C::PropField(N::ValueType), N::Type) => C::PropField(N::Type),
        (C::Property | C::PropField(N::ValueType), N::Variants) => C::Variants,
        (C::Variants, N::Variant) => C::Variant,
        (C::Variants, N::Value) => C::VariantsValue,
        (C::Variant, N::Id | N::ValueId) => C::VariantField(N::Id),
        (C::Variant, N::Value) => C::VariantField(N::Value),

        (C::PriceTypes, N::PriceType) => C::PriceType,
        (C::PriceType, N::Id | N::Name | N::Currency | N::Deleted) => C::PriceTypeField(n),
        (C::PriceType, N::Tax) => C::Tax,
        (C::Tax, N::Name | N::TaxIncluded) => C::TaxField(n),

        (C::Warehouses, N::Warehouse) => C::Warehouse,
        (C::Warehouse, N::Id | N::Name | N::Deleted) => C::WarehouseField(n),
        (C::Warehouse, N::Address) => C::WarehouseAddress,
        (C::WarehouseAddress, N::Presentation) => C::WarehouseAddressText,

        (C::Goods, N::Good) => C::Good,
        (
            C::Good,
            N::Id
            | N::Article
            | N::Name
            | N::FullName
            | N::Code
            | N::Barcode
            | N::Description
            | N::Category
            | N::Picture
            | N::Country
            | N::Weight
            | N::Status
            | N::Deleted,
        ) => C::GoodField(n),
        (C::Good, N::BaseUnit) => C::Unit(Owner::Good),
        (C::Good, N::Groups) => C::GoodGroups,
        (C::GoodGroups, N::Id) => C::GoodGroupId,
        (C::Good, N::Manufacturer) => C::Manufacturer,
        (C::Manufacturer, N::Name) => C::ManufacturerName,
        (C::Good, N::PropValues) => C::PropValues(Owner::Good),
        (C::Offer, N::PropValues) => C::PropValues(Owner::Offer),
        (C::PropValues(o), N::PropValue) => C::PropValue(o),
        (C::PropValue(o), N::Id | N::Value) => C::PropValueField(o, n),
        (C::PropValue(o), N::PropValueInner) => C::PropValueInner(o),
        (C::PropValueInner(o), N::Value) => C::PropValueField(o, N::Value),
        (C::Good, N::Requisites | N::Characteristics | N::Taxes) => C::NameValues(Owner::Good, n),
        (C::Offer, N::Characteristics) => C::NameValues(Owner::Offer, n),
        (C::NameValues(o, l), N::Requisite | N::Characteristic | N::TaxRate) => C::NameValue(o, l),
        (C::NameValue(o, l), N::Name) => C::NameValueField(o, l, N::Name),
        (C::NameValue(o, l), N::Value | N::Rate) => C::NameValueField(o, l, N::Value),

        (C::Offers, N::Offer) => C::Offer,
        (
            C::Offer,
            N::Id
            | N::Article
            | N::Name
            | N::Barcode
            | N::Quantity
            | N::Status
            | N::Deleted
            | N::CharId,
        ) => C::OfferField(n),
        (C::Offer, N::BaseUnit) => C::Unit(Owner::Offer),
        (C::Offer, N::Prices) => C::Prices,
        (C::Prices, N::Price) => C::Price,
        (
            C::Price,
            N::Presentation
            | N::PriceTypeId
            | N::PricePerUnit
            | N::Currency
            | N::Unit
            | N::Coefficient,
        ) => C::PriceField(n),
        (C::Offer, N::Warehouse | N::Warehouses) => C::OfferStock,
        (C::OfferStock, N::Warehouse) => C::OfferStock,
        (C::Offer, N::Rests) => C::Rests,
        (C::Rests, N::Rest) => C::Rest,
        (C::Rest, N::Warehouse) => C::RestWarehouse,
        (C::Rest, N::Quantity) => C::RestQuantity,
        (C::RestWarehouse, N::Id | N::Quantity) => C::RestWarehouseField(n),

        (C::Document, N::Id | N::Number | N::Date | N::Operation) => C::DocField(n),
        _ => return None,
    })
}

/// One open section and whether its `SectionStart` went out already.
struct SectionFrame {
    section: Section,
    emitted: bool,
}

struct GroupFrame {
    group: Group,
    emitted: bool,
}

/// Items being built (everything but the XML plumbing).
#[derive(Default)]
struct Builder {
    out: VecDeque<Item>,
    sections: Vec<SectionFrame>,
    groups: Vec<GroupFrame>,
    property: Property,
    variant: PropertyValueVariant,
    price_type: PriceType,
    warehouse: Warehouse,
    good: Good,
    offer: Offer,
    char_id: Option<String>,
    unit: Unit,
    price: Price,
    stock: StockLevel,
    prop_value: PropertyValue,
    name_value: NameValue,
    document: Document,
}

fn attr_value(e: &BytesStart<'_>, local: &str) -> Option<String> {
    for a in e.attributes().with_checks(false).flatten() {
        if a.key.local_name().as_ref() == local {
            return a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned());
        }
    }
    None
}

fn is_deleted_status(s: &str) -> bool {
    let s = s.trim();
    s.eq_ignore_ascii_case("удален")
        || s.eq_ignore_ascii_case("удалён")
        || s == "Удален"
        || s == "Удалён"
}

impl Builder {
    /// Emit the innermost open section's start if it has not gone out yet.
    fn flush_section(&mut self) {
        if let Some(f) = self.sections.last_mut() {
            if !f.emitted {
                f.emitted = true;
                self.out.push_back(Item::SectionStart(f.section.clone()));
            }
        }
    }

    fn start(&mut self, ctx: Ctx, e: &BytesStart<'_>) {
        match ctx {
            Ctx::Section(kind) => {
                self.flush_section();
                let only_changes = if kind == SectionKind::OfferChanges {
                    Some(true)
                } else {
                    attr_value(e, "СодержитТолькоИзменения").and_then(|v| boolean(&v))
                };
                self.sections.push(SectionFrame {
                    section: Section {
                        kind,
                        id: None,
                        name: None,
                        classifier_id: None,
                        catalog_id: None,
                        only_changes,
                    },
                    emitted: false,
                });
            }
            Ctx::Groups
            | Ctx::Properties
            | Ctx::PriceTypes
            | Ctx::Warehouses
            | Ctx::Goods
            | Ctx::Offers => {
                self.flush_section();
                if ctx == Ctx::Groups {
                    // Nested groups: their parent goes out first.
                    self.emit_open_group();
                }
            }
            Ctx::Group => {
                self.groups.push(GroupFrame {
                    group: Group {
                        parent_id: self
                            .groups
                            .last()
                            .map(|g| g.group.id.clone())
                            .filter(|id| !id.is_empty()),
                        ..Group::default()
                    },
                    emitted: false,
                });
            }
            Ctx::Property => self.property = Property::default(),
            Ctx::Variant => self.variant = PropertyValueVariant::default(),
            Ctx::PriceType => self.price_type = PriceType::default(),
            Ctx::Warehouse => self.warehouse = Warehouse::default(),
            Ctx::Good => {
                self.good = Good::default();
                if let Some(s) = attr_value(e, "Статус").and_then(|s| non_empty(&s)) {
                    self.good.deleted |= is_deleted_status(&s);
                    self.good.status = Some(s);
                }
            }
            Ctx::Unit(_) => {
                self.unit = Unit {
                    code: attr_value(e, "Код").and_then(|v| non_empty(&v)),
                    name: None,
                    full_name: attr_value(e, "НаименованиеПолное").and_then(|v| non_empty(&v)),
                    intl: attr_value(e, "МеждународноеСокращение").and_then(|v| non_empty(&v)),
                };
            }
            Ctx::PropValue(_) => self.prop_value = PropertyValue::default(),
            Ctx::NameValue(..) => self.name_value = NameValue::default(),
            Ctx::Offer => {
                self.offer = Offer::default();
                self.char_id = None;
                if let Some(s) = attr_value(e, "Статус").and_then(|s| non_empty(&s)) {
                    self.offer.deleted |= is_deleted_status(&s);
                    self.offer.status = Some(s);
                }
            }
            Ctx::Prices => {
                self.offer.prices.get_or_insert_with(Vec::new);
            }
            Ctx::Price => self.price = Price::default(),
            Ctx::Rests => {}
            Ctx::RestWarehouse => self.stock = StockLevel::default(),
            Ctx::OfferStock => {
                let id = attr_value(e, "ИдСклада").and_then(|v| non_empty(&v));
                let qty = attr_value(e, "КоличествоНаСкладе");
                if let (Some(id), Some(q)) = (id, qty) {
                    self.offer
                        .stock
                        .get_or_insert_with(Vec::new)
                        .push(StockLevel {
                            warehouse_id: id,
                            quantity: decimal_or_raw(&q),
                        });
                }
            }
            Ctx::Document => self.document = Document::default(),
            _ => {}
        }
    }

    fn emit_open_group(&mut self) {
        if let Some(f) = self.groups.last_mut() {
            if !f.emitted {
                f.emitted = true;
                if !f.group.id.is_empty() {
                    self.out.push_back(Item::Group(f.group.clone()));
                }
            }
        }
    }

    fn end(&mut self, ctx: Ctx, text: &str) {
        match ctx {
            Ctx::SectionField(n) => {
                let Some(f) = self.sections.last_mut() else {
                    return;
                };
                if n == N::OnlyChanges {
                    if let Some(v) = boolean(text) {
                        if f.emitted {
                            self.out.push_back(Item::OnlyChanges(v));
                        } else {
                            f.section.only_changes = Some(v);
                        }
                    }
                    return;
                }
                if f.emitted {
                    return;
                }
                let v = non_empty(text);
                match n {
                    N::Id => f.section.id = v,
                    N::Name => f.section.name = v,
                    N::ClassifierId => f.section.classifier_id = v,
                    N::CatalogId => f.section.catalog_id = v,
                    _ => {}
                }
            }
            Ctx::Section(kind) => {
                self.flush_section();
                self.sections.pop();
                self.out.push_back(Item::SectionEnd(kind));
            }
            Ctx::GroupField(n) => {
                if let Some(f) = self.groups.last_mut() {
                    match n {
                        N::Id => f.group.id = text.trim().to_string(),
                        N::Name => f.group.name = text.trim().to_string(),
                        N::Deleted => f.group.deleted = boolean(text).unwrap_or(false),
                        _ => {}
                    }
                }
            }
            Ctx::Group => {
                self.emit_open_group();
                self.groups.pop();
            }
            Ctx::PropField(n) => {
                let p = &mut self.property;
                match n {
                    N::Id => p.id = text.trim().to_string(),
                    N::Name => p.name = text.trim().to_string(),
                    N::ValueType | N::Type => {
                        if let Some(v) = non_empty(text) {
                            p.value_type.get_or_insert(v);
                        }
                    }
                    N::ForGoods => p.for_goods = boolean(text),
                    N::ForOffers => p.for_offers = boolean(text),
                    N::Multiple => p.multiple = boolean(text),
                    N::Deleted => p.deleted = boolean(text).unwrap_or(false),
                    _ => {}
                }
            }
            Ctx::VariantField(n) => match n {
                N::Id => self.variant.id = non_empty(text),
                _ => self.variant.value = text.trim().to_string(),
            },
            Ctx::Variant => {
                let v = std::mem::take(&mut self.variant);
                if !v.value.is_empty() || v.id.is_some() {
                    self.property.variants.push(v);
                }
            }
            Ctx::VariantsValue => {
                if let Some(v) = non_empty(text) {
                    self.property
                        .variants
                        .push(PropertyValueVariant { id: None, value: v });
                }
            }
            Ctx::Property => {
                let mut p = std::mem::take(&mut self.property);
                // A few Bitrix exports leave out Ид: the name is the only key there is.
                if p.id.is_empty() {
                    p.id = p.name.clone();
                }
                if !p.id.is_empty() {
                    self.out.push_back(Item::Property(p));
                }
            }
            Ctx::PriceTypeField(n) => {
                let t = &mut self.price_type;
                match n {
                    N::Id => t.id = text.trim().to_string(),
                    N::Name => t.name = text.trim().to_string(),
                    N::Currency => t.currency = non_empty(text),
                    N::Deleted => t.deleted = boolean(text).unwrap_or(false),
                    _ => {}
                }
            }
            Ctx::TaxField(n) => match n {
                N::Name => self.price_type.tax_name = non_empty(text),
                _ => self.price_type.tax_included = boolean(text),
            },
            Ctx::PriceType => {
                let t = std::mem::take(&mut self.price_type);
                if !t.id.is_empty() {
                    self.out.push_back(Item::PriceType(t));
                }
            }
            Ctx::WarehouseField(n) => {
                let w = &mut self.warehouse;
                match n {
                    N::Id => w.id = text.trim().to_string(),
                    N::Name => w.name = non_empty(text),
                    N::Deleted => w.deleted = boolean(text).unwrap_or(false),
                    _ => {}
                }
            }
            Ctx::WarehouseAddressText => self.warehouse.address = non_empty(text),
            Ctx::Warehouse => {
                let w = std::mem::take(&mut self.warehouse);
                if !w.id.is_empty() {
                    self.out.push_back(Item::Warehouse(w));
                }
            }
            Ctx::GoodField(n) => {
                let g = &mut self.good;
                match n {
                    N::Id => g.id = text.trim().to_string(),
                    N::Article => g.article = non_empty(text),
                    N::Name => g.name = non_empty(text),
                    N::FullName => g.full_name = non_empty(text),
                    N::Code => g.code = non_empty(text),
                    N::Barcode => g.barcode = non_empty(text),
                    N::Description => g.description = non_empty(text),
                    N::Category => g.category = non_empty(text),
                    N::Picture => {
                        if let Some(p) = non_empty(text) {
                            g.images.push(p.replace('\\', "/"));
                        }
                    }
                    N::Country => g.country = non_empty(text),
                    N::Weight => g.weight = non_empty(text).map(|w| decimal_or_raw(&w)),
                    N::Status => {
                        if let Some(s) = non_empty(text) {
                            g.deleted |= is_deleted_status(&s);
                            g.status = Some(s);
                        }
                    }
                    N::Deleted => g.deleted |= boolean(text).unwrap_or(false),
                    _ => {}
                }
            }
            Ctx::Unit(owner) => {
                let mut u = std::mem::take(&mut self.unit);
                u.name = non_empty(text);
                match owner {
                    Owner::Good => self.good.unit = Some(u),
                    Owner::Offer => self.offer.unit = Some(u),
                }
            }
            Ctx::GoodGroupId => {
                if let Some(id) = non_empty(text) {
                    self.good.groups.push(id);
                }
            }
            Ctx::ManufacturerName => self.good.manufacturer = non_empty(text),
            Ctx::PropValueField(_, n) => match n {
                N::Id => self.prop_value.id = text.trim().to_string(),
                _ => {
                    if let Some(v) = non_empty(text) {
                        self.prop_value.values.push(v);
                    }
                }
            },
            Ctx::PropValue(owner) => {
                let v = std::mem::take(&mut self.prop_value);
                if !v.id.is_empty() {
                    match owner {
                        Owner::Good => self.good.properties.push(v),
                        Owner::Offer => self.offer.properties.push(v),
                    }
                }
            }
            Ctx::NameValueField(_, _, n) => match n {
                N::Name => self.name_value.name = text.trim().to_string(),
                _ => self.name_value.value = text.trim().to_string(),
            },
            Ctx::NameValue(owner, list) => {
                let nv = std::mem::take(&mut self.name_value);
                if nv.name.is_empty() && nv.value.is_empty() {
                    return;
                }
                match (owner, list) {
                    (Owner::Good, N::Requisites) => {
                        if self.good.full_name.is_none()
                            && nv.name == "Полное наименование"
                            && !nv.value.is_empty()
                        {
                            self.good.full_name = Some(nv.value.clone());
                        }
                        self.good.requisites.push(nv)
                    }
                    (Owner::Good, N::Taxes) => self.good.taxes.push(nv),
                    (Owner::Good, _) => self.good.characteristics.push(nv),
                    (Owner::Offer, _) => self.offer.characteristics.push(nv),
                }
            }
            Ctx::Good => {
                let g = std::mem::take(&mut self.good);
                if !g.id.is_empty() {
                    self.out.push_back(Item::Good(g));
                }
            }
            Ctx::OfferField(n) => {
                let o = &mut self.offer;
                match n {
                    N::Id => o.id = text.trim().to_string(),
                    N::Article => o.article = non_empty(text),
                    N::Name => o.name = non_empty(text),
                    N::Barcode => o.barcode = non_empty(text),
                    N::Quantity => o.quantity = non_empty(text).map(|q| decimal_or_raw(&q)),
                    N::Status => {
                        if let Some(s) = non_empty(text) {
                            o.deleted |= is_deleted_status(&s);
                            o.status = Some(s);
                        }
                    }
                    N::Deleted => o.deleted |= boolean(text).unwrap_or(false),
                    N::CharId => self.char_id = non_empty(text),
                    _ => {}
                }
            }
            Ctx::PriceField(n) => {
                let p = &mut self.price;
                match n {
                    N::Presentation => p.presentation = non_empty(text),
                    N::PriceTypeId => p.price_type_id = text.trim().to_string(),
                    N::PricePerUnit => p.value = decimal_or_raw(text),
                    N::Currency => p.currency = non_empty(text),
                    N::Unit => p.unit = non_empty(text),
                    N::Coefficient => p.coefficient = non_empty(text).map(|c| decimal_or_raw(&c)),
                    _ => {}
                }
            }
            Ctx::Price => {
                let p = std::mem::take(&mut self.price);
                if !p.price_type_id.is_empty() {
                    self.offer.prices.get_or_insert_with(Vec::new).push(p);
                }
            }
            Ctx::RestWarehouseField(n) => match n {
                N::Id => self.stock.warehouse_id = text.trim().to_string(),
                _ => self.stock.quantity = decimal_or_raw(text),
            },
            Ctx::RestWarehouse => {
                let mut s = std::mem::take(&mut self.stock);
                if !s.warehouse_id.is_empty() {
                    if s.quantity.is_empty() {
                        s.quantity = "0".into();
                    }
                    self.offer.stock.get_or_insert_with(Vec::new).push(s);
                }
            }
            Ctx::RestQuantity => {
                if let Some(q) = non_empty(text) {
                    self.offer.quantity = Some(decimal_or_raw(&q));
                }
            }
            Ctx::Offer => {
                let mut o = std::mem::take(&mut self.offer);
                if let Some(ch) = self.char_id.take() {
                    if !o.id.contains('#') {
                        o.id = format!("{}#{ch}", o.id);
                    }
                }
                if !o.id.is_empty() {
                    self.out.push_back(Item::Offer(o));
                }
            }
            Ctx::DocField(n) => {
                let d = &mut self.document;
                match n {
                    N::Id => d.id = non_empty(text),
                    N::Number => d.number = non_empty(text),
                    N::Date => d.date = non_empty(text).map(|t| datetime(&t).unwrap_or(t)),
                    N::Operation => d.operation = non_empty(text),
                    _ => {}
                }
            }
            Ctx::Document => {
                let d = std::mem::take(&mut self.document);
                self.out.push_back(Item::Document(d));
            }
            _ => {}
        }
    }
}

/// What to do after a start tag.
enum Next {
    Continue,
    /// Skip the element's content (an element the reader has no use for).
    Skip,
}

/// Everything but the XML parser, so that both can be borrowed at once.
struct Core {
    text: String,
    b: Builder,
    stack: Vec<Ctx>,
    header: Header,
    /// Element depth (all elements, including skipped ones).
    depth: usize,
    root_seen: bool,
    root_closed: bool,
    /// The root element's local name, for "the file ends inside <…>".
    root_name: String,
}

impl Core {
    fn start(
        &mut self,
        e: &BytesStart<'_>,
        empty: bool,
        encoding: &'static encoding_rs::Encoding,
    ) -> Result<Next, InvalidKind> {
        if !empty {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(InvalidKind::TooDeep(MAX_DEPTH));
            }
        }
        let local = e.local_name();
        let n = classify(local.as_ref());
        let ctx = match self.stack.last() {
            Some(&parent) => child(parent, n),
            None if !self.root_seen => {
                self.root_seen = true;
                self.root_name = e.name().as_ref().to_string();
                if n != N::Root {
                    return Err(not_commerceml(&self.root_name, encoding));
                }
                self.read_header(e, encoding);
                Some(Ctx::Root)
            }
            // Content after the root element: not ours.
            None => None,
        };
        let Some(ctx) = ctx else {
            return Ok(if empty { Next::Continue } else { Next::Skip });
        };
        self.b.start(ctx, e);
        if empty {
            self.b.end(ctx, "");
            if ctx == Ctx::Root {
                self.root_closed = true;
            }
        } else {
            self.stack.push(ctx);
        }
        Ok(Next::Continue)
    }

    fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if let Some(ctx) = self.stack.pop() {
            self.b.end(ctx, &self.text);
            if ctx == Ctx::Root {
                self.root_closed = true;
            }
        }
    }

    fn read_header(&mut self, e: &BytesStart<'_>, encoding: &'static encoding_rs::Encoding) {
        let h = &mut self.header;
        h.encoding = encoding.name().to_string();
        h.schema_version = attr_value(e, "ВерсияСхемы").and_then(|v| non_empty(&v));
        h.generated_at = attr_value(e, "ДатаФормирования")
            .and_then(|v| non_empty(&v))
            .map(|v| datetime(&v).unwrap_or(v));
        // The namespace bound to the root's prefix (or the default one).
        let name = e.name();
        let prefix = name.prefix().map(|p| p.as_ref().to_string());
        for a in e.attributes().with_checks(false).flatten() {
            let key = a.key.as_ref();
            let hit = match &prefix {
                Some(p) => key.strip_prefix("xmlns:") == Some(p.as_str()),
                None => key == "xmlns",
            };
            if hit {
                h.namespace = non_empty(&a.value);
            }
        }
        self.b.out.push_back(Item::Header(h.clone()));
    }
}

/// The error for a root that is not `КоммерческаяИнформация`; when a file declared in a
/// single-byte encoding has the right root name written in UTF-8, say that instead.
fn not_commerceml(root: &str, encoding: &'static encoding_rs::Encoding) -> InvalidKind {
    if encoding != encoding_rs::UTF_8 {
        let (raw, _, _) = encoding.encode(root);
        if let Ok(s) = std::str::from_utf8(&raw) {
            let local = s.rsplit(':').next().unwrap_or(s);
            if local == "КоммерческаяИнформация" {
                return InvalidKind::DeclaredButUtf8 {
                    declared: encoding.name().to_string(),
                };
            }
        }
    }
    InvalidKind::NotCommerceMl {
        root: root.to_string(),
    }
}

/// The streaming reader. See the module documentation.
pub struct CmlReader<R: Read> {
    xml: quick_xml::Reader<Source<R>>,
    buf: Vec<u8>,
    core: Core,
    /// Offset (decoded stream) where the last event started.
    event_start: u64,
    done: bool,
}

impl CmlReader<File> {
    /// Open a file for reading.
    pub fn open(path: &Path) -> Result<Self, CmlError> {
        Ok(Self::new(File::open(path)?))
    }
}

impl<R: Read> CmlReader<R> {
    /// Read from any byte source (it is buffered inside: no need for a `BufReader`).
    pub fn new(reader: R) -> Self {
        let mut xml = quick_xml::Reader::from_reader(Source::new(reader));
        let config = xml.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        CmlReader {
            xml,
            buf: Vec::with_capacity(4096),
            core: Core {
                text: String::with_capacity(1024),
                b: Builder::default(),
                stack: Vec::with_capacity(32),
                header: Header {
                    encoding: "UTF-8".into(),
                    ..Header::default()
                },
                depth: 0,
                root_seen: false,
                root_closed: false,
                root_name: String::new(),
            },
            event_start: 0,
            done: false,
        }
    }

    /// Raw input bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.xml.get_ref().raw_bytes()
    }

    /// Root attributes; filled once the first item (`Item::Header`) has been read.
    pub fn header(&self) -> &Header {
        &self.core.header
    }

    /// The next item, `None` at the end of the document.
    pub fn next_item(&mut self) -> Result<Option<Item>, CmlError> {
        loop {
            if let Some(item) = self.core.b.out.pop_front() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            if let Err(e) = self.step() {
                self.done = true;
                self.core.b.out.clear();
                return Err(e);
            }
        }
    }

    fn invalid_at(&self, offset: u64, kind: InvalidKind) -> CmlError {
        let (line, column) = self.xml.get_ref().position(offset);
        CmlError::Invalid { line, column, kind }
    }

    /// Turn a quick-xml error into ours, with the position in the original file.
    fn xml_error(&self, e: quick_xml::Error) -> CmlError {
        if let Some(p) = self.xml.get_ref().problem() {
            return match p.clone() {
                SourceProblem::InvalidBytes {
                    encoding,
                    declared,
                    likely,
                    offset,
                } => self.invalid_at(
                    offset,
                    InvalidKind::WrongEncoding {
                        encoding: encoding.to_string(),
                        declared,
                        likely: likely.map(str::to_string),
                    },
                ),
                SourceProblem::DeclaredButUtf8 {
                    declared,
                    line,
                    column,
                } => CmlError::Invalid {
                    line,
                    column,
                    kind: InvalidKind::DeclaredButUtf8 { declared },
                },
                SourceProblem::CutCharacter { offset } => {
                    self.invalid_at(offset, InvalidKind::CutCharacter)
                }
                SourceProblem::UnknownEncoding { label } => CmlError::Invalid {
                    line: 1,
                    column: 1,
                    kind: InvalidKind::UnknownEncoding(label),
                },
            };
        }
        let kind = match e {
            quick_xml::Error::Io(io) => {
                return CmlError::Io(std::io::Error::new(io.kind(), io.to_string()));
            }
            quick_xml::Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
                InvalidKind::MismatchedEndTag { expected, found }
            }
            quick_xml::Error::IllFormed(IllFormedError::UnmatchedEndTag(n)) => {
                InvalidKind::UnmatchedEndTag(n)
            }
            quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(open)) => {
                InvalidKind::UnexpectedEof { open }
            }
            quick_xml::Error::Syntax(SyntaxError::UnclosedTag) => {
                InvalidKind::Syntax("unclosed tag".into())
            }
            other => InvalidKind::Syntax(other.to_string()),
        };
        self.invalid_at(self.xml.error_position(), kind)
    }

    /// Read events up to and including the next start or end tag (or the end of the input),
    /// gathering text into `core.text`, and act on the tag.
    fn step(&mut self) -> Result<(), CmlError> {
        let core = &mut self.core;
        core.text.clear();
        loop {
            self.buf.clear();
            self.event_start = self.xml.buffer_position();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.xml_error(e)),
            };
            let encoding = self.xml.get_ref().encoding();
            let outcome = match ev {
                Event::Start(e) => core.start(&e, false, encoding),
                Event::Empty(e) => core.start(&e, true, encoding),
                Event::End(_) => {
                    core.end();
                    Ok(Next::Continue)
                }
                Event::Text(t) => {
                    core.text.push_str(&t);
                    continue;
                }
                Event::CData(t) => {
                    core.text.push_str(&t);
                    continue;
                }
                Event::GeneralRef(r) => {
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => {
                                core.text.push(c);
                                continue;
                            }
                            _ => Err(InvalidKind::Syntax(format!(
                                "invalid character reference &{};",
                                &*r
                            ))),
                        }
                    } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                        core.text.push_str(s);
                        continue;
                    } else {
                        Err(InvalidKind::UnknownEntity(r.to_string()))
                    }
                }
                Event::DocType(d) => {
                    if d.contains("ENTITY") {
                        Err(InvalidKind::EntitiesRefused)
                    } else {
                        continue;
                    }
                }
                Event::Eof => {
                    self.done = true;
                    if !core.root_seen {
                        Err(InvalidKind::NoRoot)
                    } else if !core.root_closed {
                        Err(InvalidKind::UnexpectedEof {
                            open: core.root_name.clone(),
                        })
                    } else {
                        Ok(Next::Continue)
                    }
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
            };
            return match outcome {
                Ok(Next::Continue) => {
                    if self.core.root_closed {
                        // Whatever follows the root element is not read.
                        self.done = true;
                    }
                    Ok(())
                }
                Ok(Next::Skip) => self.skip(),
                Err(kind) => Err(self.invalid_at(self.event_start, kind)),
            };
        }
    }

    /// Skip the content of the element just opened, by depth counting.
    fn skip(&mut self) -> Result<(), CmlError> {
        let mut depth = 1usize;
        loop {
            self.buf.clear();
            self.event_start = self.xml.buffer_position();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.xml_error(e)),
            };
            match ev {
                Event::Start(_) => {
                    depth += 1;
                    if self.core.depth + depth > MAX_DEPTH + 1 {
                        return Err(
                            self.invalid_at(self.event_start, InvalidKind::TooDeep(MAX_DEPTH))
                        );
                    }
                }
                Event::End(_) => {
                    depth -= 1;
                    if depth == 0 {
                        self.core.depth -= 1;
                        return Ok(());
                    }
                }
                Event::Eof => {
                    let open = self.core.root_name.clone();
                    return Err(
                        self.invalid_at(self.event_start, InvalidKind::UnexpectedEof { open })
                    );
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(xml: &[u8]) -> Result<Vec<Item>, CmlError> {
        let mut r = CmlReader::new(xml);
        let mut out = Vec::new();
        while let Some(i) = r.next_item()? {
            out.push(i);
        }
        Ok(out)
    }

    fn goods(xml: &[u8]) -> Vec<Good> {
        items(xml)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Good(g) => Some(g),
                _ => None,
            })
            .collect()
    }

    fn offers(xml: &[u8]) -> Vec<Offer> {
        items(xml)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Offer(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    const CATALOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.07" ДатаФормирования="2014-06-01T0:36:33">
<Классификатор><Ид>c1</Ид><Наименование>Кл</Наименование>
<Группы><Группа><Ид>g1</Ид><Наименование>Верх</Наименование>
<Группы><Группа><Ид>g2</Ид><Наименование>Низ</Наименование></Группа></Группы></Группа>
<Группа><Ид>g3</Ид><Наименование>Второй</Наименование></Группа></Группы>
<Свойства><Свойство><Ид>p1</Ид><Наименование>Цвет</Наименование><ТипЗначений>Справочник</ТипЗначений>
<ВариантыЗначений><Справочник><ИдЗначения>v1</ИдЗначения><Значение>Красный</Значение></Справочник></ВариантыЗначений></Свойство></Свойства>
</Классификатор>
<Каталог СодержитТолькоИзменения="false"><Ид>k1</Ид><ИдКлассификатора>c1</ИдКлассификатора><Наименование>Каталог</Наименование>
<Владелец><Ид>o</Ид><Наименование>ООО &quot;Ромашка&quot;</Наименование></Владелец>
<Товары><Товар Статус="Удален"><Ид>t1</Ид><Артикул> A&amp;B </Артикул><Наименование>Чай &#171;Слон&#187; &#x2116;1</Наименование>
<БазоваяЕдиница Код="796 " НаименованиеПолное="Штука">шт</БазоваяЕдиница><Группы><Ид>g2</Ид></Группы>
<Картинка>import_files\a\b.jpg</Картинка><Картинка>import_files/c.png</Картинка>
<ЗначенияСвойств><ЗначенияСвойства><Ид>p1</Ид><Значение>v1</Значение></ЗначенияСвойства></ЗначенияСвойств>
<ЗначенияРеквизитов><ЗначениеРеквизита><Наименование>Полное наименование</Наименование><Значение>Чай полный</Значение></ЗначениеРеквизита></ЗначенияРеквизитов>
<СтавкиНалогов><СтавкаНалога><Наименование>НДС</Наименование><Ставка>20</Ставка></СтавкаНалога></СтавкиНалогов>
<Изготовитель><Ид>m</Ид><Наименование>Завод</Наименование></Изготовитель><Вес>0,250</Вес>
<Неизвестное><Глубоко><Ещё>x</Ещё></Глубоко></Неизвестное>
</Товар></Товары></Каталог></КоммерческаяИнформация>
"#;

    #[test]
    fn reads_a_catalog() {
        let all = items(CATALOG.as_bytes()).unwrap();
        let Item::Header(h) = &all[0] else {
            panic!("{:?}", all[0])
        };
        assert_eq!(h.schema_version.as_deref(), Some("2.07"));
        assert_eq!(h.generated_at.as_deref(), Some("2014-06-01T00:36:33"));
        assert_eq!(h.namespace.as_deref(), Some("urn:1C.ru:commerceml_2"));
        let groups: Vec<(String, Option<String>)> = all
            .iter()
            .filter_map(|i| match i {
                Item::Group(g) => Some((g.id.clone(), g.parent_id.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                ("g1".into(), None),
                ("g2".into(), Some("g1".into())),
                ("g3".into(), None)
            ]
        );
        let Some(Item::Property(p)) = all.iter().find(|i| matches!(i, Item::Property(_))) else {
            panic!()
        };
        assert_eq!(p.variants[0].id.as_deref(), Some("v1"));
        assert_eq!(p.variants[0].value, "Красный");
        let sections: Vec<&Item> = all
            .iter()
            .filter(|i| matches!(i, Item::SectionStart(_)))
            .collect();
        let Item::SectionStart(cat) = sections[1] else {
            panic!()
        };
        assert_eq!(cat.kind, SectionKind::Catalog);
        assert_eq!(cat.id.as_deref(), Some("k1"));
        assert_eq!(cat.classifier_id.as_deref(), Some("c1"));
        assert_eq!(cat.only_changes, Some(false));
        let g = &goods(CATALOG.as_bytes())[0];
        assert_eq!(g.article.as_deref(), Some("A&B"));
        assert_eq!(g.name.as_deref(), Some("Чай «Слон» №1"));
        assert_eq!(g.full_name.as_deref(), Some("Чай полный"));
        assert!(g.deleted);
        assert_eq!(g.status.as_deref(), Some("Удален"));
        let u = g.unit.as_ref().unwrap();
        assert_eq!(u.code.as_deref(), Some("796"));
        assert_eq!(u.name.as_deref(), Some("шт"));
        assert_eq!(u.full_name.as_deref(), Some("Штука"));
        assert_eq!(g.groups, vec!["g2"]);
        assert_eq!(g.images, vec!["import_files/a/b.jpg", "import_files/c.png"]);
        assert_eq!(g.properties[0].values, vec!["v1"]);
        assert_eq!(g.taxes[0].value, "20");
        assert_eq!(g.manufacturer.as_deref(), Some("Завод"));
        assert_eq!(g.weight.as_deref(), Some("0.25"));
    }

    #[test]
    fn prefixed_and_other_namespaces() {
        for (open, close) in [
            (
                "<cml:КоммерческаяИнформация xmlns:cml=\"urn:1C.ru:commerceml_210\" ВерсияСхемы=\"2.10\">",
                "</cml:КоммерческаяИнформация>",
            ),
            (
                "<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_3\" ВерсияСхемы=\"3.1\">",
                "</КоммерческаяИнформация>",
            ),
        ] {
            let p = if open.starts_with("<cml:") { "cml:" } else { "" };
            let xml = format!(
                "{open}<{p}Каталог><{p}Товары><{p}Товар><{p}Ид>x</{p}Ид></{p}Товар></{p}Товары></{p}Каталог>{close}"
            );
            let g = goods(xml.as_bytes());
            assert_eq!(g.len(), 1, "{xml}");
            assert_eq!(g[0].id, "x");
        }
    }

    #[test]
    fn offers_in_every_stock_form() {
        let xml = r#"<КоммерческаяИнформация ВерсияСхемы="2.05">
<ПакетПредложений><Ид>p</Ид><СодержитТолькоИзменения>true</СодержитТолькоИзменения>
<ТипыЦен><ТипЦены><Ид>pt</Ид><Наименование>Розница</Наименование><Валюта>RUB</Валюта><Налог><Наименование>НДС</Наименование><УчтеноВСумме>true</УчтеноВСумме></Налог></ТипЦены></ТипыЦен>
<Предложения>
<Предложение><Ид>a#1</Ид><Цены><Цена><ИдТипаЦены>pt</ИдТипаЦены><ЦенаЗаЕдиницу>1 500,50</ЦенаЗаЕдиницу><Коэффициент>1</Коэффициент></Цена></Цены>
<Количество>5</Количество><Склад ИдСклада="w1" КоличествоНаСкладе="2"/><Склад ИдСклада="w2" КоличествоНаСкладе="3,000"/></Предложение>
<Предложение><Ид>b</Ид><Остатки><Остаток><Склад><Ид>w1</Ид><Количество>7</Количество></Склад></Остаток></Остатки></Предложение>
<Предложение><Ид>c</Ид><Остатки><Остаток><Количество>9.50</Количество></Остаток></Остатки></Предложение>
</Предложения></ПакетПредложений></КоммерческаяИнформация>"#;
        let all = items(xml.as_bytes()).unwrap();
        assert!(matches!(&all[1], Item::SectionStart(s) if s.only_changes == Some(true)));
        let Some(Item::PriceType(pt)) = all.iter().find(|i| matches!(i, Item::PriceType(_))) else {
            panic!()
        };
        assert_eq!(pt.tax_included, Some(true));
        let o = offers(xml.as_bytes());
        assert_eq!(o[0].good_id(), "a");
        assert_eq!(o[0].prices.as_ref().unwrap()[0].value, "1500.5");
        assert_eq!(o[0].quantity.as_deref(), Some("5"));
        let st = o[0].stock.as_ref().unwrap();
        assert_eq!(
            (st[1].warehouse_id.as_str(), st[1].quantity.as_str()),
            ("w2", "3")
        );
        assert!(o[0].prices.is_some() && o[1].prices.is_none());
        assert_eq!(o[1].stock.as_ref().unwrap()[0].quantity, "7");
        assert_eq!(o[2].quantity.as_deref(), Some("9.5"));
        assert!(o[2].stock.is_none());
    }

    #[test]
    fn offer_changes_and_containers() {
        let xml = r#"<КоммерческаяИнформация ВерсияСхемы="2.10">
<ИзмененияПакетаПредложений><Ид>p</Ид><Предложения><Предложение><Ид>g</Ид><ИдХарактеристики>c</ИдХарактеристики>
<Склады ИдСклада="w" КоличествоНаСкладе="4"/></Предложение></Предложения></ИзмененияПакетаПредложений>
<Контейнер><Документ><Ид>d1</Ид><Номер>1</Номер><Дата>2024-01-02</Дата><ХозОперация>Заказ товара</ХозОперация>
<Товары><Товар><Ид>not-a-good</Ид></Товар></Товары></Документ></Контейнер>
</КоммерческаяИнформация>"#;
        let all = items(xml.as_bytes()).unwrap();
        assert!(
            matches!(&all[1], Item::SectionStart(s) if s.kind == SectionKind::OfferChanges && s.only_changes == Some(true))
        );
        let o = offers(xml.as_bytes());
        assert_eq!(o[0].id, "g#c");
        assert_eq!(o[0].stock.as_ref().unwrap()[0].quantity, "4");
        assert!(goods(xml.as_bytes()).is_empty());
        let Some(Item::Document(d)) = all.iter().find(|i| matches!(i, Item::Document(_))) else {
            panic!()
        };
        assert_eq!(d.date.as_deref(), Some("2024-01-02T00:00:00"));
        assert_eq!(d.number.as_deref(), Some("1"));
    }

    fn error(xml: &[u8]) -> CmlError {
        items(xml).expect_err("must fail")
    }

    #[test]
    fn malformed_xml_has_line_and_column() {
        let xml = "<КоммерческаяИнформация>\n<Каталог><Товары>\n<Товар><Ид>1</Ид></Товар>\n  <Товар><Ид>2</Ид><Наименование>x</Артикул></Товар>\n</Товары></Каталог></КоммерческаяИнформация>";
        let e = error(xml.as_bytes());
        assert_eq!(e.position().map(|p| p.0), Some(4), "{e:?}");
        let ru = e.describe(Lang::Ru);
        assert!(
            ru.ends_with(&format!("строка 4, столбец {}", e.position().unwrap().1)),
            "{ru}"
        );
        assert!(ru.contains("Артикул"), "{ru}");
        assert!(e.describe(Lang::En).contains("line 4"));
    }

    #[test]
    fn cut_file_is_an_error() {
        let e = error("<КоммерческаяИнформация><Каталог><Товары><Товар><Ид>1".as_bytes());
        assert!(
            matches!(
                e.kind(),
                Some(InvalidKind::UnexpectedEof { .. }) | Some(InvalidKind::Syntax(_))
            ),
            "{e:?}"
        );
    }

    #[test]
    fn wrong_root_is_not_commerceml() {
        let e = error(b"<?xml version=\"1.0\"?>\n<html></html>");
        assert!(matches!(e.kind(), Some(InvalidKind::NotCommerceMl { root }) if root == "html"));
        assert_eq!(e.position(), Some((2, 1)));
    }

    #[test]
    fn windows_1251_is_decoded_and_positions_are_original() {
        let text = "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<КоммерческаяИнформация ВерсияСхемы=\"2.04\"><Каталог><Товары>\n<Товар><Ид>1</Ид><Наименование>Чай</Наименование></Товар>\n<Товар><Ид>2</Ид></Товары>";
        let (raw, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let mut r = CmlReader::new(&raw[..]);
        let mut names = Vec::new();
        let err = loop {
            match r.next_item() {
                Ok(Some(Item::Good(g))) => names.push(g.name),
                Ok(Some(_)) => {}
                Ok(None) => panic!("must fail"),
                Err(e) => break e,
            }
        };
        assert_eq!(names, vec![Some("Чай".to_string())]);
        assert_eq!(r.header().encoding, "windows-1251");
        // `</Товары>` on line 4 after `<Товар><Ид>2</Ид>` (17 characters).
        assert_eq!(err.position(), Some((4, 18)), "{err:?}");
    }

    #[test]
    fn windows_1251_declared_utf8_is_refused() {
        let text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<КоммерческаяИнформация/>";
        let (raw, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let e = error(&raw);
        let ru = e.describe(Lang::Ru);
        assert!(ru.contains("UTF-8") && ru.contains("windows-1251"), "{ru}");
        assert_eq!(e.position(), Some((2, 2)));
    }

    #[test]
    fn utf8_declared_windows_1251_is_refused() {
        let text = "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<КоммерческаяИнформация/>";
        let e = error(text.as_bytes());
        assert!(
            matches!(e.kind(), Some(InvalidKind::DeclaredButUtf8 { .. })),
            "{e:?}"
        );
        assert!(e.describe(Lang::Ru).contains("UTF-8"));
    }

    #[test]
    fn entities_are_refused_never_expanded() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [\n<!ENTITY a \"aaaa\">\n<!ENTITY b \"&a;&a;&a;\">\n]>\n<КоммерческаяИнформация>&b;</КоммерческаяИнформация>";
        let e = error(xml.as_bytes());
        assert_eq!(e.kind(), Some(&InvalidKind::EntitiesRefused));
        let e = error("<КоммерческаяИнформация>&nope;</КоммерческаяИнформация>".as_bytes());
        assert!(matches!(e.kind(), Some(InvalidKind::UnknownEntity(n)) if n == "nope"));
    }

    #[test]
    fn too_deep_is_refused() {
        let mut xml = String::from("<КоммерческаяИнформация>");
        for _ in 0..(MAX_DEPTH + 5) {
            xml.push_str("<a>");
        }
        let e = error(xml.as_bytes());
        assert_eq!(e.kind(), Some(&InvalidKind::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn a_file_cut_inside_a_character_is_reported_as_cut_short() {
        // "…Пр" with the last byte of "р" missing.
        let mut raw = "<КоммерческаяИнформация>Пр".as_bytes().to_vec();
        raw.pop();
        assert_eq!(error(&raw).kind(), Some(&InvalidKind::CutCharacter));
        // An invalid byte in the middle is still an encoding problem.
        let mut raw = "<КоммерческаяИнформация>".as_bytes().to_vec();
        raw.extend_from_slice(b"\xff</x>");
        let e = error(&raw);
        assert!(
            matches!(e.kind(), Some(InvalidKind::WrongEncoding { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(error(b"").kind(), Some(&InvalidKind::NoRoot));
        assert_eq!(error(b"   \n").kind(), Some(&InvalidKind::NoRoot));
    }

    #[test]
    fn only_changes_child_after_section_start() {
        let xml = "<КоммерческаяИнформация><Каталог><Ид>k</Ид><Товары/><СодержитТолькоИзменения>true</СодержитТолькоИзменения></Каталог></КоммерческаяИнформация>";
        let all = items(xml.as_bytes()).unwrap();
        assert!(all.contains(&Item::OnlyChanges(true)), "{all:?}");
        let xml = "<КоммерческаяИнформация><Каталог><Ид>k</Ид><СодержитТолькоИзменения>истина</СодержитТолькоИзменения><Товары/></Каталог></КоммерческаяИнформация>";
        let all = items(xml.as_bytes()).unwrap();
        assert!(matches!(&all[1], Item::SectionStart(s) if s.only_changes == Some(true)));
    }
}
