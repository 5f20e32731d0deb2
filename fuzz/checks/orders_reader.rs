//! The orders document reader (src/orders/cml_in.rs, `DocReader`) on arbitrary bytes, encoding
//! detection included: every document is pulled until the end or the first error; each document
//! is classified and its requisites looked up. A second pass through a reader that hands out a
//! few bytes per `read` must give the same documents and outcome.
//!
//! Shared by the fuzz target (fuzz/fuzz_targets/orders_reader.rs) and the regression tests
//! (tests/fuzz_regressions.rs): a panic here is a finding.

use std::io::{self, Read};

use obmen::i18n::Lang;
use obmen::orders::cml_in::{doc_kind, DocReader};

/// At most `chunk` bytes per `read`.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Cap on documents pulled per input (the reader has no document limit of its own; an input
/// of n bytes holds far fewer than this many documents anyway).
const MAX_DOCS: usize = 100_000;

fn read_all(r: Box<dyn Read + Send>) -> (Vec<String>, Option<String>) {
    let mut reader = match DocReader::from_read(r) {
        Ok(r) => r,
        Err(e) => {
            let _ = e.describe(Lang::Ru);
            return (Vec::new(), Some(e.describe(Lang::En)));
        }
    };
    let mut docs = Vec::new();
    loop {
        assert!(docs.len() < MAX_DOCS, "reader does not end");
        match reader.next_doc() {
            Ok(Some(doc)) => {
                let kind = doc_kind(&doc);
                let _ = doc.req(&["Статус заказа", "Проведен"]);
                let _ = doc.req_bool(&["Проведен", "ПометкаУдаления"]);
                docs.push(format!("{kind:?} {doc:?}"));
            }
            Ok(None) => return (docs, None),
            Err(e) => {
                let ru = e.describe(Lang::Ru);
                let en = e.describe(Lang::En);
                assert!(!ru.is_empty() && !en.is_empty());
                return (docs, Some(en));
            }
        }
    }
}

pub fn run(data: &[u8]) {
    let whole = read_all(Box::new(io::Cursor::new(data.to_vec())));
    let chunk = data.len() % 7 + 1;
    let trickled = read_all(Box::new(Trickle {
        data: data.to_vec(),
        pos: 0,
        chunk,
    }));
    assert_eq!(
        whole.0, trickled.0,
        "documents depend on read chunking ({chunk})"
    );
    assert_eq!(
        whole.1.is_some(),
        trickled.1.is_some(),
        "outcome depends on read chunking ({chunk}): {:?} vs {:?}",
        whole.1,
        trickled.1
    );
}
