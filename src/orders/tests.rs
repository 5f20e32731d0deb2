//! Orders against a real (temporary) SQLite store: intake, the query/success bookkeeping and
//! the import of 1C's documents.

use std::path::{Path, PathBuf};

use diesel::prelude::*;

use super::cml_in::{self, ImportError};
use super::cml_out::{Charset, Schema};
use super::model::*;
use super::*;
use crate::store::schema::{order_events, order_unknown, orders};
use crate::store::{Conn, DbPool};

fn db() -> (tempfile::TempDir, DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
    let mut c = pool.get().unwrap();
    for id in ["g1#c1", "g2"] {
        diesel::sql_query(format!(
            "INSERT INTO offers (id, good_id, article, name, data, hash, created_at, changed_at, seen_at) \
             VALUES ('{id}', '{}', 'A-{id}', 'Товар {id}', '{{}}', 'h', 0, 0, 0)",
            id.split('#').next().unwrap()
        ))
        .execute(&mut c)
        .unwrap();
    }
    (dir, pool)
}

fn input(ext: &str) -> OrderInput {
    serde_json::from_value(serde_json::json!({
        "channel": "api", "external_id": ext, "date": "2026-11-23T10:00:00+03:00", "currency": "RUB",
        "customer": {"name": "Иванов", "phone": "+7999", "email": "a@b.ru", "address": "Москва"},
        "lines": [{"offer_id": "g1#c1", "quantity": 2, "price": 1200.00},
                  {"name": "Сборка", "quantity": 1, "price": 0}],
        "delivery": {"method": "cdek", "cost": 300.00},
        "payment": {"method": "card", "paid": false},
        "comment": "тест"
    }))
    .unwrap()
}

fn query(c: &mut Conn, session: &str) -> (String, usize) {
    let (bytes, n) = write_query(
        c,
        session,
        Vec::new(),
        Charset::Utf8,
        Schema::V205,
        crate::i18n::Lang::Ru,
    )
    .unwrap();
    (String::from_utf8(bytes).unwrap(), n)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/orders")
        .join(name)
}

fn import(c: &mut Conn, name: &str, session: &str) -> Result<cml_in::ImportStats, ImportError> {
    cml_in::import_file(c, &fixture(name), session, name, &StatusMap::default())
}

fn kinds(c: &mut Conn, number: &str) -> Vec<String> {
    let o = store::get(c, number).unwrap().unwrap();
    store::timeline(c, o.id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn intake_is_idempotent_and_numbers_are_stable() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    let (n1, created) = store::create(c, &input("X-1"), "OB-", Source::Api).unwrap();
    assert!(created);
    assert_eq!(n1, "OB-000001");
    let (again, created) = store::create(c, &input("X-1"), "OB-", Source::Api).unwrap();
    assert_eq!((again.as_str(), created), ("OB-000001", false));
    let (n2, _) = store::create(c, &input("X-2"), "OB-", Source::Api).unwrap();
    assert_eq!(n2, "OB-000002");
    let o = store::get(c, &n1).unwrap().unwrap();
    assert_eq!(o.total, Money(270000));
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[0].name, "Товар g1#c1");
    assert_eq!(o.lines[0].article.as_deref(), Some("A-g1#c1"));
    assert_eq!(o.status, Status::New);
    assert_eq!(kinds(c, &n1), vec!["created"]);
}

#[test]
fn unknown_offer_names_the_line() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    let mut i = input("X-1");
    i.lines[1].offer_id = Some("nope".into());
    match store::create(c, &i, "OB-", Source::Api) {
        Err(OrderError::UnknownOffer { line, offer_id }) => {
            assert_eq!((line, offer_id.as_str()), (2, "nope"))
        }
        other => panic!("{other:?}"),
    }
    let n: i64 = orders::table.count().get_result(c).unwrap();
    assert_eq!(n, 0);
    let mut i = input("X-1");
    i.lines[1].name = None;
    assert!(matches!(
        store::create(c, &i, "OB-", Source::Api),
        Err(OrderError::Line { line: 2, .. })
    ));
}

