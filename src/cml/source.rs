//! The byte source under the XML parser: encoding detection, streaming transcoding to UTF-8,
//! UTF-8 validation, and line/column bookkeeping in terms of the original file.
//!
//! The parser (quick-xml) always sees UTF-8. A UTF-8 file is passed through (validated, BOM
//! dropped); windows-1251, UTF-16 and other encodings encoding_rs knows are decoded chunk by chunk.
//! Every chunk handed to the parser is remembered for a little while with the number of lines
//! before it, so an error offset reported by the parser can be turned into a line and a column
//! (in characters) without counting lines on the hot path. Transcoding never adds or removes line
//! breaks, so the lines are those of the original file.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// Size of one raw read and, roughly, of one chunk given to the parser.
const CHUNK: usize = 128 * 1024;
/// How many handed-out chunks are kept for positioning errors.
const HISTORY: usize = 3;
/// How much of the file start is examined for a BOM and the XML declaration.
const SNIFF: usize = 4096;

/// A problem found by the source itself (not by the XML parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceProblem {
    /// Bytes that are not valid in the encoding the file declares (or UTF-8 by default).
    InvalidBytes {
        encoding: &'static str,
        declared: bool,
        /// The encoding the bytes look like, when a guess is cheap and safe.
        likely: Option<&'static str>,
        offset: u64,
    },
    /// A file declared in a single-byte encoding whose text is in fact UTF-8.
    DeclaredButUtf8 {
        declared: String,
        line: u64,
        column: u64,
    },
    /// `encoding="…"` names nothing encoding_rs knows.
    UnknownEncoding { label: String },
    /// A UTF-8 file that ends inside a multi-byte character: cut short, not mis-encoded.
    CutCharacter { offset: u64 },
}

struct Chunk {
    /// Offset of `data[0]` in the decoded stream.
    start: u64,
    /// Line breaks before `data[0]`.
    lines_before: u64,
    /// Characters between the last line break and `data[0]`.
    col_before: u64,
    data: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// (line breaks, characters after the last break) of `data[..upto]`.
    fn scan(&self, upto: usize) -> (u64, u64) {
        let slice = &self.data[..upto];
        let breaks = memchr::memchr_iter(b'\n', slice).count() as u64;
        match memchr::memrchr(b'\n', slice) {
            Some(i) => (breaks, chars(&slice[i + 1..])),
            None => (0, self.col_before + chars(slice)),
        }
    }

    fn position(&self, offset: u64) -> (u64, u64) {
        let upto = (offset.saturating_sub(self.start) as usize).min(self.data.len());
        let (breaks, col) = self.scan(upto);
        (self.lines_before + breaks + 1, col + 1)
    }
}

/// Characters in valid UTF-8 bytes (every byte that is not a continuation byte).
fn chars(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64
}

enum Mode {
    /// Not decided yet: the file start has not been examined.
    Sniff,
    Utf8,
    Decode(encoding_rs::Decoder),
}

pub(crate) struct Source<R> {
    inner: R,
    raw: Vec<u8>,
    /// What one `read` of `inner` fills (CHUNK bytes, zeroed once).
    scratch: Box<[u8]>,
    raw_pos: usize,
    raw_eof: bool,
    raw_total: u64,
    mode: Mode,
    encoding: &'static Encoding,
    declared: bool,
    cur: Chunk,
    pos: usize,
    history: VecDeque<Chunk>,
    /// Reported to the parser as an I/O error once the data before it is consumed.
    problem: Option<SourceProblem>,
    failed: bool,
    finished: bool,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(inner: R) -> Self {
        Source {
            inner,
            raw: Vec::with_capacity(CHUNK),
            scratch: vec![0; CHUNK].into_boxed_slice(),
            raw_pos: 0,
            raw_eof: false,
            raw_total: 0,
            mode: Mode::Sniff,
            encoding: UTF_8,
            declared: false,
            cur: Chunk {
                start: 0,
                lines_before: 0,
                col_before: 0,
                data: Vec::with_capacity(CHUNK * 2),
            },
            pos: 0,
            history: VecDeque::with_capacity(HISTORY + 1),
            problem: None,
            failed: false,
            finished: false,
        }
    }

