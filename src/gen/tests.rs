use std::collections::{HashMap, HashSet};

use quick_xml::events::Event;

use super::*;

/// Prices (type id, value), stock (warehouse id, quantity), Количество.
type OfferDetail = (Vec<(String, String)>, Vec<(String, String)>, String);

fn gen(dir: &Path, goods: u64, seed: u64, images: bool) -> Expected {
    generate(
        dir,
        &GenOptions {
            goods,
            seed,
            images,
        },
    )
    .unwrap()
    .1
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    gen(a.path(), 300, 7, true);
    gen(b.path(), 300, 7, true);
    gen(c.path(), 300, 8, true);
    for f in ["import.xml", "offers.xml", "expected.json"] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        let z = std::fs::read(c.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between runs with the same seed");
        assert!(x != z, "{f} is the same for another seed");
    }
}

#[derive(Default, Debug)]
struct Seen {
    goods: u64,
    deleted: u64,
    groups: u64,
    properties: u64,
    price_types: HashSet<String>,
    warehouses: HashSet<String>,
    offers: u64,
    offer_ids: HashSet<String>,
    stock_milli: u128,
    images: Vec<String>,
    /// offer id → (price type id → value), (warehouse → qty), Количество
    offer_detail: HashMap<String, OfferDetail>,
}

fn milli(s: &str) -> u128 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let mut f = f.to_string();
    while f.len() < 3 {
        f.push('0');
    }
    i.parse::<u128>().unwrap() * 1000 + f.parse::<u128>().unwrap()
}

/// A small independent reader of the generated files: well-formedness (quick-xml checks end
/// names) and counts.
fn scan(path: &Path, seen: &mut Seen) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let mut r = quick_xml::Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut text_buf = String::new();
    let mut cur_offer: Option<String> = None;
    let mut cur_price: (String, String) = Default::default();
    let mut detail: OfferDetail = Default::default();
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                let parent = stack.last().map(String::as_str).unwrap_or("");
                match (parent, name.as_str()) {
                    ("Товары", "Товар") => {
                        seen.goods += 1;
                        for a in e.attributes() {
                            let a = a.unwrap();
                            if a.key.as_ref() == "Статус"
                                && a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .unwrap()
                                    == "Удален"
                            {
                                seen.deleted += 1;
                            }
                        }
                    }
                    ("Группы", "Группа") => seen.groups += 1,
                    ("Свойства", "Свойство") => seen.properties += 1,
                    ("Предложения", "Предложение") => {
                        seen.offers += 1;
                        detail = Default::default();
                    }
                    _ => {}
                }
                stack.push(name);
                text_buf.clear();
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if name == "Склад" && stack.last().map(String::as_str) == Some("Предложение")
                {
                    let mut wid = String::new();
                    let mut q = String::new();
                    for a in e.attributes() {
                        let a = a.unwrap();
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned();
                        if a.key.as_ref() == "ИдСклада" {
                            wid = v;
                        } else if a.key.as_ref() == "КоличествоНаСкладе" {
                            q = v;
                        }
                    }
                    seen.stock_milli += milli(&q);
                    detail.1.push((wid, q));
                }
            }
            Event::Text(t) => text_buf.push_str(t.as_ref()),
            Event::GeneralRef(g) => {
                text_buf.push_str(match g.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                });
            }
            Event::End(_) => {
                let name = stack.pop().unwrap();
                let parent = stack.last().map(String::as_str).unwrap_or("").to_string();
                let gp = stack
                    .len()
                    .checked_sub(2)
                    .map(|i| stack[i].clone())
                    .unwrap_or_default();
                let t = text_buf.clone();
                match (gp.as_str(), parent.as_str(), name.as_str()) {
                    ("ТипыЦен", "ТипЦены", "Ид") => {
                        seen.price_types.insert(t);
                    }
                    ("Склады", "Склад", "Ид") => {
                        seen.warehouses.insert(t);
                    }
                    ("Товары", "Товар", "ПометкаУдаления") if t == "true" => {
                        seen.deleted += 1
                    }
                    ("Товары", "Товар", "Картинка") => seen.images.push(t),
                    ("Предложения", "Предложение", "Ид") => {
                        assert!(seen.offer_ids.insert(t.clone()), "duplicate offer {t}");
                        cur_offer = Some(t);
                    }
                    ("Предложения", "Предложение", "Количество") => {
                        detail.2 = t
                    }
                    ("Цены", "Цена", "ИдТипаЦены") => cur_price.0 = t,
                    ("Цены", "Цена", "ЦенаЗаЕдиницу") => cur_price.1 = t,
                    ("Цены", "Цена", "Валюта") => assert_eq!(t, "руб"),
                    (_, "Цены", "Цена") => detail.0.push(std::mem::take(&mut cur_price)),
                    (_, "Предложения", "Предложение") => {
                        let id = cur_offer.take().unwrap();
                        seen.offer_detail.insert(id, std::mem::take(&mut detail));
                    }
                    _ => {}
                }
                text_buf.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty());
}