#[test]
fn success_commits_exactly_what_the_last_query_handed_out() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    store::create(c, &input("X-1"), "OB-", Source::Api).unwrap();
    // success without a query: nothing committed.
    assert_eq!(store::commit_export(c, "s0").unwrap(), 0);
    let (doc, n) = query(c, "s1");
    assert_eq!(n, 1);
    assert!(doc.starts_with("<?xml"));
    assert!(doc.contains("<Номер>OB-000001</Номер>"));
    // A query without success hands the same order out again.
    let (_, n) = query(c, "s1");
    assert_eq!(n, 1);
    // An order created between query and success is not lost.
    store::create(c, &input("X-2"), "OB-", Source::Api).unwrap();
    assert_eq!(store::commit_export(c, "s1").unwrap(), 1);
    assert_eq!(store::commit_export(c, "s1").unwrap(), 0);
    let (doc, n) = query(c, "s2");
    assert_eq!(n, 1);
    assert!(doc.contains("OB-000002") && !doc.contains("OB-000001"));
    assert_eq!(store::commit_export(c, "s2").unwrap(), 1);
    assert_eq!(query(c, "s3").1, 0);
    let o = store::get(c, "OB-000001").unwrap().unwrap();
    assert!(o.exported_to_1c());
    assert!(kinds(c, "OB-000001").contains(&"exported".to_string()));

    // Changed on our side after confirmation: handed out again; a change from 1C is not.
    store::set_requisite(
        c,
        "OB-000001",
        requisite::WAYBILL,
        "https://cdek/1",
        Source::Courier,
    )
    .unwrap();
    let (doc, n) = query(c, "s4");
    assert_eq!(n, 1);
    assert!(doc.contains("https://cdek/1"));
    store::commit_export(c, "s4").unwrap();
    store::set_status(c, "OB-000001", Status::Accepted, Source::OneC, "").unwrap();
    assert_eq!(query(c, "s5").1, 0);
    store::set_paid(c, "OB-000001", true, Source::Ozon).unwrap();
    assert_eq!(query(c, "s6").1, 1);
}

#[test]
fn ut11_file_updates_orders_records_unknown_and_applies_once() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    let mut i = input("X-1");
    i.lines.truncate(1);
    store::create(c, &i, "OB-", Source::Api).unwrap();
    query(c, "s1");
    store::commit_export(c, "s1").unwrap();
    let st = import(c, "ut11-2.07.xml", "in1").unwrap();
    assert_eq!(
        (st.documents, st.matched, st.changed, st.unknown),
        (2, 1, 1, 1)
    );
    let o = store::get(c, "OB-000001").unwrap().unwrap();
    assert_eq!(o.onec.number.as_deref(), Some("НФS-004512"));
    assert_eq!(o.onec.date.as_deref(), Some("2014-12-12T09:51:39"));
    assert_eq!(
        o.onec.id.as_deref(),
        Some("91777ce0-81cc-11e4-a522-0050569c5934")
    );
    assert!(o.onec.posted);
    assert_eq!(o.status, Status::Accepted);
    // Lines are the same as ours (the delivery line is the delivery): no lines change.
    assert!(!kinds(c, "OB-000001").contains(&"lines_changed".to_string()));
    // A change from 1C does not send the order back to 1C.
    assert_eq!(query(c, "s2").1, 0);
    let unknown: Vec<(String, Option<String>)> = order_unknown::table
        .select((order_unknown::onec_id, order_unknown::number))
        .load(c)
        .unwrap();
    assert_eq!(
        unknown,
        vec![(
            "7c79f0f3-8c0a-11e4-a897-0050569c5934".to_string(),
            Some("4687".to_string())
        )]
    );
    // The same file again (same session or another): applied once.
    assert!(import(c, "ut11-2.07.xml", "in1").unwrap().already);
    assert!(import(c, "ut11-2.07.xml", "in2").unwrap().already);
    let events: i64 = order_events::table.count().get_result(c).unwrap();
    assert!(events > 0);
}

