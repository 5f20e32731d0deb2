use super::*;
use crate::relay::state;
use crate::store::schema::outbox;

fn store() -> (tempfile::TempDir, crate::store::DbPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&crate::store::testing::url(dir.path()), 2).unwrap();
    (dir, pool)
}

/// A catalog: two groups (shoes ⊃ boots, tea), a "На Ozon" flag property, two price types,
/// two warehouses. `n` goods `g1..gN` with article `A-i`, stock `i` on W1 and `-1` on W2.
fn catalog(
    articles: &[(&str, &str)],
    stock: &[(&str, &str, &str)],
    prices: &[(&str, &str)],
) -> String {
    let goods: String = articles
        .iter()
        .map(|(id, art)| {
            let group = if id.ends_with('t') { "grp-tea" } else { "grp-boots" };
            let flag = if id.starts_with('n') { "no" } else { "yes" };
            format!(
                "<Товар><Ид>{id}</Ид><Артикул>{art}</Артикул><Наименование>Товар {id}</Наименование>\
                 <Группы><Ид>{group}</Ид></Группы>\
                 <ЗначенияСвойств><ЗначенияСвойства><Ид>p-ozon</Ид><Значение>{flag}</Значение></ЗначенияСвойства></ЗначенияСвойств></Товар>"
            )
        })
        .collect();
    let offers: String = articles
        .iter()
        .map(|(id, _)| {
            let st: String = stock
                .iter()
                .filter(|(o, _, _)| o == id)
                .map(|(_, w, q)| format!("<Остаток><Склад><Ид>{w}</Ид><Количество>{q}</Количество></Склад></Остаток>"))
                .collect();
            let pr: String = prices
                .iter()
                .filter(|(o, _)| o == id)
                .map(|(_, v)| format!("<Цена><ИдТипаЦены>pt-retail</ИдТипаЦены><ЦенаЗаЕдиницу>{v}</ЦенаЗаЕдиницу></Цена><Цена><ИдТипаЦены>pt-old</ИдТипаЦены><ЦенаЗаЕдиницу>9999</ЦенаЗаЕдиницу></Цена>"))
                .collect();
            format!("<Предложение><Ид>{id}</Ид><Наименование>Товар {id}</Наименование><Цены>{pr}</Цены><Остатки>{st}</Остатки></Предложение>")
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация ВерсияСхемы="2.10" ДатаФормирования="2026-11-23T10:00:00">
<Классификатор><Ид>cls</Ид><Наименование>К</Наименование>
<Группы><Группа><Ид>grp-shoes</Ид><Наименование>Обувь</Наименование><Группы><Группа><Ид>grp-boots</Ид><Наименование>Сапоги</Наименование></Группа></Группы></Группа>
<Группа><Ид>grp-tea</Ид><Наименование>Чай</Наименование></Группа></Группы>
<Свойства><Свойство><Ид>p-ozon</Ид><Наименование>На Ozon</Наименование><ТипЗначений>Справочник</ТипЗначений>
<ВариантыЗначений><Справочник><ИдЗначения>yes</ИдЗначения><Значение>Да</Значение></Справочник><Справочник><ИдЗначения>no</ИдЗначения><Значение>Нет</Значение></Справочник></ВариантыЗначений></Свойство></Свойства>
<Склады><Склад><Ид>W1</Ид><Наименование>Основной</Наименование></Склад><Склад><Ид>W2</Ид><Наименование>Витрина</Наименование></Склад></Склады>
</Классификатор>
<Каталог><Ид>cat</Ид><ИдКлассификатора>cls</ИдКлассификатора><Наименование>К</Наименование><Товары>{goods}</Товары></Каталог>
<ПакетПредложений><Ид>pp</Ид><Наименование>П</Наименование><ИдКаталога>cat</ИдКаталога><ИдКлассификатора>cls</ИдКлассификатора>
<ТипыЦен><ТипЦены><Ид>pt-retail</Ид><Наименование>Розничная</Наименование><Валюта>RUB</Валюта></ТипЦены><ТипЦены><Ид>pt-old</Ид><Наименование>Старая</Наименование><Валюта>RUB</Валюта></ТипЦены></ТипыЦен>
<Предложения>{offers}</Предложения></ПакетПредложений>
</КоммерческаяИнформация>"#
    )
}

fn import(conn: &mut Conn, dir: &std::path::Path, xml: &str) {
    let p = dir.join(format!("c{}.xml", now_ms()));
    std::fs::write(&p, xml).unwrap();
    crate::catalog::import_file(conn, &p, None, &mut |_| {}).unwrap();
    // Catalog rows are stamped in ms: make the next import's stamp differ.
    std::thread::sleep(std::time::Duration::from_millis(5));
}

fn cfg() -> OzonConfig {
    OzonConfig {
        base_url: Some("http://sim".into()),
        warehouse_id: Some(7),
        ..Default::default()
    }
}

fn pending(conn: &mut Conn, kind: &str) -> Vec<serde_json::Value> {
    outbox::table
        .filter(outbox::kind.eq(kind))
        .filter(outbox::state.eq(state::PENDING))
        .order(outbox::id)
        .select(outbox::payload)
        .load::<String>(conn)
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
}

#[test]
fn stock_is_the_sum_of_warehouses_with_negatives_as_zero_less_the_reserve() {
    let (d, pool) = store();
    let mut c = pool.get().unwrap();
    import(
        &mut c,
        d.path(),
        &catalog(
            &[("g1", "A-1"), ("g2t", "A-2")],
            &[("g1", "W1", "5"), ("g1", "W2", "-3"), ("g2t", "W1", "2.9")],
            &[("g1", "100"), ("g2t", "1234.5")],
        ),
    );
    let mut cfg = cfg();
    cfg.stock_reserve = 1;
    cfg.old_price_type = Some("Старая".into());
    // The watermark keeps a one-second margin for rows committed around a run.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let st = plan(&mut c, &cfg, false).unwrap();
    assert!(st.full);
    assert_eq!((st.stock_queued, st.price_queued), (2, 2));
    let stocks = pending(&mut c, KIND_STOCK);
    let by: HashMap<&str, i64> = stocks
        .iter()
        .map(|v| {
            (
                v["offer_id"].as_str().unwrap(),
                v["stock"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by["A-1"], 4, "5 + max(-3,0) - reserve 1");
    assert_eq!(by["A-2"], 1, "floor(2.9) - 1");
    assert!(stocks.iter().all(|v| v["warehouse_id"] == 7));
    let prices = pending(&mut c, KIND_PRICE);
    let p2 = prices.iter().find(|v| v["offer_id"] == "A-2").unwrap();
    assert_eq!(p2["price"], "1234.50");
    assert_eq!(p2["old_price"], "9999.00");

    // Nothing changed → nothing queued, and a look at no offer at all.
    let st = plan(&mut c, &cfg, false).unwrap();
    assert!(!st.full);
    assert_eq!((st.checked, st.stock_queued, st.price_queued), (0, 0, 0));
}

#[test]
fn only_the_delta_is_queued_and_a_newer_value_supersedes_the_unsent_one() {
    let (d, pool) = store();
    let mut c = pool.get().unwrap();
    let goods: Vec<(String, String)> = (1..=20)
        .map(|i| (format!("g{i}"), format!("A-{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = goods
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let stock = |changed: i64| -> Vec<(String, String, String)> {
        goods
            .iter()
            .enumerate()
            .map(|(i, (g, _))| {
                (
                    g.clone(),
                    "W1".to_string(),
                    if i == 3 { changed } else { i as i64 }.to_string(),
                )
            })
            .collect()
    };
    let xml = |changed: i64| {
        let s = stock(changed);
        let sr: Vec<(&str, &str, &str)> = s
            .iter()
            .map(|(a, b, q)| (a.as_str(), b.as_str(), q.as_str()))
            .collect();
        catalog(&refs, &sr, &[])
    };
    import(&mut c, d.path(), &xml(3));
    // The watermark keeps a one-second margin for rows committed around a run.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(plan(&mut c, &cfg(), false).unwrap().stock_queued, 20);
    import(&mut c, d.path(), &xml(50));
    let st = plan(&mut c, &cfg(), false).unwrap();
    assert_eq!((st.checked, st.stock_queued), (1, 1), "only g4 changed");
    import(&mut c, d.path(), &xml(60));
    plan(&mut c, &cfg(), false).unwrap();
    let msgs = pending(&mut c, KIND_STOCK);
    assert_eq!(
        msgs.len(),
        20,
        "the unsent g4 message was superseded, not duplicated"
    );
    let g4 = msgs.iter().find(|v| v["offer_id"] == "A-4").unwrap();
    assert_eq!(g4["stock"], 60);
}

#[test]
fn the_stored_link_survives_an_article_change_which_is_reported() {
    let (d, pool) = store();
    let mut c = pool.get().unwrap();
    import(
        &mut c,
        d.path(),
        &catalog(&[("g1", "OLD-1")], &[("g1", "W1", "1")], &[]),
    );
    plan(&mut c, &cfg(), false).unwrap();
    import(
        &mut c,
        d.path(),
        &catalog(&[("g1", "NEW-1")], &[("g1", "W1", "2")], &[]),
    );
    let st = plan(&mut c, &cfg(), false).unwrap();
    assert_eq!(st.article_changed, 1);
    let msgs = pending(&mut c, KIND_STOCK);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0]["offer_id"], "OLD-1",
        "Ozon keeps the first offer_id"
    );
    assert_eq!(msgs[0]["stock"], 2);
    let now: Option<String> = ozon_offers::table
        .find("g1")
        .select(ozon_offers::article_now)
        .first(&mut c)
        .unwrap();
    assert_eq!(now.as_deref(), Some("NEW-1"));
    assert_eq!(
        offer_ref_for(&mut c, "OLD-1").unwrap().as_deref(),
        Some("g1")
    );
}

#[test]
fn filters_by_property_and_group_and_a_filtered_out_offer_gets_zero() {
    let (d, pool) = store();
    let mut c = pool.get().unwrap();
    // n3 carries "На Ozon" = Нет; g2t is tea, outside "Обувь".
    let xml = catalog(
        &[("g1", "A-1"), ("g2t", "A-2"), ("n3", "A-3")],
        &[("g1", "W1", "5"), ("g2t", "W1", "5"), ("n3", "W1", "5")],
        &[],
    );
    import(&mut c, d.path(), &xml);
    let mut cfg = cfg();
    cfg.filter_property = Some("На Ozon".into());
    let st = plan(&mut c, &cfg, false).unwrap();
    let ids: Vec<String> = pending(&mut c, KIND_STOCK)
        .iter()
        .map(|v| v["offer_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["A-1", "A-2"], "{st:?}");
    // Now groups too: only "Обувь" (with its subgroup "Сапоги"). The config change forces a
    // full look; A-2 was exported before, so it gets 0 instead of silence.
    cfg.filter_groups = vec!["Обувь".into()];
    plan(&mut c, &cfg, false).unwrap();
    let a2: Vec<i64> = pending(&mut c, KIND_STOCK)
        .iter()
        .filter(|v| v["offer_id"] == "A-2")
        .map(|v| v["stock"].as_i64().unwrap())
        .collect();
    assert_eq!(a2, vec![0]);
}

#[test]
fn offer_id_by_1c_id_and_no_article_and_conflicts() {
    let (d, pool) = store();
    let mut c = pool.get().unwrap();
    import(
        &mut c,
        d.path(),
        &catalog(
            &[("g1", "SAME"), ("g2", "SAME"), ("g3", " ")],
            &[("g1", "W1", "1"), ("g2", "W1", "1"), ("g3", "W1", "1")],
            &[],
        ),
    );
    let st = plan(&mut c, &cfg(), false).unwrap();
    assert_eq!((st.conflicts, st.no_offer_id, st.stock_queued), (1, 1, 1));

    let (d2, pool2) = store();
    let mut c2 = pool2.get().unwrap();
    import(
        &mut c2,
        d2.path(),
        &catalog(&[("g1", "X")], &[("g1", "W1", "1")], &[]),
    );
    let mut by_id = cfg();
    by_id.offer_id = "id".into();
    plan(&mut c2, &by_id, false).unwrap();
    assert_eq!(pending(&mut c2, KIND_STOCK)[0]["offer_id"], "g1");
}

#[test]
fn ozon_number_formats() {
    assert_eq!(ozon_price("1234.5").as_deref(), Some("1234.50"));
    assert_eq!(ozon_price("1 200,4"), Some("1200.40".into()));
    assert_eq!(ozon_price("abc"), None);
    assert_eq!(whole_units("5.000"), 5);
    assert_eq!(whole_units("-2"), -2);
    assert_eq!(whole_units("1.9"), 1);
}

#[test]
fn variants_sharing_the_good_article_get_their_own_offer_id() {
    assert_eq!(
        offer_article_for("g1#8b8180ff-9636", Some("AR-1"), Some("AR-1")).as_deref(),
        Some("AR-1-8b8180ff")
    );
    assert_eq!(
        offer_article_for("g1#8b8180ff-9636", None, Some("AR-1")).as_deref(),
        Some("AR-1-8b8180ff")
    );
    assert_eq!(
        offer_article_for("g1#8b8180ff", Some("OWN-7"), Some("AR-1")).as_deref(),
        Some("OWN-7")
    );
    assert_eq!(
        offer_article_for("g1", None, Some(" AR-1 ")).as_deref(),
        Some("AR-1")
    );
    assert_eq!(offer_article_for("g1#x", None, None), None);
}
