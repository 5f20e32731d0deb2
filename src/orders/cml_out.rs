//! The `type=sale&mode=query` document: a streaming CommerceML writer. One order is rendered into
//! a reused buffer, encoded and written out, so memory does not grow with the number of orders.
//!
//! Shape (what 1C's UT11 `СоздатьОбновитьЗаказы` and the 1C-Bitrix module read; schema in
//! xsd/obmen-orders.xsd): 2.05 flat `Документ`s by default, 3.1 with each `Документ` in a
//! `Контейнер` for clients that negotiated `version`/`cmlVersion` ≥ 2.10. The first bytes are
//! exactly `<?xml`; windows-1251 by default (characters it lacks become `&#NNNN;`), or UTF-8
//! without a BOM.

use std::io::{self, Write};

use super::model::*;
use crate::i18n::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Windows1251,
    Utf8,
}

impl Charset {
    /// `utf-8`/`utf8` → UTF-8; anything else → windows-1251.
    pub fn parse(s: &str) -> Charset {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        if t == "utf-8" || t == "utf8" {
            Charset::Utf8
        } else {
            Charset::Windows1251
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Charset::Windows1251 => "windows-1251",
            Charset::Utf8 => "UTF-8",
        }
    }
    /// For the HTTP `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Charset::Windows1251 => "application/xml; charset=windows-1251",
            Charset::Utf8 => "application/xml; charset=utf-8",
        }
    }
    pub fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => s.as_bytes().to_vec(),
            Charset::Windows1251 => encoding_rs::WINDOWS_1251.encode(s).0.into_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// CML 2.05: flat `Документ`s (UT11, old clients, Bitrix default).
    V205,
    /// CML 3.1: each `Документ` in a `Контейнер` (1C-Bitrix module ≥ 6.5).
    V31,
}

impl Schema {
    /// Choose by config (`auto`, `2.05`, `3.1`) and what the session negotiated.
    pub fn choose(config: &str, version: Option<&str>, cml_version: Option<&str>) -> Schema {
        match config.trim() {
            "2.05" | "2" | "flat" => return Schema::V205,
            "3.1" | "3" | "container" => return Schema::V31,
            _ => {}
        }
        let ge_210 = |v: &str| {
            let mut it = v.trim().split('.');
            let major: u32 = it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
            // Minor parts compare as numbers: 2.09 < 2.1 (Bitrix "partial") < 2.10.
            let minor: u32 = it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
            major > 2 || (major == 2 && minor >= 10)
        };
        if version.is_some_and(ge_210) || cml_version.is_some_and(ge_210) {
            Schema::V31
        } else {
            Schema::V205
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::V205 => "2.05",
            Schema::V31 => "3.1",
        }
    }
}

/// Writes the query document order by order.
pub struct QueryWriter<W: Write> {
    out: W,
    charset: Charset,
    schema: Schema,
    lang: Lang,
    buf: String,
    pub written: usize,
}

/// XML text escape; characters not allowed in XML 1.0 are dropped.
fn esc(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
        })
        .collect();
    quick_xml::escape::escape(clean.as_str()).into_owned()
}