#[test]
fn bitrix_containers_raise_ready_to_ship_and_shipment() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    store::create(c, &input("X-1"), "OB-", Source::Api).unwrap();
    store::create(c, &input("X-2"), "OB-", Source::Api).unwrap();
    let st = import(c, "bitrix-3.1.xml", "in1").unwrap();
    assert_eq!((st.matched, st.changed), (2, 2));
    let o1 = store::get(c, "OB-000001").unwrap().unwrap();
    assert_eq!(o1.onec.number.as_deref(), Some("L319"));
    assert_eq!(o1.status, Status::ReadyToShip);
    assert_eq!(o1.onec.status.as_deref(), Some("Готов к отгрузке"));
    let k = kinds(c, "OB-000001");
    assert!(k.contains(&"ready_to_ship".to_string()), "{k:?}");
    // 1C changed the lines: one drill at 1320 instead of two at 1200.
    assert!(k.contains(&"lines_changed".to_string()), "{k:?}");
    assert_eq!(o1.total, Money(132000));
    assert_eq!(o1.lines.len(), 1);
    let o2 = store::get(c, "OB-000002").unwrap().unwrap();
    assert_eq!(o2.status, Status::Shipped);
    assert_eq!(o2.onec.shipment_number.as_deref(), Some("О0000000966"));
    assert_eq!(
        o2.onec.shipment_date.as_deref(),
        Some("2026-11-24T18:36:44")
    );
    assert_eq!(query(c, "q").1, 2, "never confirmed: both still pending");
}

#[test]
fn cp1251_file_with_final_status() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    for x in ["X-1", "X-2", "X-3"] {
        store::create(c, &input(x), "OB-", Source::Api).unwrap();
    }
    import(c, "old-2.03-cp1251.xml", "in1").unwrap();
    let o = store::get(c, "OB-000003").unwrap().unwrap();
    assert!(o.onec.paid);
    assert_eq!(o.onec.payment_number.as_deref(), Some("ТК000000026"));
    assert_eq!(o.onec.payment_date.as_deref(), Some("2007-10-16T15:44:47"));
    assert_eq!(o.status, Status::Delivered);
}

#[test]
fn malformed_or_mislabelled_files_change_nothing() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    for x in ["X-1", "X-2", "X-3"] {
        store::create(c, &input(x), "OB-", Source::Api).unwrap();
    }
    for f in [
        "broken.xml",
        "declared-utf8-is-cp1251.xml",
        "declared-cp1251-is-utf8.xml",
        "not-cml.xml",
    ] {
        let e = import(c, f, "in1").unwrap_err();
        assert!(!e.describe(crate::i18n::Lang::Ru).is_empty(), "{f}: {e:?}");
        let o = store::get(c, "OB-000003").unwrap().unwrap();
        assert_eq!(o.status, Status::New, "{f}");
        assert!(!o.onec.paid, "{f}");
        assert_eq!(kinds(c, "OB-000003"), vec!["created"], "{f}");
    }
    // A failed file can be sent again once fixed (it was not recorded as applied).
    assert!(!import(c, "old-2.03-cp1251.xml", "in1").unwrap().already);
}

#[test]
fn realworld_orders_files_parse() {
    let dir = std::env::var_os("OBMEN_REALWORLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld"));
    let Ok(rd) = std::fs::read_dir(&dir) else {
        assert!(
            std::env::var("OBMEN_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "the corpus is required (OBMEN_REQUIRE_CORPUS=1) but missing at {}",
            dir.display()
        );
        eprintln!("SKIPPED: no corpus at {}", dir.display());
        return;
    };
    let mut seen = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let lower = name.to_lowercase();
        if !(lower.contains("orders") || lower.contains("documents")) || !lower.ends_with(".xml") {
            continue;
        }
        let mut r = cml_in::DocReader::open(&e.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut n = 0;
        while let Some(d) = r.next_doc().unwrap_or_else(|e| panic!("{name}: {e}")) {
            assert!(d.number.is_some() || d.id.is_some(), "{name}");
            n += 1;
        }
        assert!(n > 0, "{name}: no documents");
        seen += 1;
    }
    assert!(seen >= 6, "orders files found: {seen}");
}

