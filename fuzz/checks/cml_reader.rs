//! The streaming CommerceML reader (src/cml/reader.rs) on arbitrary bytes, encoding detection
//! included: every item is pulled until the end or the first error, and errors are described.
//! The same input is read a second time through a reader that hands out a few bytes per `read`
//! call: the items and the outcome must not depend on how the input was chunked.
//!
//! Shared by the fuzz target (fuzz/fuzz_targets/cml_reader.rs) and the regression tests
//! (tests/fuzz_regressions.rs): a panic here is a finding.

use std::io::{self, Read};

use obmen::cml::CmlReader;
use obmen::i18n::Lang;

/// At most `chunk` bytes per `read`.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Debug forms of every item, and the error (described in both languages) if there was one.
fn read_all<R: Read>(r: R) -> (Vec<String>, Option<String>) {
    let mut reader = CmlReader::new(r);
    let mut items = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(item)) => items.push(format!("{item:?}")),
            Ok(None) => {
                // The end stays the end.
                assert!(matches!(reader.next_item(), Ok(None)));
                return (items, None);
            }
            Err(e) => {
                let ru = e.describe(Lang::Ru);
                let en = e.describe(Lang::En);
                assert!(!ru.is_empty() && !en.is_empty());
                let _ = e.position();
                let _ = e.kind();
                let _ = reader.bytes_read();
                // After an error the reader is finished.
                assert!(matches!(reader.next_item(), Ok(None)));
                return (items, Some(en));
            }
        }
    }
}

pub fn run(data: &[u8]) {
    let whole = read_all(data);
    let chunk = data.len() % 7 + 1;
    let trickled = read_all(Trickle { data, chunk });
    assert_eq!(
        whole.0, trickled.0,
        "items depend on read chunking ({chunk})"
    );
    assert_eq!(
        whole.1.is_some(),
        trickled.1.is_some(),
        "outcome depends on read chunking ({chunk}): {:?} vs {:?}",
        whole.1,
        trickled.1
    );
}