    /// Raw bytes read from the underlying reader so far.
    pub(crate) fn raw_bytes(&self) -> u64 {
        self.raw_total
    }

    /// The encoding being decoded (UTF-8 until the start has been examined).
    pub(crate) fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    pub(crate) fn problem(&self) -> Option<&SourceProblem> {
        self.problem.as_ref()
    }

    /// 1-based line and column (in characters) of a decoded-stream offset.
    pub(crate) fn position(&self, offset: u64) -> (u64, u64) {
        if offset >= self.cur.start || self.history.is_empty() {
            return self.cur.position(offset);
        }
        for c in self.history.iter().rev() {
            if offset >= c.start {
                return c.position(offset);
            }
        }
        // Older than anything kept: the start of the oldest chunk is the best we know.
        let oldest = &self.history[0];
        oldest.position(oldest.start)
    }

    /// Read more raw bytes, keeping the unconsumed tail. Returns false at end of input.
    fn read_raw(&mut self) -> io::Result<bool> {
        if self.raw_eof {
            return Ok(false);
        }
        if self.raw_pos > 0 {
            self.raw.drain(..self.raw_pos);
            self.raw_pos = 0;
        }
        // Into the zeroed scratch buffer, then appended: growing `raw` by CHUNK zeroed bytes for
        // every `read` cost 128 KiB of writes per call, ruinous for a source that returns a few
        // bytes at a time (the fuzz target's trickle reader ran at 0.5 inputs a second).
        let n = loop {
            match self.inner.read(&mut self.scratch) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.raw.extend_from_slice(&self.scratch[..n]);
        self.raw_total += n as u64;
        if n == 0 {
            self.raw_eof = true;
        }
        Ok(n > 0)
    }

    /// Look at the file start: BOM, XML declaration, and a UTF-8 text declared as something else.
    fn sniff(&mut self) -> io::Result<()> {
        while self.raw.len() - self.raw_pos < SNIFF && self.read_raw()? {}
        let head = &self.raw[self.raw_pos..];
        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.raw_pos += 3;
            self.set_utf8(true);
            return Ok(());
        }
        if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
            let enc = if head[0] == 0xFF { UTF_16LE } else { UTF_16BE };
            self.raw_pos += 2;
            self.encoding = enc;
            self.declared = true;
            self.mode = Mode::Decode(enc.new_decoder_without_bom_handling());
            return Ok(());
        }
        match declared_encoding(head) {
            None => self.set_utf8(false),
            Some(label) => match Encoding::for_label(label.as_bytes()) {
                None => {
                    self.problem = Some(SourceProblem::UnknownEncoding { label });
                    self.set_utf8(false);
                }
                // "UTF-16" declared without a BOM: the bytes we just read were ASCII, so the
                // declaration is wrong; read as UTF-8 (validation will catch a real mismatch).
                Some(enc) if enc == UTF_8 || enc == UTF_16LE || enc == UTF_16BE => {
                    self.set_utf8(true)
                }
                Some(enc) => {
                    self.encoding = enc;
                    self.declared = true;
                    if let Some(first) = looks_like_utf8(head) {
                        // Everything before the first non-ASCII byte is ASCII.
                        let before = &head[..first];
                        let line = memchr::memchr_iter(b'\n', before).count() as u64 + 1;
                        let column = match memchr::memrchr(b'\n', before) {
                            Some(i) => (first - i) as u64,
                            None => first as u64 + 1,
                        };
                        self.problem = Some(SourceProblem::DeclaredButUtf8 {
                            declared: enc.name().to_string(),
                            line,
                            column,
                        });
                    }
                    self.mode = Mode::Decode(enc.new_decoder_without_bom_handling());
                }
            },
        }
        if let Some(SourceProblem::UnknownEncoding { .. } | SourceProblem::DeclaredButUtf8 { .. }) =
            &self.problem
        {
            // Nothing of such a file is handed to the parser.
            self.failed = true;
        }
        Ok(())
    }

    fn set_utf8(&mut self, declared: bool) {
        self.encoding = UTF_8;
        self.declared = declared;
        self.mode = Mode::Utf8;
    }

    /// Produce the next chunk into `self.cur`. Returns false at the end of input.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if matches!(self.mode, Mode::Sniff) {
            self.sniff()?;
        }
        if self.failed || self.finished {
            return Ok(false);
        }
        // Retire the current chunk into the history.
        if !self.cur.data.is_empty() {
            let (breaks, col) = self.cur.scan(self.cur.data.len());
            let next = Chunk {
                start: self.cur.end(),
                lines_before: self.cur.lines_before + breaks,
                col_before: col,
                data: if self.history.len() >= HISTORY {
                    let mut v = self.history.pop_front().map(|c| c.data).unwrap_or_default();
                    v.clear();
                    v
                } else {
                    Vec::with_capacity(CHUNK * 2)
                },
            };
            let old = std::mem::replace(&mut self.cur, next);
            self.history.push_back(old);
        }
        self.pos = 0;
        loop {
            if self.raw.len() == self.raw_pos && !self.read_raw()? {
                // End of input: flush the decoder / check for a cut UTF-8 sequence.
                return self.finish();
            }
            let produced = match &mut self.mode {
                Mode::Utf8 => self.take_utf8()?,
                Mode::Decode(_) => self.take_decoded(false)?,
                Mode::Sniff => unreachable!("decided above"),
            };
            if produced {
                return Ok(true);
            }
            if self.failed {
                return Ok(false);
            }
            // Only an incomplete sequence was left: read more.
            if !self.read_raw()? {
                return self.finish();
            }
        }
    }

    fn finish(&mut self) -> io::Result<bool> {
        self.finished = true;
        let produced = match &mut self.mode {
            Mode::Decode(_) => self.take_decoded(true)?,
            _ => {
                if self.raw.len() > self.raw_pos {
                    // A UTF-8 sequence cut by the end of the file: the file is incomplete.
                    self.problem = Some(SourceProblem::CutCharacter {
                        offset: self.cur.end(),
                    });
                    self.failed = true;
                }
                false
            }
        };
        Ok(produced)
    }

    fn fail_invalid(&mut self, offset: u64) {
        let likely = if self.encoding == UTF_8 {
            Some("windows-1251")
        } else {
            None
        };
        self.problem = Some(SourceProblem::InvalidBytes {
            encoding: self.encoding.name(),
            declared: self.declared,
            likely,
            offset,
        });
        self.failed = true;
    }

    /// Move validated UTF-8 from `raw` to `cur`. Returns whether anything was produced.
    fn take_utf8(&mut self) -> io::Result<bool> {
        let avail = &self.raw[self.raw_pos..];
        let (valid, bad) = match simdutf8::compat::from_utf8(avail) {
            Ok(_) => (avail.len(), false),
            Err(e) => match e.error_len() {
                // An incomplete sequence at the end of what we have: wait for more bytes.
                None => (e.valid_up_to(), false),
                Some(_) => (e.valid_up_to(), true),
            },
        };
        self.cur.data.extend_from_slice(&avail[..valid]);
        self.raw_pos += valid;
        if bad {
            let offset = self.cur.end();
            self.fail_invalid(offset);
            self.finished = true;
        }
        Ok(valid > 0)
    }

    /// Decode `raw` into `cur`. Returns whether anything was produced.
    fn take_decoded(&mut self, last: bool) -> io::Result<bool> {
        let Mode::Decode(decoder) = &mut self.mode else {
            return Ok(false);
        };
        let avail = &self.raw[self.raw_pos..];
        let need = decoder
            .max_utf8_buffer_length_without_replacement(avail.len())
            .unwrap_or(avail.len() * 3 + 16);
        let base = self.cur.data.len();
        self.cur.data.resize(base + need, 0);
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(avail, &mut self.cur.data[base..], last);
        self.cur.data.truncate(base + written);
        self.raw_pos += read;
        if let DecoderResult::Malformed(_, _) = result {
            let offset = self.cur.end();
            self.fail_invalid(offset);
            self.finished = true;
        }
        Ok(written > 0)
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.cur.data.len() {
            if self.failed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "input is not in its declared encoding",
                ));
            }
            if !self.next_chunk()? && self.failed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "input is not in its declared encoding",
                ));
            }
        }
        Ok(&self.cur.data[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.data.len());
    }
}