#[test]
fn files_are_well_formed_and_expected_json_matches_them() {
    let d = tempfile::tempdir().unwrap();
    let exp = gen(d.path(), 2000, 42, true);
    let mut seen = Seen::default();
    scan(&d.path().join("import.xml"), &mut seen);
    scan(&d.path().join("offers.xml"), &mut seen);
    assert_eq!(seen.goods, exp.goods);
    assert_eq!(seen.deleted, exp.deleted_goods);
    assert!(exp.deleted_goods > 0);
    assert_eq!(seen.groups, exp.groups);
    assert_eq!(seen.properties, exp.properties);
    assert_eq!(seen.price_types.len() as u64, exp.price_types);
    assert_eq!(seen.warehouses.len() as u64, exp.warehouses);
    assert_eq!(seen.offers, exp.offers);
    assert!(
        seen.offer_ids.iter().any(|i| i.contains('#')),
        "has variants"
    );
    assert!(seen.offer_ids.iter().any(|i| !i.contains('#')));
    assert_eq!(milli(&exp.stock_total), seen.stock_milli);
    assert_eq!(seen.images.len() as u64, exp.images);
    for img in &seen.images {
        assert!(d.path().join(img).is_file(), "{img}");
    }
    // Expected.json on disk is what generate returned.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("expected.json")).unwrap()).unwrap();
    assert_eq!(on_disk["goods"], 2000);
    assert_eq!(on_disk["stock_total"], exp.stock_total.as_str());
    // Sample offers: prices, stock and quantity as in the file.
    assert!(exp.sample_offers.len() >= 3);
    for s in &exp.sample_offers {
        let (prices, stock, qty) = &seen.offer_detail[&s.id];
        assert_eq!(&s.quantity, qty, "{}", s.id);
        let want: Vec<(String, String)> = s
            .prices
            .iter()
            .map(|p| (p.price_type_id.clone(), p.value.clone()))
            .collect();
        assert_eq!(&want, prices);
        let want: Vec<(String, String)> = s
            .stock
            .iter()
            .map(|w| (w.warehouse_id.clone(), w.quantity.clone()))
            .collect();
        assert_eq!(&want, stock);
        assert!(s.id.starts_with(&s.good_id));
    }
    // Sample goods' offers exist (unless deleted).
    for g in &exp.sample_goods {
        if g.deleted {
            assert!(g.offers.is_empty());
        }
        for o in &g.offers {
            assert!(seen.offer_ids.contains(o), "{o}");
        }
    }
}

#[test]
fn sizes_are_realistic() {
    let d = tempfile::tempdir().unwrap();
    let exp = gen(d.path(), 1000, 1, false);
    let per_good = exp.import_bytes / 1000;
    eprintln!(
        "import {} B/good, offers {} B/good, {} offers",
        per_good,
        exp.offers_bytes / 1000,
        exp.offers
    );
    assert!(
        (2500..=4000).contains(&per_good),
        "import.xml: {per_good} B per good"
    );
    let offers_per_good = exp.offers_bytes / 1000;
    assert!(
        (1500..=4000).contains(&offers_per_good),
        "offers.xml: {offers_per_good} B per good"
    );
    assert!(exp.offers > 1000 && exp.offers < 2500, "{}", exp.offers);
}

#[test]
fn tiny_catalogs_work() {
    let d = tempfile::tempdir().unwrap();
    let exp = gen(d.path(), 1, 3, false);
    assert_eq!(exp.goods, 1);
    let mut seen = Seen::default();
    scan(&d.path().join("import.xml"), &mut seen);
    scan(&d.path().join("offers.xml"), &mut seen);
    assert_eq!(seen.goods, 1);
    assert_eq!(seen.offers, exp.offers);
    let d0 = tempfile::tempdir().unwrap();
    let exp0 = gen(d0.path(), 0, 3, false);
    assert_eq!((exp0.goods, exp0.offers), (0, 0));
}
