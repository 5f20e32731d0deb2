//! The fixtures in `fixtures/` go through the real import pipeline (`catalog::import_file`) into
//! a fresh SQLite store; counts and particular values are checked through the read API queries.

use std::path::PathBuf;

use obmen::catalog::{import_file, query, ImportStats};
use obmen::i18n::Lang;
use obmen::store::DbPool;
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

struct Store {
    _dir: tempfile::TempDir,
    pool: DbPool,
}

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = obmen::store::open(&obmen::store::testing::url(dir.path()), 2).unwrap();
        Store { _dir: dir, pool }
    }

    fn conn(&self) -> obmen::store::PooledConn {
        self.pool.get().unwrap()
    }

    fn import(&self, name: &str) -> ImportStats {
        import_file(&mut self.conn(), &fixture(name), None, &mut |_| {})
            .unwrap_or_else(|e| panic!("{name}: {}", e.describe(Lang::En)))
    }

    fn import_err(&self, name: &str) -> obmen::catalog::ImportError {
        import_file(&mut self.conn(), &fixture(name), None, &mut |_| {}).expect_err("must fail")
    }

    fn summary(&self) -> query::Summary {
        query::summary(&mut self.conn()).unwrap()
    }

    fn good(&self, id: &str) -> Value {
        query::good(&mut self.conn(), id)
            .unwrap()
            .unwrap_or_else(|| panic!("good {id}"))
    }

    fn offer(&self, id: &str) -> Value {
        query::offer(&mut self.conn(), id)
            .unwrap()
            .unwrap_or_else(|| panic!("offer {id}"))
    }
}

#[test]
fn windows_1251_catalog_with_crlf() {
    let s = Store::new();
    let st = s.import("cp1251_catalog.xml");
    assert_eq!(st.encoding.as_deref(), Some("windows-1251"));
    assert_eq!(st.schema_version.as_deref(), Some("2.04"));
    assert_eq!((st.goods, st.groups), (2, 2));
    let sum = s.summary();
    assert_eq!((sum.goods, sum.groups, sum.deleted_goods), (2, 2, 1));
    let g = s.good("w-1");
    assert_eq!(g["name"], "Ванна акриловая «Классик» 170x70 №1");
    assert_eq!(g["article"], "ВН-170");
    assert_eq!(g["unit"]["code"], "796");
    assert_eq!(g["unit"]["name"], "шт");
    assert_eq!(g["groups"], json!(["grp-acryl"]));
    let g2 = s.good("w-2");
    assert_eq!(g2["deleted"], true);
    assert_eq!(g2["status"], "Удален");
}

#[test]
fn offers_with_bom_namespace_205_and_comma_decimals() {
    let s = Store::new();
    let st = s.import("bom_ns205_offers.xml");
    assert_eq!(st.only_changes, Some(true));
    assert_eq!((st.offers, st.price_types, st.warehouses), (2, 2, 2));
    let o = s.offer("g-205");
    let prices = o["prices"].as_array().unwrap();
    let retail = prices
        .iter()
        .find(|p| p["price_type_id"] == "pt-retail")
        .unwrap();
    assert_eq!(retail["value"], json!(1500.5));
    assert_eq!(retail["price_type"], "Розничная");
    let opt = prices
        .iter()
        .find(|p| p["price_type_id"] == "pt-opt")
        .unwrap();
    assert_eq!(opt["value"], json!(1200.0));
    assert_eq!(o["quantity"], json!(12.0));
    let mut stock: Vec<(String, f64)> = o["stock"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["warehouse_id"].as_str().unwrap().to_string(),
                l["quantity"].as_f64().unwrap(),
            )
        })
        .collect();
    stock.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        stock,
        vec![("wh-2".to_string(), 2.0), ("wh-main".to_string(), 10.0)]
    );
    let v = s.offer("g-205#red");
    assert_eq!(v["good_id"], "g-205");
    assert_eq!(v["characteristics"][0]["value"], "Красный");
    assert_eq!(s.summary().stock_total, 12.0);
}

#[test]
fn schema_2_03_nomenclature_properties() {
    let s = Store::new();
    let st = s.import("v203_nomenclature_properties.xml");
    assert_eq!(st.schema_version.as_deref(), Some("2.03"));
    assert_eq!((st.goods, st.properties), (1, 2));
    let g = s.good("t-203");
    let props = g["properties"].as_array().unwrap();
    let size = props.iter().find(|p| p["id"] == "p-size").unwrap();
    assert_eq!(size["name"], "Размер");
    assert_eq!(size["text"], "M");
    let brand = props.iter().find(|p| p["id"] == "p-brand").unwrap();
    assert_eq!(brand["name"], "Производитель");
    assert_eq!(brand["text"], "Ромашка");
}

