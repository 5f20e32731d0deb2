//! Dashboard pages for orders, the catalog and reconciliation reports, black-box: a catalog
//! from 1C whose names carry markup and quotes, orders through the API, and reports against
//! the Ozon simulator.

mod common;

use common::*;
use diesel::prelude::*;
use serde_json::{json, Value};

/// Good g1's name as 1C writes it (XML-escaped) and as it must never appear in a page.
const RAW_NAME: &str = "Дрель <script>alert(1)</script> \"Профи\" & 'Ко'";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Two goods: g1 (name with markup, article XSS-1) and g2 with one characteristic offer g2#c1.
fn import_file() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<Классификатор><Ид>cls1</Ид><Наименование>Классификатор</Наименование>\n\
<Группы><Группа><Ид>grp1</Ид><Наименование>Инструменты</Наименование></Группа></Группы>\n\
</Классификатор>\n\
<Каталог СодержитТолькоИзменения=\"false\"><Ид>cat1</Ид><ИдКлассификатора>cls1</ИдКлассификатора><Наименование>Каталог</Наименование>\n<Товары>\n\
<Товар><Ид>g1</Ид><Артикул>XSS-1</Артикул><Наименование>{n1}</Наименование><БазоваяЕдиница Код=\"796\">шт</БазоваяЕдиница><Группы><Ид>grp1</Ид></Группы></Товар>\n\
<Товар><Ид>g2</Ид><Артикул>B-2</Артикул><Наименование>Пила дисковая</Наименование><БазоваяЕдиница Код=\"796\">шт</БазоваяЕдиница><Группы><Ид>grp1</Ид></Группы></Товар>\n\
</Товары>\n</Каталог>\n</КоммерческаяИнформация>\n",
        n1 = xml_escape(RAW_NAME)
    )
}

fn offers_file() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<КоммерческаяИнформация ВерсияСхемы=\"2.07\" ДатаФормирования=\"2026-11-23T10:00:00\">\n\
<ПакетПредложений СодержитТолькоИзменения=\"false\"><Ид>cat1#</Ид><Наименование>Пакет</Наименование><ИдКаталога>cat1</ИдКаталога><ИдКлассификатора>cls1</ИдКлассификатора>\n\
<ТипыЦен><ТипЦены><Ид>pt1</Ид><Наименование>Розничная</Наименование><Валюта>руб</Валюта></ТипЦены></ТипыЦен>\n\
<Склады><Склад><Ид>wh1</Ид><Наименование>Основной склад</Наименование></Склад><Склад><Ид>wh2</Ид><Наименование>Второй</Наименование></Склад></Склады>\n\
<Предложения>\n\
<Предложение><Ид>g1</Ид><Артикул>XSS-1</Артикул><Наименование>{n1}</Наименование>\
<Цены><Цена><Представление>1200.50 руб.</Представление><ИдТипаЦены>pt1</ИдТипаЦены><ЦенаЗаЕдиницу>1200.50</ЦенаЗаЕдиницу><Валюта>руб</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>\
<Количество>7</Количество><Склад ИдСклада=\"wh1\" КоличествоНаСкладе=\"5\"/><Склад ИдСклада=\"wh2\" КоличествоНаСкладе=\"2\"/></Предложение>\n\
<Предложение><Ид>g2#c1</Ид><Артикул>B-2</Артикул><Наименование>Пила дисковая (190 мм)</Наименование>\
<Цены><Цена><Представление>4321 руб.</Представление><ИдТипаЦены>pt1</ИдТипаЦены><ЦенаЗаЕдиницу>4321</ЦенаЗаЕдиницу><Валюта>руб</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>\
<Количество>3</Количество><Склад ИдСклада=\"wh1\" КоличествоНаСкладе=\"3\"/></Предложение>\n\
</Предложения>\n</ПакетПредложений>\n</КоммерческаяИнформация>\n",
        n1 = xml_escape(RAW_NAME)
    )
}

async fn import_catalog(srv: &Server) {
    let (i, o) = (import_file(), offers_file());
    let r = srv
        .upload_and_import(
            &[("import.xml", i.as_bytes()), ("offers.xml", o.as_bytes())],
            &["import.xml", "offers.xml"],
        )
        .await;
    assert_eq!(r.first(), "success", "{}", r.body);
}