/// The `encoding` pseudo-attribute of an XML declaration at the start of `head` (ASCII-compatible
/// encodings only).
fn declared_encoding(head: &[u8]) -> Option<String> {
    let head = head.strip_prefix(b"<?xml")?;
    let end = memchr::memmem::find(head, b"?>")?;
    let decl = &head[..end];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let rest = &decl[at + "encoding".len()..];
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let value = &rest[1..];
    let close = memchr::memchr(quote, value)?;
    Some(String::from_utf8_lossy(value[..close].trim_ascii()).into_owned())
}

/// For a file declared in a single-byte encoding: the offset of its first non-ASCII byte when the
/// start of the file is valid UTF-8 with multi-byte characters in it (a real windows-1251 Russian
/// text practically never is: its lowercase letters are UTF-8 lead bytes without continuation).
fn looks_like_utf8(head: &[u8]) -> Option<usize> {
    let first = head.iter().position(|b| !b.is_ascii())?;
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut at the end of the sample is fine.
        Err(e) => e.error_len().is_none() && e.valid_up_to() > first,
    };
    valid.then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<R: Read>(mut s: Source<R>) -> (Vec<u8>, Source<R>) {
        let mut out = Vec::new();
        let r = s.read_to_end(&mut out);
        if s.problem().is_none() {
            r.unwrap();
        }
        (out, s)
    }

    #[test]
    fn passes_utf8_and_drops_bom() {
        let text = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>Привет</a>\n";
        let (out, s) = drain(Source::new(text.as_bytes()));
        assert_eq!(out, &text.as_bytes()[3..]);
        assert_eq!(s.encoding(), UTF_8);
        assert_eq!(s.raw_bytes(), text.len() as u64);
    }

    #[test]
    fn decodes_windows_1251_with_lines_kept() {
        let text = "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<a>\nПривет</a>\n";
        let (raw, _, _) = encoding_rs::WINDOWS_1251.encode(text);
        let (out, s) = drain(Source::new(&raw[..]));
        assert_eq!(std::str::from_utf8(&out).unwrap(), text);
        assert_eq!(s.encoding().name(), "windows-1251");
        let at = text.find("вет").unwrap() as u64;
        assert_eq!(s.position(at), (3, 4));
    }

    #[test]
    fn invalid_utf8_is_reported_at_its_position() {
        let mut raw = b"<?xml version=\"1.0\"?>\n<a>ok</a>\n<b>".to_vec();
        raw.extend_from_slice(&[0xCF, 0xF0, 0xE8]); // "При" in windows-1251
        raw.extend_from_slice(b"</b>");
        let (out, s) = drain(Source::new(&raw[..]));
        let Some(SourceProblem::InvalidBytes { offset, likely, .. }) = s.problem().cloned() else {
            panic!("{:?}", s.problem());
        };
        assert_eq!(likely, Some("windows-1251"));
        assert_eq!(out.len() as u64, offset);
        assert_eq!(s.position(offset), (3, 4));
    }

    #[test]
    fn utf8_declared_as_windows_1251_is_refused() {
        let text = "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<КоммерческаяИнформация/>";
        let (out, s) = drain(Source::new(text.as_bytes()));
        assert!(out.is_empty());
        assert!(matches!(
            s.problem(),
            Some(SourceProblem::DeclaredButUtf8 {
                line: 2,
                column: 2,
                ..
            })
        ));
    }

    #[test]
    fn utf16_with_bom() {
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<a>Привет</a>";
        let mut raw = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        let (out, _) = drain(Source::new(&raw[..]));
        assert_eq!(std::str::from_utf8(&out).unwrap(), text);
    }

    #[test]
    fn positions_across_chunks() {
        // Tiny reads to force many chunks.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&format!("<x>строка {i}</x>\n"));
        }
        let (out, s) = drain(Source::new(Trickle(text.as_bytes())));
        assert_eq!(out, text.as_bytes());
        // Only the last few chunks are kept: ask for a position near the end.
        let at = text.rfind("499").unwrap() as u64;
        assert_eq!(s.position(at), (500, 11));
        // Older offsets fall back to the oldest chunk kept (same line here).
        assert_eq!(s.position(0).0, 500);
    }

    #[test]
    fn declaration_parsing() {
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding = 'cp1251' ?>").as_deref(),
            Some("cp1251")
        );
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(declared_encoding(b"<a/>"), None);
    }
}