#[test]
fn schema_3_1_classifier_in_offers_and_rests_forms() {
    let s = Store::new();
    let st = s.import("v31_offers_with_classifier.xml");
    assert_eq!(st.schema_version.as_deref(), Some("3.1"));
    assert_eq!((st.offers, st.price_types, st.warehouses), (2, 1, 2));
    let o = s.offer("g-31#c-1");
    assert_eq!(o["good_id"], "g-31");
    assert_eq!(o["stock"].as_array().unwrap().len(), 2);
    assert_eq!(s.offer("g-32")["quantity"], json!(7.0));
    assert_eq!(s.summary().stock_total, 3.0 + 4.5 + 7.0);
}

#[test]
fn container_documents_are_counted_not_stored_as_goods() {
    let s = Store::new();
    let st = s.import("v31_container_documents.xml");
    assert_eq!((st.documents, st.goods), (2, 0));
    assert_eq!(s.summary().goods, 0);
}

#[test]
fn prefixed_names_and_offer_changes() {
    let s = Store::new();
    let st = s.import("prefixed_210_offer_changes.xml");
    assert_eq!(st.only_changes, Some(true));
    assert_eq!(st.offers, 1);
    let o = s.offer("g-210#c-9");
    assert_eq!(o["prices"][0]["value"], json!(99.9));
    assert_eq!(o["stock"][0]["warehouse_id"], "wh-210");
    assert_eq!(o["stock"][0]["quantity"], json!(5.0));
}

#[test]
fn import_holding_classifier_catalog_and_offers() {
    let s = Store::new();
    let st = s.import("import_with_offers_package.xml");
    assert_eq!(
        (st.goods, st.offers, st.properties, st.price_types),
        (2, 1, 1, 1)
    );
    assert_eq!(st.only_changes, Some(false));
    let g = s.good("t-all-1");
    assert_eq!(g["name"], "Чай «Слон» №1 <500 г>");
    assert_eq!(g["article"], "R&D-1");
    assert_eq!(g["full_name"], "Чай чёрный «Слон» №1, 500 г");
    assert_eq!(g["barcode"], "4600000000011");
    assert_eq!(
        g["images"],
        json!([
            "import_files/ab/t-all-1.jpg",
            "import_files/ab/t-all-1b.jpg",
            "import_files/ab/extra.png"
        ])
    );
    assert_eq!(g["properties"][0]["text"], "Красный");
    assert_eq!(g["taxes"][0]["value"], "20");
    assert_eq!(g["offers"][0]["prices"][0]["value"], json!(250.0));
    assert_eq!(s.good("t-all-2")["deleted"], true);
    assert_eq!(s.summary().deleted_goods, 1);
}

#[test]
fn utf16_with_bom() {
    let s = Store::new();
    let st = s.import("utf16_catalog.xml");
    assert_eq!(st.encoding.as_deref(), Some("UTF-16LE"));
    assert_eq!(s.good("t-16")["name"], "Товар в UTF-16");
}

#[test]
fn broken_file_fails_with_position_and_stores_nothing() {
    let s = Store::new();
    s.import("cp1251_catalog.xml");
    let before = s.summary();
    let e = s.import_err("bad_broken_mid_list.xml");
    assert_eq!(e.position().map(|p| p.0), Some(5));
    let ru = e.describe(Lang::Ru);
    assert!(ru.contains("строка 5, столбец"), "{ru}");
    assert!(ru.contains("</Артикул>"), "{ru}");
    assert!(e.describe(Lang::En).contains("line 5"));
    assert_eq!(s.summary(), before);
    assert!(query::good(&mut s.conn(), "b-1").unwrap().is_none());
}

#[test]
fn hostile_and_misdeclared_files_are_refused() {
    let s = Store::new();
    let started = std::time::Instant::now();
    let e = s.import_err("bad_billion_laughs.xml");
    assert!(started.elapsed().as_secs() < 5);
    assert!(
        e.describe(Lang::Ru).contains("ENTITY"),
        "{}",
        e.describe(Lang::Ru)
    );

    let e = s.import_err("bad_cp1251_declared_utf8.xml");
    let ru = e.describe(Lang::Ru);
    assert!(ru.contains("UTF-8") && ru.contains("windows-1251"), "{ru}");
    assert!(ru.ends_with("строка 2, столбец 2"), "{ru}");

    let e = s.import_err("bad_utf8_declared_cp1251.xml");
    let ru = e.describe(Lang::Ru);
    assert!(ru.contains("windows-1251") && ru.contains("UTF-8"), "{ru}");
    assert_eq!(s.summary().goods, 0);
}

#[test]
fn reimport_is_unchanged() {
    let s = Store::new();
    s.import("import_with_offers_package.xml");
    let again = s.import("import_with_offers_package.xml");
    assert_eq!((again.created, again.updated), (0, 0));
    assert_eq!(again.unchanged, 3);
}