async fn post_order(s: &Server, body: &Value) -> String {
    let r = s
        .client
        .post(format!("{}/api/v1/orders", s.base))
        .header("Authorization", format!("Bearer {API_TOKEN}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(st, 201, "{v}");
    v["number"].as_str().unwrap().to_string()
}

fn order_body(channel: &str, ext: &str, customer: &str, offer: &str) -> Value {
    json!({"channel": channel, "external_id": ext, "date": "2026-11-23T10:00:00+03:00",
        "currency": "RUB",
        "customer": {"name": customer, "phone": "+79990000000", "email": "buyer@example.ru"},
        "lines": [{"offer_id": offer, "quantity": 2, "price": 1200.50}],
        "delivery": {"method": "pickup", "cost": 0.0}, "payment": {"method": "card", "paid": false}})
}

/// Not a raw markup from the data anywhere in the page.
fn assert_escaped(body: &str) {
    assert!(!body.contains("<script>alert"), "raw markup in the page");
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the escaped name is not in the page"
    );
}

/// The orders of a list page, by their data-number rows.
fn listed(body: &str) -> Vec<String> {
    body.split("data-number=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_orders_pages_show_1c_data_escaped_with_filters_and_timeline() {
    let srv = Server::start();
    add_user(srv.data.path(), "anna", "operator", "password1");
    add_user(srv.data.path(), "vera", "viewer", "password2");
    import_catalog(&srv).await;

    // Not signed in: every page sends to /login.
    let anon = no_redirect_client();
    for p in [
        "/orders",
        "/orders/X-1",
        "/catalog",
        "/catalog?q=XSS",
        "/catalog/offers?id=g1",
        "/reports",
        "/reports/1",
        "/reports/1.csv",
    ] {
        let r = anon.get(format!("{}{p}", srv.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "{p}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with("/login"), "{p} → {loc}");
    }

    let d = Dash::login(&srv.base, "anna", "password1").await.unwrap();

    // Catalog search by article and by name; the name is escaped.
    let by_article = d.get("/catalog?q=xss-1").await;
    assert_eq!(by_article.status, 200);
    assert!(by_article.body.contains("href=\"/catalog/offers?id=g1\""));
    assert!(!by_article.body.contains("offers?id=g2"));
    assert_escaped(&by_article.body);
    let by_name = d.get("/catalog?q=%D0%9F%D1%80%D0%BE%D1%84%D0%B8").await; // "Профи"
    assert!(by_name.body.contains("href=\"/catalog/offers?id=g1\""));
    assert!(!by_name.body.contains("offers?id=g2"));
    assert_escaped(&by_name.body);
    let saw = d.get("/catalog?q=%D0%BF%D0%B8%D0%BB%D0%B0").await; // "пила" (by the good's name)
    assert!(
        saw.body.contains("href=\"/catalog/offers?id=g2%23c1\""),
        "{}",
        saw.body
    );
    assert!(!saw.body.contains("offers?id=g1\""));
    // LIKE wildcards are taken literally.
    for wild in ["%25", "_", "%5C"] {
        let p = d.get(&format!("/catalog?q={wild}")).await;
        assert_eq!(p.status, 200);
        assert!(!p.body.contains("/catalog/offers?id="), "{wild} matched");
    }
    let all = d.get("/catalog").await;
    assert!(all.body.contains("offers?id=g1\"") && all.body.contains("offers?id=g2%23c1\""));

    // The offer page: name escaped, price, stock per warehouse.
    let offer = d.get("/catalog/offers?id=g1").await;
    assert_eq!(offer.status, 200, "{}", offer.body);
    assert_escaped(&offer.body);
    assert!(offer.body.contains("1200.5"), "price");
    assert!(offer.body.contains("Розничная"));
    assert!(
        offer.body.contains("<td>Основной склад</td><td>5</td>"),
        "stock wh1"
    );
    assert!(
        offer.body.contains("<td>Второй</td><td>2</td>"),
        "stock wh2"
    );
    assert!(offer.body.contains("<th id=\"offer-quantity\">7</th>"));
    let offer2 = d.get("/catalog/offers?id=g2%23c1").await;
    assert_eq!(offer2.status, 200);
    assert!(offer2.body.contains("4321"));
    assert!(offer2.body.contains("Пила дисковая (190 мм)"));
    assert_eq!(d.get("/catalog/offers?id=nope").await.status, 404);

    // Orders through the API.
    let n1 = post_order(&srv, &order_body("api", "X-1", "Иванов Иван", "g1")).await;
    let n2 = post_order(&srv, &order_body("shop", "S-1", "Петров Пётр", "g2#c1")).await;
    let list = d.get("/orders").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        listed(&list.body),
        vec![n2.clone(), n1.clone()],
        "newest first"
    );
    let shop = d.get("/orders?channel=shop").await;
    assert_eq!(listed(&shop.body), vec![n2.clone()]);
    let petrov = d
        .get("/orders?q=%D0%9F%D0%B5%D1%82%D1%80%D0%BE%D0%B2")
        .await; // "Петров"
    assert_eq!(listed(&petrov.body), vec![n2.clone()]);
    let by_ext = d.get("/orders?q=X-1").await;
    assert_eq!(listed(&by_ext.body), vec![n1.clone()]);
    assert!(listed(&d.get("/orders?status=cancelled").await.body).is_empty());
    assert_eq!(listed(&d.get("/orders?status=new").await.body).len(), 2);
    assert_eq!(listed(&d.get("/orders?pending=1").await.body).len(), 2);

    // 1C takes both; a third order is the only one pending then.
    let cookie = srv.login("sale").await;
    let q = srv.get("type=sale&mode=query", None, Some(&cookie)).await;
    assert_eq!(q.status, 200);
    assert!(q.body.contains(&n1) && q.body.contains(&n2));
    let ok = srv.get("type=sale&mode=success", None, Some(&cookie)).await;
    assert_eq!(ok.first(), "success");
    let n3 = post_order(&srv, &order_body("api", "X-2", "Сидоров", "g1")).await;
    assert_eq!(
        listed(&d.get("/orders?pending=1").await.body),
        vec![n3.clone()]
    );
    assert_eq!(
        listed(&d.get("/orders?pending=1&channel=shop").await.body).len(),
        0
    );

    // The order page: header, lines (name from the catalog, escaped), customer, timeline.
    let page = d.get(&format!("/orders/{n1}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page
        .body
        .contains(&format!("id=\"order-number\">{n1}</span>")));
    assert!(page.body.contains("X-1"));
    assert!(page.body.contains("Иванов Иван"));
    assert_escaped(&page.body);
    assert!(page.body.contains("href=\"/catalog/offers?id=g1\""));
    let timeline = &page.body[page.body.find("class=\"timeline\"").expect("timeline")..];
    assert!(timeline.contains("source-api"), "created through the API");
    assert!(timeline.contains(">created<"), "created event");
    assert!(timeline.contains(">exported<"), "exported to 1C event");
    let enc = percent_encoding::utf8_percent_encode(&n1, percent_encoding::NON_ALPHANUMERIC);
    assert!(
        page.body
            .contains(&format!("href=\"/messages?order={enc}\"")),
        "link to the order's messages"
    );
    assert_eq!(d.get("/orders/NO-SUCH").await.status, 404);

    // Reports without Ozon: the list is empty, run now says Ozon is not configured.
    let reports = d.get("/reports").await;
    assert_eq!(reports.status, 200);
    assert!(reports.body.contains("id=\"run-reconciliation\""));
    assert_eq!(d.post_raw("/reports/run", &[]).await.status, 403, "no CSRF");
    let run = d.post("/reports/run", &[]).await;
    assert_eq!(run.status, 303);
    let loc = run.location.unwrap();
    let flashed = d.get(&loc).await;
    assert!(
        flashed.body.contains("Ozon не настроен"),
        "{}",
        flashed.body
    );
    assert_eq!(d.get("/reports/1").await.status, 404);
    assert_eq!(d.get("/reports/1.csv").await.status, 404);

    // A viewer reads but may not run.
    let v = Dash::login(&srv.base, "vera", "password2").await.unwrap();
    assert!(!v.get("/reports").await.body.contains("run-reconciliation"));
    assert_eq!(v.post("/reports/run", &[]).await.status, 403);
    assert_eq!(v.get(&format!("/orders/{n2}")).await.status, 200);
}

async fn outbox_done(srv: &Server) -> Option<()> {
    let (s, v) = srv.api("/api/v1/outbox?limit=1000&target=ozon").await;
    assert_eq!(s, 200, "{v}");
    let all = v["messages"].as_array().unwrap();
    (!all.is_empty() && all.iter().all(|m| m["state"] == "done")).then_some(())
}

/// Run now from the dashboard: the id of the report it redirected to.
async fn run_now(d: &Dash) -> i64 {
    let r = d.post("/reports/run", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = r.location.unwrap();
    let id = loc
        .strip_prefix("/reports/")
        .and_then(|s| s.split('?').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("redirect to a report: {loc}"));
    let page = d.get(&loc).await;
    assert!(page.body.contains("id=\"flash\""), "{}", page.body);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_report_pages_and_csv_against_the_ozon_simulator() {
    let sim = Sim::start(&["--stock-cooldown-secs", "1"]);
    let env: Vec<(&str, String)> = sim.obmen_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let srv = Server::start_with(&env);
    add_user(srv.data.path(), "anna", "operator", "password1");
    import_catalog(&srv).await;
    eventually(60, "stocks and prices delivered to Ozon", || {
        outbox_done(&srv)
    })
    .await;
    let d = Dash::login(&srv.base, "anna", "password1").await.unwrap();

    // What was pushed to Ozon, on the offer page.
    let offer = d.get("/catalog/offers?id=g1").await;
    assert!(
        offer.body.contains("<td class=\"mono\">XSS-1</td>"),
        "linked offer_id"
    );
    let stock_row = &offer.body[offer
        .body
        .find("class=\"ozon-stock ok\"")
        .expect("acked stock")..];
    assert!(
        stock_row.contains("<td>7</td><td>7</td>"),
        "queued and acked 7"
    );
    assert!(
        offer.body.contains("class=\"ozon-price ok\""),
        "acked price"
    );
    assert!(offer.body.contains(">Сверки ещё не было.<"));

    // In step: a report with no differences.
    let first = run_now(&d).await;
    let page = d.get(&format!("/reports/{first}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("id=\"report-differences\">0<"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"report-checked\">2<"),
        "{}",
        page.body
    );

    // Someone changes the stock in Ozon's cabinet.
    let body = json!({"stocks": [{"offer_id": "XSS-1", "stock": 14,
        "warehouse_id": SIM_WAREHOUSE.parse::<i64>().unwrap()}]});
    eventually(10, "the stock changed on Ozon", || async {
        let (s, v) = sim.ozon("/v2/products/stocks", body.clone()).await;
        assert_eq!(s, 200, "{v}");
        (v["result"][0]["updated"] == true).then_some(())
    })
    .await;
    let second = run_now(&d).await;
    assert!(second > first);
    let page = d.get(&format!("/reports/{second}")).await;
    assert!(
        page.body.contains("id=\"report-differences\">1<"),
        "{}",
        page.body
    );
    let items = &page.body[page.body.find("class=\"items\"").expect("items")..];
    assert!(
        items.contains("href=\"/catalog/offers?id=g1\">XSS-1</a>"),
        "{items}"
    );
    assert!(items.contains("stock"));
    assert!(items.contains("<td>7</td>\n<td>14</td>"), "{items}");

    // The list shows both, newest first, with CSV links.
    let list = d.get("/reports").await;
    let a = list
        .body
        .find(&format!("data-report=\"{second}\""))
        .unwrap();
    let b = list.body.find(&format!("data-report=\"{first}\"")).unwrap();
    assert!(a < b);

    // CSV of any report.
    let csv = d.get(&format!("/reports/{second}.csv")).await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.trim_end().lines().collect();
    assert_eq!(lines[0], "\u{feff}offer_id,offer_ref,field,obmen,ozon");
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[1].starts_with("XSS-1,g1,stock"), "{}", csv.body);
    assert!(lines[1].ends_with(",7,14"), "{}", csv.body);
    let csv1 = d.get(&format!("/reports/{first}.csv")).await;
    assert_eq!(csv1.body.trim_end().lines().count(), 1, "{}", csv1.body);

    // The offer page shows the difference of the latest report; the other offer has none.
    let offer = d.get("/catalog/offers?id=g1").await;
    let diffs = &offer.body[offer.body.find("class=\"diffs\"").expect("diffs")..];
    assert!(diffs.contains("<td>7</td><td>14</td>"), "{diffs}");
    let other = d.get("/catalog/offers?id=g2%23c1").await;
    assert!(other.body.contains("id=\"no-diffs\""));

    // Both runs are in the audit log.
    let pool = obmen::store::open(&obmen::store::testing::url(srv.data.path()), 1).unwrap();
    let mut c = pool.get().unwrap();
    use obmen::store::schema::audit_log::dsl as a;
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let runs: Vec<Row> = a::audit_log
        .filter(a::action.eq("run_reconciliation"))
        .order(a::id)
        .select((a::username, a::target, a::before, a::after))
        .load(&mut c)
        .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].0, "anna");
    assert_eq!(runs[1].1.as_deref(), Some(second.to_string().as_str()));
    assert!(runs[0].2.is_none(), "no report before the first run");
    let before = runs[1].2.as_deref().unwrap();
    assert!(before.contains(&format!("report {first} done")), "{before}");
    assert!(runs[1].3.as_deref().unwrap().contains("differences 1"));
}
