//! `obmen gen-catalog`: a deterministic generator of realistic CommerceML 2.07 catalogs
//! (UT 11 style: UTF-8 with BOM, default namespace) for benchmarks and end-to-end tests.
//!
//! Writes `import.xml` (Классификатор with nested groups, properties incl. Справочник with
//! values, price types, warehouses; Каталог with goods), `offers.xml` (ПакетПредложений with
//! plain offers and variants `goodId#charId`, several prices per offer, stock per warehouse),
//! optionally `import_files/…` images, and `expected.json` with the counts the summary API must
//! report. Same seed and size → byte-identical files. Every good is derived from its own RNG
//! stream (seed, index), so both files are written in one streaming pass each with flat memory.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub goods: u64,
    pub seed: u64,
    pub images: bool,
}

/// A price as the API must report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedPrice {
    pub price_type_id: String,
    pub price_type: String,
    pub value: String,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedStock {
    pub warehouse_id: String,
    pub quantity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedOffer {
    pub id: String,
    pub good_id: String,
    pub article: String,
    pub name: String,
    pub quantity: String,
    pub prices: Vec<ExpectedPrice>,
    pub stock: Vec<ExpectedStock>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedGood {
    pub id: String,
    pub article: String,
    pub name: String,
    pub groups: Vec<String>,
    pub images: Vec<String>,
    pub deleted: bool,
    pub offers: Vec<String>,
}

/// `expected.json`: what `GET /api/v1/catalog/summary` must report after importing the files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expected {
    pub goods: u64,
    pub offers: u64,
    pub groups: u64,
    pub properties: u64,
    pub price_types: u64,
    pub warehouses: u64,
    pub deleted_goods: u64,
    /// Sum of all per-warehouse quantities, as a decimal string.
    pub stock_total: String,
    pub sample_offers: Vec<ExpectedOffer>,
    pub sample_goods: Vec<ExpectedGood>,
    pub seed: u64,
    pub images: u64,
    pub import_bytes: u64,
    pub offers_bytes: u64,
}

/// The generator's report (printed as one JSON line by the CLI).
#[derive(Debug, Clone, Serialize)]
pub struct GenReport {
    pub dir: String,
    pub goods: u64,
    pub offers: u64,
    pub import_bytes: u64,
    pub offers_bytes: u64,
    pub images: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fast, portable PRNG (xorshift64* seeded through splitmix).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, index: u64) -> Rng {
        let s = splitmix(splitmix(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index);
        Rng(if s == 0 { 0x1234_5678 } else { s })
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// Streams: each kind of entity has its own RNG stream.
const S_GOOD: u64 = 1;
const S_GOOD_ID: u64 = 2;
const S_CHAR_ID: u64 = 3;
const S_GROUP: u64 = 4;
const S_PROP: u64 = 5;
const S_VALUE: u64 = 6;
const S_MISC: u64 = 7;
const S_IMAGE: u64 = 8;

/// A GUID as 1C writes it (lowercase, 8-4-4-4-12), derived from (seed, stream, index).
#[derive(Clone, Copy)]
struct Guid([u8; 36]);

impl Guid {
    fn new(seed: u64, stream: u64, index: u64) -> Guid {
        let a = splitmix(seed ^ splitmix(stream.wrapping_add(index.wrapping_mul(0x9E37))));
        let b = splitmix(a ^ index ^ 0x5555_AAAA);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0F) | 0x40;
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut o = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                o += 1;
            }
            out[o] = HEX[(byte >> 4) as usize];
            out[o + 1] = HEX[(byte & 15) as usize];
            o += 2;
        }
        Guid(out)
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

// ---------------------------------------------------------------------------------------------
// Output buffer

struct Out {
    file: File,
    buf: Vec<u8>,
    bytes: u64,
}

impl Out {
    fn create(path: &Path) -> std::io::Result<Out> {
        Ok(Out {
            file: File::create(path)?,
            buf: Vec::with_capacity(2 << 20),
            bytes: 0,
        })
    }
    #[inline]
    fn s(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(s.as_bytes());
        self
    }
    #[inline]
    fn g(&mut self, g: &Guid) -> &mut Self {
        self.buf.extend_from_slice(&g.0);
        self
    }
    #[inline]
    fn u(&mut self, mut n: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&tmp[i..]);
        self
    }
    /// A fixed-point number with `scale` decimals, all decimals written (`1234.50`).
    fn fixed(&mut self, v: u64, scale: u32) -> &mut Self {
        let p = 10u64.pow(scale);
        self.u(v / p);
        if scale > 0 {
            self.buf.push(b'.');
            let mut frac = v % p;
            let mut div = p / 10;
            while div > 0 {
                self.buf.push(b'0' + (frac / div) as u8);
                frac %= div;
                div /= 10;
            }
        }
        self
    }
    /// A quantity in thousandths, normalised (`12`, `2.5`), as [`milli_str`] writes it.
    fn milli(&mut self, v: u64) -> &mut Self {
        self.u(v / 1000);
        let mut f = v % 1000;
        if f != 0 {
            self.buf.push(b'.');
            let mut div = 100;
            while f != 0 {
                self.buf.push(b'0' + (f / div) as u8);
                f %= div;
                div /= 10;
            }
        }
        self
    }
    /// XML-escaped text.
    fn esc(&mut self, s: &str) -> &mut Self {
        for b in s.bytes() {
            match b {
                b'&' => self.buf.extend_from_slice(b"&amp;"),
                b'<' => self.buf.extend_from_slice(b"&lt;"),
                b'>' => self.buf.extend_from_slice(b"&gt;"),
                b'"' => self.buf.extend_from_slice(b"&quot;"),
                _ => self.buf.push(b),
            }
        }
        self
    }
    fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
    fn finish(mut self) -> std::io::Result<u64> {
        self.flush()?;
        Ok(self.bytes)
    }
}

/// A quantity in thousandths as a normalised decimal string (`12`, `2.5`, `0.125`).
fn milli_str(v: u64) -> String {
    let (i, f) = (v / 1000, v % 1000);
    if f == 0 {
        i.to_string()
    } else {
        format!("{i}.{:03}", f).trim_end_matches('0').to_string()
    }
}

fn kop_str(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const KINDS: &[&str] = &[
    "Футболка",
    "Куртка",
    "Кроссовки",
    "Рюкзак",
    "Чайник электрический",
    "Кабель USB-C <-> USB-A",
    "Смартфон",
    "Наушники беспроводные",
    "Сковорода",
    "Кресло офисное",
    "Лампа настольная",
    "Дрель аккумуляторная",
    "Набор отверток",
    "Пылесос",
    "Гель для душа",
    "Корм для кошек",
    "Шампунь",
    "Палатка туристическая",
    "Велосипед горный",
    "Шуруповерт",
];
const ADJ: &[&str] = &[
    "классическая модель",
    "премиум",
    "эконом",
    "новинка",
    "для дома",
    "профессиональный",
    "детский",
    "усиленный",
    "компактный",
    "универсальный",
];
const BRANDS: &[&str] = &[
    "Ромашка",
    "Smith & Sons",
    "Северный \"Ветер\"",
    "Технопром",
    "Уют",
    "Rex",
    "Байкал",
    "ЭлектроМир",
];
const COLORS: &[&str] = &[
    "Красный",
    "Синий",
    "Черный",
    "Белый",
    "Зеленый",
    "Серый",
    "Бежевый",
    "Желтый",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL", "3XL"];
const SENTENCES: &[&str] = &[
    "Изделие изготовлено из качественных материалов и прошло контроль на каждом этапе производства.",
    "Подходит для ежедневного использования дома, в офисе и в поездках.",
    "Эргономичная форма обеспечивает удобство и надежность при длительной работе.",
    "В комплект поставки входит инструкция по эксплуатации на русском языке и гарантийный талон.",
    "Гарантия производителя составляет двенадцать месяцев с даты продажи.",
    "Товар сертифицирован и соответствует требованиям технических регламентов Таможенного союза.",
    "Рекомендуется хранить в сухом месте при температуре от +5 до +25 °C.",
    "Упаковка выполнена из перерабатываемого картона & пленки.",
    "Цвет изделия может незначительно отличаться от изображения на сайте.",
    "Легко чистится влажной тканью без применения абразивных средств.",
    "Модель отличается сниженным энергопотреблением и низким уровнем шума.",
    "Покрытие устойчиво к царапинам, влаге и ультрафиолету.",
    "Размерная сетка соответствует российским стандартам; перед покупкой сверьтесь с таблицей размеров.",
    "Дизайн разработан в России, производство — на собственной фабрике.",
    "Вес нетто указан без учета упаковки, габариты — в собранном виде.",
    "Не предназначено для детей младше трех лет: содержит мелкие детали.",
];
const GROUP_WORDS: &[&str] = &[
    "Одежда",
    "Обувь",
    "Электроника",
    "Бытовая техника",
    "Инструменты",
    "Дом и сад",
    "Спорт и отдых",
    "Красота и здоровье",
    "Зоотовары",
    "Детские товары",
    "Аксессуары",
    "Мебель",
];
const STR_PROPS: &[&str] = &[
    "Материал",
    "Страна производства",
    "Модель",
    "Серия",
    "Комплектация",
    "Код ОЗОН",
    "Гарантия",
    "Сезон",
];
const NUM_PROPS: &[&str] = &[
    "Вес, кг",
    "Длина, см",
    "Ширина, см",
    "Высота, см",
    "Мощность, Вт",
    "Объем, л",
    "Количество в упаковке",
];
const REF_PROPS: &[&str] = &[
    "Бренд",
    "Цвет основной",
    "Назначение",
    "Пол",
    "Возрастная группа",
    "Тип упаковки",
    "Класс энергопотребления",
    "Стиль",
];
const PRICE_TYPES: &[(&str, u64)] = &[
    ("Розничная", 100),
    ("Оптовая", 85),
    ("Закупочная", 60),
    ("Интернет-магазин", 95),
];
const WAREHOUSES: &[&str] = &[
    "Основной склад",
    "Склад Москва (Южный порт)",
    "Склад Санкт-Петербург",
    "Склад Екатеринбург",
    "Розничный магазин №1",
];

/// A 1×1 JPEG (the smallest well-formed one).
const TINY_JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00, 0x03, 0x02, 0x02, 0x02, 0x02, 0x02, 0x03, 0x02, 0x02,
    0x02, 0x03, 0x03, 0x03, 0x03, 0x04, 0x06, 0x04, 0x04, 0x04, 0x04, 0x04, 0x08, 0x06, 0x06, 0x05,
    0x06, 0x09, 0x08, 0x0A, 0x0A, 0x09, 0x08, 0x09, 0x09, 0x0A, 0x0C, 0x0F, 0x0C, 0x0A, 0x0B, 0x0E,
    0x0B, 0x09, 0x09, 0x0D, 0x11, 0x0D, 0x0E, 0x0F, 0x10, 0x10, 0x11, 0x10, 0x0A, 0x0C, 0x12, 0x13,
    0x12, 0x10, 0x13, 0x0F, 0x10, 0x10, 0x10, 0xFF, 0xC9, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01,
    0x01, 0x01, 0x11, 0x00, 0xFF, 0xCC, 0x00, 0x06, 0x00, 0x10, 0x10, 0x05, 0xFF, 0xDA, 0x00, 0x08,
    0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0xD2, 0xCF, 0x20, 0xFF, 0xD9,
];

// ---------------------------------------------------------------------------------------------
// The catalog model (derived, never stored whole)

struct Shape {
    seed: u64,
    goods: u64,
    groups: u64,
    /// Parent of each group (`None` = top level).
    group_parent: Vec<Option<u32>>,
    props: Vec<Prop>,
    catalog: Guid,
    classifier: Guid,
    owner: Guid,
    price_types: Vec<Guid>,
    warehouses: Vec<Guid>,
    images: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum PropKind {
    Str,
    Num,
    Ref,
}

struct Prop {
    id: Guid,
    name: String,
    kind: PropKind,
    /// Справочник values: (value id, text).
    values: Vec<(Guid, String)>,
}

impl Shape {
    fn new(opts: &GenOptions) -> Shape {
        let seed = opts.seed;
        let groups = (opts.goods / 200).clamp(5, 5000);
        let mut r = Rng::new(seed, S_GROUP, 0);
        let top = (groups / 10).max(3).min(groups);
        let mut depth = vec![0u8; groups as usize];
        let mut group_parent = Vec::with_capacity(groups as usize);
        for j in 0..groups {
            if j < top {
                group_parent.push(None);
            } else {
                // A parent among the earlier groups, at most 4 levels deep.
                let mut p = r.below(j) as usize;
                while depth[p] >= 3 {
                    p = group_parent[p].unwrap_or(0) as usize;
                }
                depth[j as usize] = depth[p] + 1;
                group_parent.push(Some(p as u32));
            }
        }
        let mut props = Vec::new();
        let mut k = 0u64;
        let mut add = |name: &str, kind: PropKind, props: &mut Vec<Prop>| {
            let mut pr = Rng::new(seed, S_PROP, k);
            let values = if kind == PropKind::Ref {
                let n = 3 + pr.below(20);
                (0..n)
                    .map(|v| {
                        (
                            Guid::new(seed, S_VALUE, k * 1000 + v),
                            format!("{} {}", name, v + 1),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            props.push(Prop {
                id: Guid::new(seed, S_PROP, k),
                name: name.to_string(),
                kind,
                values,
            });
            k += 1;
        };
        for n in REF_PROPS {
            add(n, PropKind::Ref, &mut props);
        }
        for n in STR_PROPS {
            add(n, PropKind::Str, &mut props);
        }
        for n in NUM_PROPS {
            add(n, PropKind::Num, &mut props);
        }
        Shape {
            seed,
            goods: opts.goods,
            groups,
            group_parent,
            props,
            catalog: Guid::new(seed, S_MISC, 1),
            classifier: Guid::new(seed, S_MISC, 2),
            owner: Guid::new(seed, S_MISC, 3),
            price_types: (0..PRICE_TYPES.len() as u64)
                .map(|i| Guid::new(seed, S_MISC, 100 + i))
                .collect(),
            warehouses: (0..WAREHOUSES.len() as u64)
                .map(|i| Guid::new(seed, S_MISC, 200 + i))
                .collect(),
            images: opts.images,
        }
    }

    fn group_name(&self, j: u64) -> String {
        let w = GROUP_WORDS[(j % GROUP_WORDS.len() as u64) as usize];
        format!("{w} {}", j + 1)
    }
}

/// Everything about one good, derived from (seed, index).
struct GoodSpec {
    id: Guid,
    article: String,
    name: String,
    deleted_attr: bool,
    deleted_mark: bool,
    group: u64,
    extra_group: Option<u64>,
    barcode: u64,
    weight_unit: bool,
    /// Price in kopecks for the first price type.
    base_price: u64,
    /// Variants: (color, size) index pairs; empty = a plain offer.
    variants: Vec<(usize, usize)>,
    rng: Rng,
}

impl GoodSpec {
    fn new(shape: &Shape, i: u64) -> GoodSpec {
        let mut r = Rng::new(shape.seed, S_GOOD, i);
        let kind = *r.pick(KINDS);
        let adj = *r.pick(ADJ);
        let brand = *r.pick(BRANDS);
        let model = r.below(9000) + 1000;
        let name = format!("{kind} {brand} {adj} M{model}");
        let article = format!("AR-{:06}-{}", i + 1, r.below(100));
        let roll = r.below(1000);
        let (deleted_attr, deleted_mark) = (roll < 5, (5..10).contains(&roll));
        let group = r.below(shape.groups);
        let extra_group = r.chance(10).then(|| r.below(shape.groups));
        let barcode = 4_600_000_000_000 + r.below(100_000_000_000) / 10 * 10;
        let weight_unit = r.chance(5);
        let base_price = 5_000 + r.below(5_000_000);
        let mut variants = Vec::new();
        if !(deleted_attr || deleted_mark || weight_unit) && r.chance(20) {
            let n = 2 + r.below(4) as usize;
            let color = r.below(COLORS.len() as u64) as usize;
            let start = r.below((SIZES.len() - 1) as u64) as usize;
            for k in 0..n {
                variants.push((
                    (color + k / SIZES.len()) % COLORS.len(),
                    (start + k) % SIZES.len(),
                ));
            }
        }
        GoodSpec {
            id: Guid::new(shape.seed, S_GOOD_ID, i),
            article,
            name,
            deleted_attr,
            deleted_mark,
            group,
            extra_group,
            barcode,
            weight_unit,
            base_price,
            variants,
            rng: r,
        }
    }
    fn deleted(&self) -> bool {
        self.deleted_attr || self.deleted_mark
    }
    fn image_paths(&self, shape: &Shape, i: u64) -> Vec<String> {
        if !shape.images || self.deleted() {
            return Vec::new();
        }
        let n = 1 + (i % 2);
        (0..n)
            .map(|k| {
                let img = Guid::new(shape.seed, S_IMAGE, i * 4 + k);
                format!(
                    "import_files/{}/{}_{}.jpg",
                    &self.id.as_str()[..2],
                    self.id.as_str().replace('-', ""),
                    img.as_str().replace('-', "")
                )
            })
            .collect()
    }
}

const HEADER_ATTRS: &str = " xmlns=\"urn:1C.ru:commerceml_2\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2024-05-01T12:00:00\">\n";

fn write_owner(o: &mut Out, shape: &Shape, indent: &str) {
    o.s(indent).s("<Владелец>\n");
    o.s(indent).s("\t<Ид>").g(&shape.owner).s("</Ид>\n");
    o.s(indent)
        .s("\t<Наименование>ООО &quot;Ромашка &amp; Ко&quot;</Наименование>\n");
    o.s(indent).s("\t<ОфициальноеНаименование>Общество с ограниченной ответственностью &quot;Ромашка &amp; Ко&quot;</ОфициальноеНаименование>\n");
    o.s(indent).s("\t<ИНН>7701234567</ИНН>\n");
    o.s(indent).s("\t<КПП>770101001</КПП>\n");
    o.s(indent).s("</Владелец>\n");
}

fn write_price_types(o: &mut Out, shape: &Shape, indent: &str) {
    o.s(indent).s("<ТипыЦен>\n");
    for (k, (name, _)) in PRICE_TYPES.iter().enumerate() {
        o.s(indent).s("\t<ТипЦены>\n");
        o.s(indent)
            .s("\t\t<Ид>")
            .g(&shape.price_types[k])
            .s("</Ид>\n");
        o.s(indent)
            .s("\t\t<Наименование>")
            .esc(name)
            .s("</Наименование>\n");
        o.s(indent).s("\t\t<Валюта>руб</Валюта>\n");
        o.s(indent).s("\t\t<Налог>\n");
        o.s(indent).s("\t\t\t<Наименование>НДС</Наименование>\n");
        o.s(indent).s("\t\t\t<УчтеноВСумме>true</УчтеноВСумме>\n");
        o.s(indent).s("\t\t\t<Акциз>false</Акциз>\n");
        o.s(indent).s("\t\t</Налог>\n");
        o.s(indent).s("\t</ТипЦены>\n");
    }
    o.s(indent).s("</ТипыЦен>\n");
}

fn write_warehouses(o: &mut Out, shape: &Shape, indent: &str) {
    o.s(indent).s("<Склады>\n");
    for (k, name) in WAREHOUSES.iter().enumerate() {
        o.s(indent).s("\t<Склад>\n");
        o.s(indent)
            .s("\t\t<Ид>")
            .g(&shape.warehouses[k])
            .s("</Ид>\n");
        o.s(indent)
            .s("\t\t<Наименование>")
            .esc(name)
            .s("</Наименование>\n");
        o.s(indent).s("\t</Склад>\n");
    }
    o.s(indent).s("</Склады>\n");
}

fn write_groups(o: &mut Out, shape: &Shape, children: &[Vec<u32>], of: Option<u32>, depth: usize) {
    let list: &[u32] = match of {
        None => &children[children.len() - 1],
        Some(p) => &children[p as usize],
    };
    if list.is_empty() {
        return;
    }
    let ind = "\t".repeat(2 + depth * 2);
    o.s(&ind).s("<Группы>\n");
    for &j in list {
        o.s(&ind).s("\t<Группа>\n");
        o.s(&ind)
            .s("\t\t<Ид>")
            .g(&Guid::new(shape.seed, S_GROUP, j as u64))
            .s("</Ид>\n");
        o.s(&ind)
            .s("\t\t<Наименование>")
            .esc(&shape.group_name(j as u64))
            .s("</Наименование>\n");
        write_groups(o, shape, children, Some(j), depth + 1);
        o.s(&ind).s("\t</Группа>\n");
    }
    o.s(&ind).s("</Группы>\n");
}

fn write_import(dir: &Path, shape: &Shape, exp: &mut Expected) -> std::io::Result<u64> {
    let mut o = Out::create(&dir.join("import.xml"))?;
    o.s("\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.s("<КоммерческаяИнформация").s(HEADER_ATTRS);
    o.s("\t<Классификатор>\n");
    o.s("\t\t<Ид>").g(&shape.classifier).s("</Ид>\n");
    o.s("\t\t<Наименование>Классификатор (Основной каталог товаров)</Наименование>\n");
    write_owner(&mut o, shape, "\t\t");
    // Groups, nested (children lists: index `groups` holds the top level).
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); shape.groups as usize + 1];
    for (j, p) in shape.group_parent.iter().enumerate() {
        match p {
            Some(p) => children[*p as usize].push(j as u32),
            None => children[shape.groups as usize].push(j as u32),
        }
    }
    write_groups(&mut o, shape, &children, None, 0);
    o.s("\t\t<Свойства>\n");
    for p in &shape.props {
        o.s("\t\t\t<Свойство>\n");
        o.s("\t\t\t\t<Ид>").g(&p.id).s("</Ид>\n");
        o.s("\t\t\t\t<Наименование>")
            .esc(&p.name)
            .s("</Наименование>\n");
        o.s("\t\t\t\t<ТипЗначений>")
            .s(match p.kind {
                PropKind::Str => "Строка",
                PropKind::Num => "Число",
                PropKind::Ref => "Справочник",
            })
            .s("</ТипЗначений>\n");
        if p.kind == PropKind::Ref {
            o.s("\t\t\t\t<ВариантыЗначений>\n");
            for (id, v) in &p.values {
                o.s("\t\t\t\t\t<Справочник>\n");
                o.s("\t\t\t\t\t\t<ИдЗначения>").g(id).s("</ИдЗначения>\n");
                o.s("\t\t\t\t\t\t<Значение>").esc(v).s("</Значение>\n");
                o.s("\t\t\t\t\t</Справочник>\n");
            }
            o.s("\t\t\t\t</ВариантыЗначений>\n");
        }
        o.s("\t\t\t\t<ДляТоваров>true</ДляТоваров>\n");
        o.s("\t\t\t</Свойство>\n");
    }
    o.s("\t\t</Свойства>\n");
    write_price_types(&mut o, shape, "\t\t");
    write_warehouses(&mut o, shape, "\t\t");
    o.s("\t</Классификатор>\n");
    o.s("\t<Каталог СодержитТолькоИзменения=\"false\">\n");
    o.s("\t\t<Ид>").g(&shape.catalog).s("</Ид>\n");
    o.s("\t\t<ИдКлассификатора>")
        .g(&shape.classifier)
        .s("</ИдКлассификатора>\n");
    o.s("\t\t<Наименование>Основной каталог товаров</Наименование>\n");
    write_owner(&mut o, shape, "\t\t");
    o.s("\t\t<Товары>\n");
    let samples = sample_indexes(shape.goods);
    let mut images = 0u64;
    for i in 0..shape.goods {
        let mut g = GoodSpec::new(shape, i);
        if g.deleted() {
            exp.deleted_goods += 1;
        }
        if g.deleted_attr {
            o.s("\t\t\t<Товар Статус=\"Удален\">\n");
        } else {
            o.s("\t\t\t<Товар>\n");
        }
        o.s("\t\t\t\t<Ид>").g(&g.id).s("</Ид>\n");
        o.s("\t\t\t\t<Штрихкод>").u(g.barcode).s("</Штрихкод>\n");
        o.s("\t\t\t\t<Артикул>").esc(&g.article).s("</Артикул>\n");
        o.s("\t\t\t\t<Наименование>")
            .esc(&g.name)
            .s("</Наименование>\n");
        if g.weight_unit {
            o.s("\t\t\t\t<БазоваяЕдиница Код=\"166 \" НаименованиеПолное=\"Килограмм\" МеждународноеСокращение=\"KGM\">кг</БазоваяЕдиница>\n");
        } else {
            o.s("\t\t\t\t<БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\">шт</БазоваяЕдиница>\n");
        }
        o.s("\t\t\t\t<Группы>\n");
        let mut groups = vec![Guid::new(shape.seed, S_GROUP, g.group)];
        if let Some(x) = g.extra_group.filter(|x| *x != g.group) {
            groups.push(Guid::new(shape.seed, S_GROUP, x));
        }
        for gr in &groups {
            o.s("\t\t\t\t\t<Ид>").g(gr).s("</Ид>\n");
        }
        o.s("\t\t\t\t</Группы>\n");
        if g.deleted_mark {
            o.s("\t\t\t\t<ПометкаУдаления>true</ПометкаУдаления>\n");
        }
        o.s("\t\t\t\t<Описание>");
        let n = 1 + g.rng.below(3);
        for k in 0..n {
            if k > 0 {
                o.s(" ");
            }
            let s = *g.rng.pick(SENTENCES);
            o.esc(s);
        }
        o.s("</Описание>\n");
        let imgs = g.image_paths(shape, i);
        for p in &imgs {
            o.s("\t\t\t\t<Картинка>").s(p).s("</Картинка>\n");
            if shape.images {
                let path = dir.join(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, TINY_JPEG)?;
                images += 1;
            }
        }
        o.s("\t\t\t\t<ЗначенияСвойств>\n");
        let np = shape.props.len() as u64;
        let start = g.rng.below(np);
        for k in 0..5u64 {
            let p = &shape.props[((start + k * 3) % np) as usize];
            o.s("\t\t\t\t\t<ЗначенияСвойства>\n");
            o.s("\t\t\t\t\t\t<Ид>").g(&p.id).s("</Ид>\n");
            o.s("\t\t\t\t\t\t<Значение>");
            match p.kind {
                PropKind::Ref => {
                    let v = &p.values[g.rng.below(p.values.len() as u64) as usize];
                    o.g(&v.0);
                }
                PropKind::Num => {
                    o.fixed(g.rng.below(100_000), 2);
                }
                PropKind::Str => {
                    o.esc(&p.name).s(" ").u(g.rng.below(500));
                }
            }
            o.s("</Значение>\n");
            o.s("\t\t\t\t\t</ЗначенияСвойства>\n");
        }
        o.s("\t\t\t\t</ЗначенияСвойств>\n");
        o.s("\t\t\t\t<СтавкиНалогов>\n\t\t\t\t\t<СтавкаНалога>\n\t\t\t\t\t\t<Наименование>НДС</Наименование>\n\t\t\t\t\t\t<Ставка>20</Ставка>\n\t\t\t\t\t</СтавкаНалога>\n\t\t\t\t</СтавкиНалогов>\n");
        o.s("\t\t\t\t<ЗначенияРеквизитов>\n");
        o.s("\t\t\t\t\t<ЗначениеРеквизита>\n\t\t\t\t\t\t<Наименование>ВидНоменклатуры</Наименование>\n\t\t\t\t\t\t<Значение>Товар</Значение>\n\t\t\t\t\t</ЗначениеРеквизита>\n");
        o.s("\t\t\t\t\t<ЗначениеРеквизита>\n\t\t\t\t\t\t<Наименование>ТипНоменклатуры</Наименование>\n\t\t\t\t\t\t<Значение>Товар</Значение>\n\t\t\t\t\t</ЗначениеРеквизита>\n");
        o.s("\t\t\t\t\t<ЗначениеРеквизита>\n\t\t\t\t\t\t<Наименование>Полное наименование</Наименование>\n\t\t\t\t\t\t<Значение>")
            .esc(&g.name)
            .s("</Значение>\n\t\t\t\t\t</ЗначениеРеквизита>\n");
        o.s("\t\t\t\t\t<ЗначениеРеквизита>\n\t\t\t\t\t\t<Наименование>Вес</Наименование>\n\t\t\t\t\t\t<Значение>")
            .fixed(50 + g.rng.below(20_000), 3)
            .s("</Значение>\n\t\t\t\t\t</ЗначениеРеквизита>\n");
        o.s("\t\t\t\t</ЗначенияРеквизитов>\n");
        o.s("\t\t\t</Товар>\n");
        if samples.contains(&i) {
            exp.sample_goods.push(ExpectedGood {
                id: g.id.as_str().to_string(),
                article: g.article.clone(),
                name: g.name.clone(),
                groups: groups.iter().map(|x| x.as_str().to_string()).collect(),
                images: imgs,
                deleted: g.deleted(),
                offers: offer_ids(&g),
            });
        }
        o.maybe_flush()?;
    }
    o.s("\t\t</Товары>\n\t</Каталог>\n</КоммерческаяИнформация>\n");
    exp.images = images;
    o.finish()
}

fn offer_ids(g: &GoodSpec) -> Vec<String> {
    if g.deleted() {
        Vec::new()
    } else if g.variants.is_empty() {
        vec![g.id.as_str().to_string()]
    } else {
        (0..g.variants.len())
            .map(|k| format!("{}#{}", g.id.as_str(), char_id(g, k).as_str()))
            .collect()
    }
}

fn char_id(g: &GoodSpec, k: usize) -> Guid {
    // Derived from the good's id bytes so it is stable whatever the index.
    let mut h = 0u64;
    for b in g.id.0 {
        h = h.wrapping_mul(31).wrapping_add(b as u64);
    }
    Guid::new(h, S_CHAR_ID, k as u64)
}

fn sample_indexes(goods: u64) -> Vec<u64> {
    let mut v: Vec<u64> = [0, 1, 2, goods / 3, goods / 2, goods.saturating_sub(1)]
        .into_iter()
        .filter(|i| *i < goods)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn write_offers(dir: &Path, shape: &Shape, exp: &mut Expected) -> std::io::Result<u64> {
    let mut o = Out::create(&dir.join("offers.xml"))?;
    o.s("\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.s("<КоммерческаяИнформация").s(HEADER_ATTRS);
    o.s("\t<ПакетПредложений СодержитТолькоИзменения=\"false\">\n");
    o.s("\t\t<Ид>").g(&shape.catalog).s("#</Ид>\n");
    o.s("\t\t<Наименование>Пакет предложений (Основной каталог товаров)</Наименование>\n");
    o.s("\t\t<ИдКаталога>")
        .g(&shape.catalog)
        .s("</ИдКаталога>\n");
    o.s("\t\t<ИдКлассификатора>")
        .g(&shape.classifier)
        .s("</ИдКлассификатора>\n");
    write_owner(&mut o, shape, "\t\t");
    write_price_types(&mut o, shape, "\t\t");
    write_warehouses(&mut o, shape, "\t\t");
    o.s("\t\t<Предложения>\n");
    let samples = sample_indexes(shape.goods);
    let mut stock_total_milli: u128 = 0;
    for i in 0..shape.goods {
        let g = GoodSpec::new(shape, i);
        if g.deleted() {
            continue;
        }
        // Offer randomness: its own stream so the import file's layout never shifts it.
        let mut r = Rng::new(shape.seed, S_GOOD + 100, i);
        let n_offers = g.variants.len().max(1);
        for k in 0..n_offers {
            exp.offers += 1;
            let (id, name) = if g.variants.is_empty() {
                (g.id.as_str().to_string(), g.name.clone())
            } else {
                let (c, s) = g.variants[k];
                (
                    format!("{}#{}", g.id.as_str(), char_id(&g, k).as_str()),
                    format!("{} ({}, {})", g.name, COLORS[c], SIZES[s]),
                )
            };
            o.s("\t\t\t<Предложение>\n");
            o.s("\t\t\t\t<Ид>").s(&id).s("</Ид>\n");
            o.s("\t\t\t\t<Штрихкод>")
                .u(g.barcode + k as u64 + 1)
                .s("</Штрихкод>\n");
            o.s("\t\t\t\t<Артикул>").esc(&g.article).s("</Артикул>\n");
            o.s("\t\t\t\t<Наименование>")
                .esc(&name)
                .s("</Наименование>\n");
            let unit = if g.weight_unit { "кг" } else { "шт" };
            if g.weight_unit {
                o.s("\t\t\t\t<БазоваяЕдиница Код=\"166 \" НаименованиеПолное=\"Килограмм\" МеждународноеСокращение=\"KGM\">кг</БазоваяЕдиница>\n");
            } else {
                o.s("\t\t\t\t<БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\">шт</БазоваяЕдиница>\n");
            }
            if !g.variants.is_empty() {
                let (c, s) = g.variants[k];
                o.s("\t\t\t\t<ХарактеристикиТовара>\n");
                o.s("\t\t\t\t\t<ХарактеристикаТовара>\n\t\t\t\t\t\t<Наименование>Цвет</Наименование>\n\t\t\t\t\t\t<Значение>")
                    .s(COLORS[c])
                    .s("</Значение>\n\t\t\t\t\t</ХарактеристикаТовара>\n");
                o.s("\t\t\t\t\t<ХарактеристикаТовара>\n\t\t\t\t\t\t<Наименование>Размер</Наименование>\n\t\t\t\t\t\t<Значение>")
                    .s(SIZES[s])
                    .s("</Значение>\n\t\t\t\t\t</ХарактеристикаТовара>\n");
                o.s("\t\t\t\t</ХарактеристикиТовара>\n");
            }
            // Prices: 2 or 3 price types per offer.
            let base = g.base_price + (k as u64) * 1000;
            let n_prices = 2 + r.below(2) as usize;
            let mut prices = Vec::new();
            o.s("\t\t\t\t<Цены>\n");
            for (t, (tname, pct)) in PRICE_TYPES.iter().enumerate().take(n_prices) {
                let v = base * pct / 100;
                o.s("\t\t\t\t\t<Цена>\n");
                o.s("\t\t\t\t\t\t<Представление>")
                    .fixed(v, 2)
                    .s(" руб. за ")
                    .s(unit)
                    .s("</Представление>\n");
                o.s("\t\t\t\t\t\t<ИдТипаЦены>")
                    .g(&shape.price_types[t])
                    .s("</ИдТипаЦены>\n");
                o.s("\t\t\t\t\t\t<ЦенаЗаЕдиницу>")
                    .fixed(v, 2)
                    .s("</ЦенаЗаЕдиницу>\n");
                o.s("\t\t\t\t\t\t<Валюта>руб</Валюта>\n");
                o.s("\t\t\t\t\t\t<Единица>").s(unit).s("</Единица>\n");
                o.s("\t\t\t\t\t\t<Коэффициент>1</Коэффициент>\n");
                o.s("\t\t\t\t\t</Цена>\n");
                prices.push(ExpectedPrice {
                    price_type_id: shape.price_types[t].as_str().to_string(),
                    price_type: tname.to_string(),
                    value: kop_str(v),
                    currency: "руб".into(),
                });
            }
            o.s("\t\t\t\t</Цены>\n");
            // Stock per warehouse (thousandths); 10 % of offers have none at all.
            let mut stock = Vec::new();
            let mut qty = 0u64;
            if !r.chance(10) {
                for (w, wid) in shape.warehouses.iter().enumerate() {
                    if w > 0 && !r.chance(50) {
                        continue;
                    }
                    let q = if g.weight_unit {
                        r.below(100_000)
                    } else {
                        (1 + r.below(60)) * 1000
                    };
                    qty += q;
                    stock.push((wid, q));
                }
            }
            o.s("\t\t\t\t<Количество>").milli(qty).s("</Количество>\n");
            for (wid, q) in &stock {
                o.s("\t\t\t\t<Склад ИдСклада=\"")
                    .g(wid)
                    .s("\" КоличествоНаСкладе=\"")
                    .milli(*q)
                    .s("\"/>\n");
                stock_total_milli += *q as u128;
            }
            o.s("\t\t\t</Предложение>\n");
            if samples.contains(&i) && exp.sample_offers.len() < 12 {
                exp.sample_offers.push(ExpectedOffer {
                    id,
                    good_id: g.id.as_str().to_string(),
                    article: g.article.clone(),
                    name,
                    quantity: milli_str(qty),
                    prices,
                    stock: stock
                        .iter()
                        .map(|(w, q)| ExpectedStock {
                            warehouse_id: w.as_str().to_string(),
                            quantity: milli_str(*q),
                        })
                        .collect(),
                });
            }
        }
        o.maybe_flush()?;
    }
    o.s("\t\t</Предложения>\n\t</ПакетПредложений>\n</КоммерческаяИнформация>\n");
    let (int, frac) = (stock_total_milli / 1000, (stock_total_milli % 1000) as u64);
    exp.stock_total = if frac == 0 {
        int.to_string()
    } else {
        format!("{int}.{frac:03}").trim_end_matches('0').to_string()
    };
    o.finish()
}

/// Generate the catalog into `dir` (created if needed).
pub fn generate(dir: &Path, opts: &GenOptions) -> std::io::Result<(GenReport, Expected)> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)?;
    if opts.images {
        // Stale images of an earlier run would be uploaded by the emulator.
        let _ = std::fs::remove_dir_all(dir.join("import_files"));
    }
    let shape = Shape::new(opts);
    let mut exp = Expected {
        goods: opts.goods,
        offers: 0,
        groups: shape.groups,
        properties: shape.props.len() as u64,
        price_types: PRICE_TYPES.len() as u64,
        warehouses: WAREHOUSES.len() as u64,
        deleted_goods: 0,
        stock_total: "0".into(),
        sample_offers: Vec::new(),
        sample_goods: Vec::new(),
        seed: opts.seed,
        images: 0,
        import_bytes: 0,
        offers_bytes: 0,
    };
    exp.import_bytes = write_import(dir, &shape, &mut exp)?;
    exp.offers_bytes = write_offers(dir, &shape, &mut exp)?;
    let json = serde_json::to_string_pretty(&exp).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("expected.json"), json + "\n")?;
    let secs = started.elapsed().as_secs_f64();
    let total = exp.import_bytes + exp.offers_bytes;
    Ok((
        GenReport {
            dir: dir.display().to_string(),
            goods: exp.goods,
            offers: exp.offers,
            import_bytes: exp.import_bytes,
            offers_bytes: exp.offers_bytes,
            images: exp.images,
            seconds: (secs * 1000.0).round() / 1000.0,
            mb_per_s: if secs > 0.0 {
                ((total as f64 / 1e6 / secs) * 10.0).round() / 10.0
            } else {
                0.0
            },
        },
        exp,
    ))
}

#[cfg(test)]
mod tests;
