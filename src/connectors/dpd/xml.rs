//! A small SOAP/XML toolkit shared by the DPD client and the DPD simulator: a tree of a (small)
//! SOAP message read with quick-xml by *local* names (any namespace prefix, or none, is
//! accepted), text escaping, and the SOAP 1.1 envelope.
//!
//! SOAP messages are a few kilobytes, so a tree is fine here (unlike CommerceML files).

use quick_xml::events::Event;
use quick_xml::Reader;

/// SOAP 1.1 envelope namespace.
pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Namespace of the `order2` service.
pub const NS_ORDER: &str = "http://dpd.ru/ws/order2/2012-04-04";
/// Namespace of the `tracing` service.
pub const NS_TRACING: &str = "http://dpd.ru/ws/tracing/2012-04-04";

const MAX_DEPTH: usize = 64;

/// An element: local name, its own text (trimmed, entities resolved) and child elements.
/// Attributes are not kept (DPD's messages do not use them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child element with this local name.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All child elements with this local name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with this name; `None` when absent or empty.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The text of the first child with this name, or "".
    pub fn str(&self, name: &str) -> &str {
        self.text_of(name).unwrap_or("")
    }

    /// The first descendant (depth first, self excluded) with this local name.
    pub fn find(&self, name: &str) -> Option<&Node> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(n) = c.find(name) {
                return Some(n);
            }
        }
        None
    }
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.to_string(),
    }
}

/// Parse a whole (UTF-8) document into the tree of its root element.
pub fn parse(xml: &[u8]) -> Result<Node, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("XML error at {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                if stack.len() >= MAX_DEPTH {
                    return Err("elements nested too deep".into());
                }
                stack.push(Node {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                });
            }
            Event::Empty(e) => {
                let n = Node {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None if root.is_none() => root = Some(n),
                    None => return Err("content after the root element".into()),
                }
            }
            Event::End(_) => {
                let mut n = stack.pop().ok_or("unbalanced end tag")?;
                n.text = n.text.trim().to_string();
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    let s = t.xml10_content();
                    n.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(n) = stack.last_mut() {
                    let s = c.xml10_content();
                    n.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => return Err(format!("invalid character reference &{};", &*r)),
                    }
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    s.to_string()
                } else {
                    return Err(format!("unknown entity &{};", &*r));
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err("DOCTYPE is not accepted".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("the document ends inside <{}>", stack[0].name));
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// The first element inside `Envelope/Body` (the operation, its response, or a `Fault`).
pub fn body_element(root: &Node) -> Result<&Node, String> {
    if root.name != "Envelope" {
        return Err(format!("the root is <{}>, not a SOAP Envelope", root.name));
    }
    root.child("Body")
        .ok_or("no SOAP Body")?
        .children
        .first()
        .ok_or_else(|| "an empty SOAP Body".to_string())
}

/// Escape text for element content.
pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// `<name>text</name>` with the text escaped.
pub fn el(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", esc(text))
}

/// A SOAP 1.1 envelope around one body element, which is written as `<ns:{op}>` in `ns_uri`.
pub fn envelope(ns_uri: &str, op: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV}\" xmlns:ns=\"{ns_uri}\">\
         <soapenv:Body><ns:{op}>{inner}</ns:{op}></soapenv:Body></soapenv:Envelope>"
    )
}

/// A SOAP Fault: `faultcode` (`soap:Client` / `soap:Server`), `faultstring`, and a
/// `detail/WSFault{code,message}` like DPD's services give.
pub fn fault(faultcode: &str, code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <S:Envelope xmlns:S=\"{SOAP_ENV}\"><S:Body><S:Fault>\
         <faultcode>S:{faultcode}</faultcode><faultstring>{msg}</faultstring>\
         <detail><ns2:WSFault xmlns:ns2=\"{NS_ORDER}\"><code>{code}</code><message>{msg}</message>\
         </ns2:WSFault></detail></S:Fault></S:Body></S:Envelope>",
        code = esc(code),
        msg = esc(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_local_name_with_any_prefix_and_resolves_entities() {
        let doc = br#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body><x:getOrderStatus xmlns:x="urn:x"><orderStatus>
    <auth><clientNumber> 101 </clientNumber><clientKey/></auth>
    <order><orderNumberInternal>A&amp;B&#1046;</orderNumberInternal></order>
    <order><orderNumberInternal><![CDATA[<c>]]></orderNumberInternal></order>
  </orderStatus></x:getOrderStatus></soap:Body></soap:Envelope>"#;
        let root = parse(doc).unwrap();
        let op = body_element(&root).unwrap();
        assert_eq!(op.name, "getOrderStatus");
        let os = op.child("orderStatus").unwrap();
        assert_eq!(os.find("clientNumber").unwrap().text, "101");
        assert_eq!(os.find("clientKey").unwrap().text, "");
        assert_eq!(os.child("auth").unwrap().text_of("clientKey"), None);
        let nums: Vec<_> = os
            .all("order")
            .map(|o| o.str("orderNumberInternal"))
            .collect();
        assert_eq!(nums, ["A&BЖ", "<c>"]);
    }

    #[test]
    fn refuses_broken_and_dangerous_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
        assert!(parse(b"<a>&unknown;</a>").is_err());
        assert!(body_element(&parse(b"<a/>").unwrap()).is_err());
    }

    #[test]
    fn envelope_round_trips_escaped_text() {
        let doc = envelope(NS_ORDER, "op", &el("v", "a<b & \"c\""));
        let root = parse(doc.as_bytes()).unwrap();
        let op = body_element(&root).unwrap();
        assert_eq!((op.name.as_str(), op.str("v")), ("op", "a<b & \"c\""));
        let f = parse(fault("Client", "no-auth", "bad & key").as_bytes()).unwrap();
        let f = body_element(&f).unwrap();
        assert_eq!(f.name, "Fault");
        assert_eq!(f.str("faultstring"), "bad & key");
        assert_eq!(f.find("code").unwrap().text, "no-auth");
    }
}
