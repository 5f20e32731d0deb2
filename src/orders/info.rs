//! `type=sale&mode=info`: the Bitrix-shaped reference book of statuses, payment systems and
//! delivery services that the 1C-Bitrix module's status mapping form loads ("Загрузить с сайта").
//! Byte-for-byte quirk: `Cтатусы` starts with a Latin `C` (as in Bitrix's lang file).

use super::cml_out::Charset;
use super::model::Status;
use crate::i18n::Lang;

/// Payment and delivery methods offered in the reference book: (id, Russian, English).
const PAYMENT: [(&str, &str, &str); 4] = [
    ("cash", "Наличные", "Cash"),
    ("card", "Банковская карта", "Card"),
    ("invoice", "Счет", "Invoice"),
    (
        "marketplace",
        "Оплата на маркетплейсе",
        "Paid on the marketplace",
    ),
];
const DELIVERY: [(&str, &str, &str); 4] = [
    ("pickup", "Самовывоз", "Pickup"),
    ("courier", "Курьер", "Courier"),
    ("cdek", "СДЭК", "CDEK"),
    ("ozon", "Ozon", "Ozon"),
];

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The document as bytes in `charset`.
pub fn reference_book(charset: Charset, lang: Lang) -> Vec<u8> {
    charset.encode(&reference_book_text(charset.label(), lang))
}

/// The document as text, declaring `encoding` (the caller encodes it).
pub fn reference_book_text(encoding: &str, lang: Lang) -> String {
    let mut s =
        format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?>\n<Справочник>\n\t<Cтатусы>\n");
    for st in Status::ALL {
        s.push_str(&format!(
            "\t\t<Элемент>\n\t\t\t<Ид>{}</Ид>\n\t\t\t<Название>{}</Название>\n\t\t</Элемент>\n",
            st.code(),
            esc(st.title(lang))
        ));
    }
    s.push_str("\t</Cтатусы>\n\t<ПлатежныеСистемы>\n");
    for (id, ru, en) in PAYMENT {
        s.push_str(&format!(
            "\t\t<Элемент>\n\t\t\t<Ид>{id}</Ид>\n\t\t\t<Название>{}</Название>\n\t\t</Элемент>\n",
            esc(lang.pick(ru, en))
        ));
    }
    s.push_str("\t</ПлатежныеСистемы>\n\t<СлужбыДоставки>\n");
    for (id, ru, en) in DELIVERY {
        s.push_str(&format!(
            "\t\t<Элемент>\n\t\t\t<Ид>{id}</Ид>\n\t\t\t<Название>{}</Название>\n\t\t</Элемент>\n",
            esc(lang.pick(ru, en))
        ));
    }
    s.push_str("\t</СлужбыДоставки>\n</Справочник>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_tag_has_a_latin_c() {
        let b = reference_book(Charset::Utf8, Lang::Ru);
        let s = String::from_utf8(b).unwrap();
        assert!(s.starts_with("<?xml"));
        assert!(s.contains("<C\u{0442}\u{0430}\u{0442}\u{0443}\u{0441}\u{044b}>"));
        assert!(s.contains("<Ид>N</Ид>"));
        assert!(s.contains("<ПлатежныеСистемы>"));
        let cp = reference_book(Charset::Windows1251, Lang::Ru);
        // Latin C (0x43) then Cyrillic "татусы" in windows-1251.
        assert!(cp.windows(8).any(|w| w == b"<C\xf2\xe0\xf2\xf3\xf1\xfb"));
    }
}