#[test]
fn payments_and_shipments_of_a_container_apply_to_its_order() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    for x in ["X-1", "X-2", "X-3"] {
        store::create(c, &input(x), "OB-", Source::Api).unwrap();
    }
    let st = import(c, "bitrix-3.1-payments.xml", "in1").unwrap();
    assert_eq!(st.documents, 11);
    assert_eq!((st.matched, st.changed, st.unknown), (3, 3, 1));
    assert_eq!((st.payments, st.shipments), (2, 2));
    // Unposted payment, cancelled shipment not on record, payment of an unknown order.
    assert_eq!(st.skipped, 3);

    // Bitrix module names: «Выплата безналичных денег», «Отпуск товара».
    let o1 = store::get(c, "OB-000001").unwrap().unwrap();
    assert!(o1.onec.paid);
    assert_eq!(o1.onec.payment_number.as_deref(), Some("ПП-000123"));
    assert_eq!(o1.onec.payment_date.as_deref(), Some("2026-11-24T10:15:00"));
    assert!(o1.onec.shipped);
    assert_eq!(o1.onec.shipment_number.as_deref(), Some("РТ-000045"));
    assert_eq!(
        o1.onec.shipment_date.as_deref(),
        Some("2026-11-25T08:30:00")
    );
    assert_eq!(o1.status, Status::Shipped);
    let tl = store::timeline(c, o1.id).unwrap();
    for kind in ["paid", "shipped"] {
        let e = tl
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("{kind}"));
        assert_eq!(e.source, Source::OneC.as_str(), "{kind}");
    }

    // Documents not in force change nothing.
    let o2 = store::get(c, "OB-000002").unwrap().unwrap();
    assert!(!o2.onec.paid && !o2.onec.shipped);
    assert!(o2.onec.payment_number.is_none() && o2.onec.shipment_number.is_none());

    // UT 11 names, the payment ahead of the order; Номер1С/Дата1С of the shipment win.
    let o3 = store::get(c, "OB-000003").unwrap().unwrap();
    assert!(o3.onec.paid);
    assert_eq!(o3.onec.payment_number.as_deref(), Some("0000-000777"));
    assert_eq!(o3.onec.payment_date.as_deref(), Some("2026-11-24T13:00:00"));
    assert!(o3.onec.shipped);
    assert_eq!(o3.onec.shipment_number.as_deref(), Some("РТУ-888"));
    assert_eq!(
        o3.onec.shipment_date.as_deref(),
        Some("2026-11-25T14:05:00")
    );
    let k = kinds(c, "OB-000003");
    assert!(
        k.contains(&"paid".into()) && k.contains(&"shipped".into()),
        "{k:?}"
    );

    // Changes from 1C do not trigger a re-send; applied once.
    assert!(import(c, "bitrix-3.1-payments.xml", "in2").unwrap().already);
}

#[test]
fn a_payment_withdrawn_in_1c_clears_the_paid_flag() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    store::create(c, &input("X-1"), "OB-", Source::Api).unwrap();
    import(c, "bitrix-3.1-payments.xml", "in1").unwrap();
    assert!(store::get(c, "OB-000001").unwrap().unwrap().onec.paid);
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(fixture("bitrix-3.1-payments.xml")).unwrap();
    // The same payment document, now unposted.
    let pay = src.find("ПП-000123").unwrap();
    let posted = pay + src[pay..].find("<Значение>true</Значение>").unwrap();
    let changed = format!(
        "{}<Значение>false</Значение>{}",
        &src[..posted],
        &src[posted + "<Значение>true</Значение>".len()..]
    );
    let p = dir.path().join("documents2.xml");
    std::fs::write(&p, changed).unwrap();
    cml_in::import_file(c, &p, "in2", "documents2.xml", &StatusMap::default()).unwrap();
    let o = store::get(c, "OB-000001").unwrap().unwrap();
    assert!(!o.onec.paid);
    assert!(o.onec.shipped);
}

#[test]
fn old_attribute_style_documents_apply() {
    let (_d, pool) = db();
    let c = &mut pool.get().unwrap();
    for x in ["X-1", "X-2", "X-3"] {
        store::create(c, &input(x), "OB-", Source::Api).unwrap();
    }
    let st = import(c, "old-attributes-cp1251.xml", "in1").unwrap();
    // A flat shipment document has no container to tie it to an order: skipped.
    assert_eq!((st.documents, st.matched, st.skipped), (3, 2, 1));
    let o1 = store::get(c, "OB-000001").unwrap().unwrap();
    assert_eq!(o1.onec.number.as_deref(), Some("ЗК-0042"));
    assert_eq!(o1.onec.date.as_deref(), Some("2008-03-28T10:11:12"));
    let o2 = store::get(c, "OB-000002").unwrap().unwrap();
    assert!(o2.onec.posted && o2.onec.paid);
    assert_eq!(o2.onec.payment_number.as_deref(), Some("ПКО-7 & 8"));
    assert_eq!(o2.onec.payment_date.as_deref(), Some("2008-03-28T09:00:00"));
}