impl<W: Write> QueryWriter<W> {
    pub fn new(out: W, charset: Charset, schema: Schema, lang: Lang) -> Self {
        QueryWriter {
            out,
            charset,
            schema,
            lang,
            buf: String::with_capacity(8192),
            written: 0,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        let bytes = self.charset.encode(&self.buf);
        self.out.write_all(&bytes)?;
        self.buf.clear();
        Ok(())
    }

    /// The declaration and the root start tag. `generated_at`: `YYYY-MM-DDTHH:MM:SS`.
    pub fn start(&mut self, generated_at: &str) -> io::Result<()> {
        let b = &mut self.buf;
        b.push_str(&format!(
            "<?xml version=\"1.0\" encoding=\"{}\"?>\n",
            self.charset.label()
        ));
        match self.schema {
            Schema::V205 => b.push_str(&format!(
                "<КоммерческаяИнформация ВерсияСхемы=\"2.05\" ДатаФормирования=\"{}\">\n",
                esc(generated_at)
            )),
            Schema::V31 => b.push_str(&format!(
                "<КоммерческаяИнформация ВерсияСхемы=\"3.1\" ДатаФормирования=\"{}\" \
ФорматДаты=\"ДФ=yyyy-MM-dd; ДЛФ=DT\" ФорматВремени=\"ДФ=ЧЧ:мм:сс; ДЛФ=T\" РазделительДатаВремя=\"T\" \
ФорматСуммы=\"ЧЦ=18; ЧДЦ=2; ЧРД=.\" ФорматКоличества=\"ЧЦ=18; ЧДЦ=2; ЧРД=.\">\n",
                esc(generated_at)
            )),
        }
        self.flush_buf()
    }

    fn el(&mut self, indent: usize, name: &str, value: &str) {
        for _ in 0..indent {
            self.buf.push_str("  ");
        }
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
        self.buf.push_str(&esc(value));
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    fn open(&mut self, indent: usize, name: &str) {
        for _ in 0..indent {
            self.buf.push_str("  ");
        }
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    fn close(&mut self, indent: usize, name: &str) {
        for _ in 0..indent {
            self.buf.push_str("  ");
        }
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push_str(">\n");
    }

    fn requisite(&mut self, indent: usize, name: &str, value: &str) {
        self.open(indent, "ЗначениеРеквизита");
        self.el(indent + 1, "Наименование", name);
        self.el(indent + 1, "Значение", value);
        self.close(indent, "ЗначениеРеквизита");
    }

    /// One order document.
    pub fn order(&mut self, o: &Order) -> io::Result<()> {
        let lang = self.lang;
        let (date, time) = split_date(&o.date);
        let mut i = 1;
        if self.schema == Schema::V31 {
            self.open(i, "Контейнер");
            i += 1;
        }
        self.open(i, "Документ");
        let d = i + 1;
        self.el(d, "Ид", &o.number);
        self.el(d, "Номер", &o.number);
        self.el(d, "Дата", &date);
        self.el(d, "ХозОперация", "Заказ товара");
        self.el(d, "Роль", "Продавец");
        self.el(d, "Валюта", &currency_for_1c(&o.currency));
        self.el(d, "Курс", "1");
        self.el(d, "Сумма", &o.total.to_string());
        self.customer(d, o);
        self.el(d, "Время", &time);
        if let Some(c) = o.comment.as_deref().filter(|c| !c.trim().is_empty()) {
            self.el(d, "Комментарий", c);
        }
        self.open(d, "Товары");
        for l in &o.lines {
            self.line(d + 1, l);
        }
        let cost = o.delivery_cost();
        if cost.0 > 0 {
            let name = lang.pick("Доставка заказа", "Delivery").to_string();
            self.line(
                d + 1,
                &Line {
                    offer_id: Some("ORDER_DELIVERY".into()),
                    article: None,
                    name,
                    quantity: Qty(1000),
                    price: cost,
                    discount: Money(0),
                    vat: None,
                    sum: cost,
                },
            );
        }
        self.close(d, "Товары");

        self.open(d, "ЗначенияРеквизитов");
        let r = d + 1;
        let pay = o.payment.clone().unwrap_or_default();
        if let Some(m) = pay.method.as_deref().filter(|m| !m.is_empty()) {
            self.requisite(r, "Метод оплаты", m);
        }
        self.requisite(r, "Заказ оплачен", bool_s(pay.paid));
        if let Some(pd) = pay.date.as_deref().filter(|_| pay.paid) {
            self.requisite(r, "Дата оплаты", &split_join(pd));
        }
        let allowed = matches!(
            o.status,
            Status::ReadyToShip | Status::Shipped | Status::Delivered
        );
        self.requisite(r, "Доставка разрешена", bool_s(allowed));
        self.requisite(r, "Отменен", bool_s(o.status == Status::Cancelled));
        self.requisite(r, "Финальный статус", bool_s(o.status.is_final()));
        self.requisite(
            r,
            "Статус заказа",
            &format!("[{}] {}", o.status.code(), o.status.title(lang)),
        );
        self.requisite(r, "Статуса заказа ИД", o.status.code());
        self.requisite(r, "Дата изменения статуса", &ms_local(o.updated_at));
        if let Some(dl) = &o.delivery {
            if let Some(m) = dl.method.as_deref().filter(|m| !m.is_empty()) {
                self.requisite(r, "Способ доставки", m);
            }
            if let Some(a) = dl.address.as_deref().filter(|a| !a.is_empty()) {
                self.requisite(r, "Адрес доставки", a);
            }
        }
        if dl_address(o).is_none() {
            if let Some(a) = o.customer.address.as_deref().filter(|a| !a.is_empty()) {
                self.requisite(r, "Адрес доставки", a);
            }
        }
        self.requisite(r, "Канал продаж", &o.channel);
        if let Some(x) = o.external_id.as_deref() {
            self.requisite(r, "Номер во внешней системе", x);
        }
        let reqs = o.requisites.clone();
        for (n, v) in &reqs {
            self.requisite(r, n, v);
        }
        self.close(d, "ЗначенияРеквизитов");
        self.close(i, "Документ");
        if self.schema == Schema::V31 {
            self.close(i - 1, "Контейнер");
        }
        self.written += 1;
        self.flush_buf()
    }

    fn customer(&mut self, d: usize, o: &Order) {
        let c = &o.customer;
        let name = c
            .name
            .clone()
            .or_else(|| c.legal_name.clone())
            .or_else(|| c.email.clone())
            .or_else(|| c.phone.clone())
            .unwrap_or_else(|| self.lang.pick("Покупатель", "Customer").to_string());
        let key = c
            .inn
            .clone()
            .or_else(|| c.email.clone())
            .or_else(|| c.phone.clone())
            .unwrap_or_else(|| name.clone());
        self.open(d, "Контрагенты");
        self.open(d + 1, "Контрагент");
        let k = d + 2;
        self.el(k, "Ид", &format!("{}#{}", o.channel, key));
        self.el(k, "Наименование", &name);
        // CommerceML's choice of a legal entity's requisites or a person's (what the 1C-Bitrix
        // module writes too): a company gets ОфициальноеНаименование/ЮридическийАдрес/ИНН/КПП, a
        // person ПолноеНаименование/ИНН/КПП/АдресРегистрации.
        let address = c.address.as_deref().filter(|a| !a.is_empty());
        if let Some(l) = &c.legal_name {
            self.el(k, "ОфициальноеНаименование", l);
            if let Some(a) = address {
                self.open(k, "ЮридическийАдрес");
                self.el(k + 1, "Представление", a);
                self.close(k, "ЮридическийАдрес");
            }
        } else {
            self.el(k, "ПолноеНаименование", &name);
        }
        if let Some(v) = &c.inn {
            self.el(k, "ИНН", v);
        }
        if let Some(v) = &c.kpp {
            self.el(k, "КПП", v);
        }
        if let (None, Some(a)) = (&c.legal_name, address) {
            self.open(k, "АдресРегистрации");
            self.el(k + 1, "Представление", a);
            self.close(k, "АдресРегистрации");
        }
        if c.phone.is_some() || c.email.is_some() {
            self.open(k, "Контакты");
            if let Some(p) = &c.phone {
                self.open(k + 1, "Контакт");
                self.el(k + 2, "Тип", "Телефон рабочий");
                self.el(k + 2, "Значение", p);
                self.close(k + 1, "Контакт");
            }
            if let Some(e) = &c.email {
                self.open(k + 1, "Контакт");
                self.el(k + 2, "Тип", "Почта");
                self.el(k + 2, "Значение", e);
                self.close(k + 1, "Контакт");
            }
            self.close(k, "Контакты");
        }
        // Last, as CommerceML's document counterparty (an extension of `Контрагент`) and the
        // 1C-Bitrix module place it.
        self.el(k, "Роль", "Покупатель");
        self.close(d + 1, "Контрагент");
        self.close(d, "Контрагенты");
    }

    fn line(&mut self, t: usize, l: &Line) {
        let service = l
            .offer_id
            .as_deref()
            .is_none_or(|id| id == "ORDER_DELIVERY");
        self.open(t, "Товар");
        let k = t + 1;
        self.el(k, "Ид", l.offer_id.as_deref().unwrap_or("ORDER_SERVICE"));
        if let Some(a) = l.article.as_deref().filter(|a| !a.is_empty()) {
            self.el(k, "Артикул", a);
        }
        self.el(k, "Наименование", &l.name);
        for _ in 0..k {
            self.buf.push_str("  ");
        }
        self.buf.push_str("<БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\">шт</БазоваяЕдиница>\n");
        // CommerceML order: the elements of the base `Товар` (tax rates, requisites) before those
        // of the document line (price, quantity, sum, discounts).
        if let Some(v) = l.vat.as_deref() {
            self.open(k, "СтавкиНалогов");
            self.open(k + 1, "СтавкаНалога");
            self.el(k + 2, "Наименование", "НДС");
            self.el(k + 2, "Ставка", v);
            self.close(k + 1, "СтавкаНалога");
            self.close(k, "СтавкиНалогов");
        }
        self.open(k, "ЗначенияРеквизитов");
        let kind = if service {
            "Услуга"
        } else {
            "Товар"
        };
        self.requisite(k + 1, "ВидНоменклатуры", kind);
        self.requisite(k + 1, "ТипНоменклатуры", kind);
        self.close(k, "ЗначенияРеквизитов");
        self.el(k, "ЦенаЗаЕдиницу", &l.price.to_string());
        self.el(k, "Количество", &l.quantity.to_string());
        self.el(k, "Сумма", &l.sum.to_string());
        if l.discount.0 != 0 {
            self.open(k, "Скидки");
            self.open(k + 1, "Скидка");
            self.el(k + 2, "Наименование", "Скидка");
            self.el(k + 2, "Сумма", &l.discount.to_string());
            self.el(k + 2, "УчтеноВСумме", "true");
            self.close(k + 1, "Скидка");
            self.close(k, "Скидки");
        }
        self.close(t, "Товар");
    }

    /// Close the root; returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.push_str("</КоммерческаяИнформация>\n");
        self.flush_buf()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn dl_address(o: &Order) -> Option<&str> {
    o.delivery
        .as_ref()
        .and_then(|d| d.address.as_deref())
        .filter(|a| !a.is_empty())
}

fn bool_s(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `2026-11-23T10:00:00+03:00` → (`2026-11-23`, `10:00:00`) in the order's own offset.
pub fn split_date(s: &str) -> (String, String) {
    let s = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return (
            d.format("%Y-%m-%d").to_string(),
            d.format("%H:%M:%S").to_string(),
        );
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return (
            d.format("%Y-%m-%d").to_string(),
            d.format("%H:%M:%S").to_string(),
        );
    }
    let date: String = s.chars().take(10).collect();
    (date, "00:00:00".into())
}

fn split_join(s: &str) -> String {
    let (d, t) = split_date(s);
    format!("{d}T{t}")
}

fn ms_local(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    pub fn sample(number: &str) -> Order {
        Order {
            id: 1,
            number: number.into(),
            channel: "api".into(),
            external_id: Some("X-1".into()),
            date: "2026-11-23T10:00:00+03:00".into(),
            currency: "RUB".into(),
            total: Money(270000),
            status: Status::New,
            customer: Customer {
                name: Some("Иванов Иван & Ко <тест>".into()),
                phone: Some("+79990000000".into()),
                email: Some("a@b.ru".into()),
                address: Some("Москва, ул. Ленина, 1".into()),
                ..Default::default()
            },
            delivery: Some(Delivery {
                method: Some("cdek".into()),
                address: None,
                cost: Some(300.0),
                ..Default::default()
            }),
            payment: Some(Payment {
                method: Some("card".into()),
                paid: false,
                date: None,
            }),
            comment: Some("Позвонить 😀 заранее".into()),
            requisites: vec![("Ссылка на накладную".into(), "https://x/1?a=1&b=2".into())],
            onec: OneCState::default(),
            version: 1,
            exported_version: 0,
            created_at: 0,
            updated_at: 0,
            lines: vec![
                Line {
                    offer_id: Some("g1#c1".into()),
                    article: Some("A-1".into()),
                    name: "Дрель".into(),
                    quantity: Qty(2000),
                    price: Money(120000),
                    discount: Money(0),
                    vat: Some("20".into()),
                    sum: Money(240000),
                },
                Line {
                    offer_id: None,
                    article: None,
                    name: "Сборка".into(),
                    quantity: Qty(1000),
                    price: Money(0),
                    discount: Money(0),
                    vat: None,
                    sum: Money(0),
                },
            ],
        }
    }

    pub fn render(orders: &[Order], charset: Charset, schema: Schema) -> Vec<u8> {
        let mut w = QueryWriter::new(Vec::new(), charset, schema, Lang::Ru);
        w.start("2026-11-23T12:00:00").unwrap();
        for o in orders {
            w.order(o).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn windows_1251_by_default_with_references_for_the_rest() {
        let bytes = render(&[sample("OB-000001")], Charset::Windows1251, Schema::V205);
        assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"windows-1251\"?>"));
        let text = encoding_rs::WINDOWS_1251
            .decode_without_bom_handling(&bytes)
            .0
            .into_owned();
        assert!(text.contains("<Номер>OB-000001</Номер>"));
        assert!(text.contains("<Валюта>руб</Валюта>"));
        assert!(text.contains("Иванов Иван &amp; Ко &lt;тест&gt;"));
        assert!(text.contains("&#128512;"), "emoji as a reference: {text}");
        assert!(text.contains("<Ид>ORDER_DELIVERY</Ид>"));
        assert!(text.contains("<Сумма>2700.00</Сумма>"));
        assert!(text.contains("[N] Принят"));
        assert!(text.contains("https://x/1?a=1&amp;b=2"));
        assert!(!text.contains("Контейнер"));
    }

    #[test]
    fn utf8_and_containers_for_3_1() {
        let bytes = render(
            &[sample("OB-000001"), sample("OB-000002")],
            Charset::Utf8,
            Schema::V31,
        );
        assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("<Контейнер>").count(), 2);
        assert!(text.contains("ВерсияСхемы=\"3.1\""));
        assert!(text.contains("😀"));
    }

    /// Validate with xmllint against xsd/obmen-orders.xsd; None when xmllint is not installed.
    pub fn xmllint(bytes: &[u8]) -> Option<Result<(), String>> {
        let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd/obmen-orders.xsd");
        let dir = tempfile::tempdir().ok()?;
        let f = dir.path().join("doc.xml");
        std::fs::write(&f, bytes).ok()?;
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&f)
            .output();
        match out {
            Err(_) => {
                assert!(
                    std::env::var("OBMEN_REQUIRE_XMLLINT").as_deref() != Ok("1"),
                    "xmllint is required (OBMEN_REQUIRE_XMLLINT=1) but not installed"
                );
                eprintln!("SKIPPED: xmllint is not installed (apt-get install libxml2-utils)");
                None
            }
            Ok(o) if o.status.success() => Some(Ok(())),
            Ok(o) => Some(Err(String::from_utf8_lossy(&o.stderr).into_owned())),
        }
    }

    #[test]
    fn emitted_documents_validate_against_the_xsd() {
        let mut paid = sample("OB-000002");
        paid.status = Status::Cancelled;
        paid.payment = Some(Payment {
            method: None,
            paid: true,
            date: Some("2026-11-23T11:00:00+03:00".into()),
        });
        paid.customer = Customer {
            legal_name: Some("ООО \"Ромашка\"".into()),
            inn: Some("7700000000".into()),
            kpp: Some("770001001".into()),
            ..Default::default()
        };
        paid.lines[0].discount = Money(1000);
        paid.comment = None;
        for charset in [Charset::Windows1251, Charset::Utf8] {
            for schema in [Schema::V205, Schema::V31] {
                for orders in [vec![], vec![sample("OB-000001"), paid.clone()]] {
                    let bytes = render(&orders, charset, schema);
                    if let Some(r) = xmllint(&bytes) {
                        r.unwrap_or_else(|e| panic!("{charset:?} {schema:?}: {e}"));
                    }
                }
            }
        }
    }

    /// The reference CommerceML schemas (../shared/reference/xsd, or OBMEN_REFERENCE_XSD) each
    /// document style is checked against: file name, and the schema style it applies to.
    const REFERENCE_SCHEMAS: &[(&str, Schema)] = &[
        (
            "89202955480__almamed__wa-apps__shop__plugins__cml1c__xml__CML205.xsd",
            Schema::V205,
        ),
        ("imega-teleport__xml2db__xsd__cml206.xsd", Schema::V205),
        ("imega-teleport__xml2db__xsd__cml209.xsd", Schema::V205),
        (
            "carono__yii2-1c-exchange__files__doc__commerceML-2.10.xsd",
            Schema::V205,
        ),
        (
            "carono__yii2-1c-exchange__files__doc__commerceML-2.10.xsd",
            Schema::V31,
        ),
        (
            "dobromyslov__commerceml-parser__doc__commerceml-2.10.xsd",
            Schema::V31,
        ),
    ];

    /// Undo the deviations xsd/README.md lists (what 1C and the 1C-Bitrix module need and the
    /// published schemas lack): put the root into the schema's namespace, drop 3.1's
    /// `Контейнер` wrappers and its number/date format attributes on the root.
    fn as_reference(doc: &str, namespace: &str) -> String {
        let (head, body) = doc.split_at(doc.find("<КоммерческаяИнформация ").unwrap());
        let root_end = body.find('>').unwrap();
        let mut root = body[..root_end].to_string();
        for attr in [
            "ФорматДаты",
            "ФорматВремени",
            "РазделительДатаВремя",
            "ФорматСуммы",
            "ФорматКоличества",
        ] {
            if let Some(a) = root.find(&format!(" {attr}=\"")) {
                let v = a + attr.len() + 3;
                let end = v + root[v..].find('"').unwrap() + 1;
                root.replace_range(a..end, "");
            }
        }
        let root = root.replacen(
            "<КоммерческаяИнформация ",
            &format!("<КоммерческаяИнформация xmlns=\"{namespace}\" "),
            1,
        );
        let rest: String = body[root_end..]
            .lines()
            .filter(|l| !matches!(l.trim(), "<Контейнер>" | "</Контейнер>"))
            .collect::<Vec<_>>()
            .join("\n");
        format!("{head}{root}{rest}")
    }

    #[test]
    fn emitted_documents_validate_against_the_reference_schemas() {
        let dir = std::env::var_os("OBMEN_REFERENCE_XSD")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                // ../shared next to the checkout (or next to the folder of a worktree).
                let here = Path::new(env!("CARGO_MANIFEST_DIR"));
                here.ancestors()
                    .skip(1)
                    .map(|a| a.join("shared/reference/xsd"))
                    .find(|p| p.is_dir())
                    .unwrap_or_else(|| here.join("../shared/reference/xsd"))
            });
        if !dir.is_dir() {
            assert!(
                std::env::var("OBMEN_REQUIRE_CORPUS").as_deref() != Ok("1"),
                "the reference schemas are required (OBMEN_REQUIRE_CORPUS=1) but missing at {}",
                dir.display()
            );
            eprintln!("SKIPPED: no reference schemas at {}", dir.display());
            return;
        }
        let mut company = sample("OB-000002");
        company.customer = Customer {
            legal_name: Some("ООО \"Ромашка\"".into()),
            inn: Some("7700000000".into()),
            kpp: Some("770001001".into()),
            address: Some("Москва, ул. Ленина, 1".into()),
            phone: Some("+74950000000".into()),
            ..Default::default()
        };
        company.lines[0].discount = Money(1000);
        company.payment = Some(Payment {
            method: None,
            paid: true,
            date: Some("2026-11-23T11:00:00+03:00".into()),
        });
        let orders = [sample("OB-000001"), company];
        for (file, schema) in REFERENCE_SCHEMAS {
            let xsd = dir.join(file);
            assert!(xsd.is_file(), "reference schema missing: {}", xsd.display());
            let text = std::fs::read_to_string(&xsd).unwrap();
            let ns = text
                .split("targetNamespace=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap();
            let doc = String::from_utf8(render(&orders, Charset::Utf8, *schema)).unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let f = tmp.path().join("doc.xml");
            std::fs::write(&f, as_reference(&doc, ns)).unwrap();
            let out = match std::process::Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&xsd)
                .arg(&f)
                .output()
            {
                Ok(o) => o,
                Err(_) => {
                    assert!(
                        std::env::var("OBMEN_REQUIRE_XMLLINT").as_deref() != Ok("1"),
                        "xmllint is required (OBMEN_REQUIRE_XMLLINT=1) but not installed"
                    );
                    eprintln!("SKIPPED: xmllint is not installed");
                    return;
                }
            };
            assert!(
                out.status.success(),
                "{schema:?} against {file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn schema_choice() {
        assert_eq!(Schema::choose("auto", None, None), Schema::V205);
        assert_eq!(Schema::choose("auto", Some("2.09"), None), Schema::V205);
        assert_eq!(Schema::choose("auto", Some("2.1"), None), Schema::V205);
        assert_eq!(Schema::choose("auto", Some("2.10"), None), Schema::V31);
        assert_eq!(Schema::choose("auto", Some("3.1"), None), Schema::V31);
        assert_eq!(Schema::choose("auto", None, Some("2.10")), Schema::V31);
        assert_eq!(Schema::choose("2.05", Some("3.1"), None), Schema::V205);
        assert_eq!(Schema::choose("3.1", None, None), Schema::V31);
    }

    #[test]
    fn dates_split_in_their_own_offset() {
        assert_eq!(
            split_date("2026-11-23T10:00:00+03:00"),
            ("2026-11-23".into(), "10:00:00".into())
        );
        assert_eq!(
            split_date("2026-11-23"),
            ("2026-11-23".into(), "00:00:00".into())
        );
    }
}
