//! Orders benchmark (issue 3): `cargo run --release --example orders_bench -- [ORDERS]`
//!
//! In a temporary SQLite store: takes in ORDERS (default 10 000) pending orders of 2 lines each,
//! then times one `type=sale&mode=query` document write (windows-1251, 2.05 flat and 3.1
//! containers, to a file as the server does) with the extra peak RSS it needed, commits the
//! export, and times applying a 1C orders file with one document per order (1C's number,
//! posting, payment, "Готов к отгрузке"). Prints one line per measurement and a JSON summary.

use std::io::Write;
use std::time::Instant;

use diesel::prelude::*;
use obmen::i18n::Lang;
use obmen::orders::cml_out::{Charset, Schema};
use obmen::orders::model::{OrderInput, Source};
use obmen::orders::{self, cml_in, store, StatusMap};

/// A `/proc/self/status` value in KiB.
fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reset the peak RSS (VmHWM) to the current RSS; false when the kernel does not allow it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Measure {
    seconds: f64,
    extra_rss_mib: Option<f64>,
}

/// Run `f`, timing it and measuring how far the peak RSS rose above the RSS before it.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Measure) {
    let peak_ok = reset_peak();
    let before = proc_status("VmRSS:");
    let t = Instant::now();
    let out = f();
    let seconds = t.elapsed().as_secs_f64();
    let after = proc_status("VmHWM:");
    let extra = match (peak_ok, before, after) {
        (true, Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / 1024.0),
        _ => None,
    };
    (
        out,
        Measure {
            seconds,
            extra_rss_mib: extra,
        },
    )
}

fn fmt_rss(m: &Measure) -> String {
    m.extra_rss_mib
        .map(|x| format!("{x:.1} MiB"))
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ORDERS must be a number"))
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.db");
    let pool = obmen::store::open(db.to_str().unwrap(), 2).expect("open store");
    let mut c = pool.get().expect("connection");

    // Catalog: 100 offers the order lines point at.
    for i in 0..100 {
        diesel::sql_query(format!(
            "INSERT INTO offers (id, good_id, article, name, data, hash, created_at, changed_at, seen_at) \
             VALUES ('g{i}#c1', 'g{i}', 'A-{i}', 'Дрель ударная {i}', '{{}}', 'h', 0, 0, 0)"
        ))
        .execute(&mut c)
        .expect("seed offer");
    }

    // Intake (not part of the targets; one transaction per order, as the REST intake does).
    let t = Instant::now();
    let mut numbers = Vec::with_capacity(n);
    for i in 0..n {
        let input: OrderInput = serde_json::from_value(serde_json::json!({
            "channel": "api", "external_id": format!("B-{i}"), "date": "2026-11-23T10:00:00+03:00",
            "currency": "RUB",
            "customer": {"name": format!("Покупатель {i}"), "phone": "+79990000000",
                         "email": "buyer@example.ru", "address": "Москва, ул. Ленина, д. 1, кв. 5"},
            "lines": [{"offer_id": format!("g{}#c1", i % 100), "quantity": 2, "price": 1200.00},
                      {"offer_id": format!("g{}#c1", (i + 7) % 100), "quantity": 1, "price": 349.90}],
            "delivery": {"method": "cdek", "cost": 300.00},
            "payment": {"method": "card", "paid": i % 2 == 0},
            "comment": "Позвонить за час"
        }))
        .expect("order json");
        let (number, created) =
            store::create(&mut c, &input, "OB-", Source::Api).expect("create order");
        assert!(created);
        numbers.push(number);
    }
    let intake = t.elapsed().as_secs_f64();
    println!("intake: {n} orders in {intake:.2} s");

    // The query document, both schemas, to a file as `mode=query` does.
    let mut results = serde_json::Map::new();
    for (schema, label) in [(Schema::V205, "query_2.05"), (Schema::V31, "query_3.1")] {
        let path = dir.path().join(format!("{label}.xml"));
        let ((written, bytes), m) = measure(|| {
            let f = std::fs::File::create(&path).expect("query file");
            let (mut w, written) = orders::write_query(
                &mut c,
                label,
                std::io::BufWriter::with_capacity(256 * 1024, f),
                Charset::Windows1251,
                schema,
                Lang::Ru,
            )
            .expect("write query");
            w.flush().expect("flush");
            (
                written,
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            )
        });
        assert_eq!(written, n);
        println!(
            "{label}: {written} documents, {:.1} MB, {:.3} s, extra peak RSS {}",
            bytes as f64 / 1e6,
            m.seconds,
            fmt_rss(&m)
        );
        results.insert(
            label.into(),
            serde_json::json!({"documents": written, "bytes": bytes, "seconds": m.seconds,
                "extra_rss_mib": m.extra_rss_mib}),
        );
    }
    let committed = store::commit_export(&mut c, "query_3.1").expect("success");
    assert_eq!(committed, n);

    // 1C's answer: one document per order.
    let file = dir.path().join("orders-bench_1.xml");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).expect("orders file"));
        w.write_all(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<КоммерческаяИнформация \
             xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-24T10:00:00\">\n"
                .as_bytes(),
        )
        .unwrap();
        let req = |name: &str, value: &str| {
            format!("<ЗначениеРеквизита><Наименование>{name}</Наименование><Значение>{value}</Значение></ЗначениеРеквизита>")
        };
        for (i, number) in numbers.iter().enumerate() {
            let reqs = [
                req("Номер по 1С", &format!("ЗК-{i:06}")),
                req("Дата по 1С", "2026-11-24T09:15:00"),
                req("Проведен", "true"),
                req("Номер оплаты по 1С", &format!("ПП-{i:06}")),
                req("Дата оплаты по 1С", "2026-11-24T10:00:00"),
                req("Статус заказа", "Готов к отгрузке"),
            ]
            .concat();
            writeln!(
                w,
                "<Документ><Ид>7c79f0f3-8c0a-11e4-a897-{i:012}</Ид><Номер>{number}</Номер><Дата>2026-11-23</Дата>\
<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс><Сумма>3049.9</Сумма>\
<ЗначенияРеквизитов>{reqs}</ЗначенияРеквизитов></Документ>"
            )
            .unwrap();
        }
        w.write_all("</КоммерческаяИнформация>\n".as_bytes())
            .unwrap();
        w.flush().unwrap();
    }
    let size = std::fs::metadata(&file).unwrap().len();
    let map = StatusMap::default();
    let (st, m) = measure(|| {
        cml_in::import_file(&mut c, &file, "bench-import", "orders-bench_1.xml", &map)
            .expect("apply 1C file")
    });
    assert_eq!(st.documents, n as u64);
    assert_eq!(st.changed, n as u64);
    println!(
        "apply: {} documents ({} changed), {:.1} MB, {:.3} s, extra peak RSS {}",
        st.documents,
        st.changed,
        size as f64 / 1e6,
        m.seconds,
        fmt_rss(&m)
    );
    results.insert(
        "apply".into(),
        serde_json::json!({"documents": st.documents, "changed": st.changed, "bytes": size,
            "seconds": m.seconds, "extra_rss_mib": m.extra_rss_mib}),
    );
    results.insert("orders".into(), n.into());
    results.insert("intake_seconds".into(), intake.into());
    println!("{}", serde_json::Value::Object(results));
}
