//! A minimal valid one-page PDF (hand-built, correct xref offsets) for package labels.

/// A label PDF listing the posting numbers (ASCII only).
pub fn label(postings: &[String]) -> Vec<u8> {
    document("Ozon simulator package label", postings)
}

/// A one-page PDF with an ASCII title and one line per entry (only letters, digits and `-` of
/// each entry are kept). Shared with the other simulators (CDEK waybills).
pub fn document(title: &str, lines: &[String]) -> Vec<u8> {
    let title: String = title
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '-')
        .collect();
    let mut text = format!("BT /F1 14 Tf 20 260 Td ({title}) Tj");
    for n in lines {
        let safe: String = n
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        text.push_str(&format!(" 0 -20 Td ({safe}) Tj"));
    }
    text.push_str(" ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 283 283] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pdf_has_header_trailer_and_correct_xref() {
        let pdf = super::label(&["12345678-0001-1".to_string()]);
        let s = String::from_utf8(pdf.clone()).unwrap();
        assert!(s.starts_with("%PDF-1.4\n") && s.ends_with("%%EOF\n"));
        assert!(s.contains("(12345678-0001-1) Tj"));
        let start: usize = s
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(s[start..].starts_with("xref\n"));
        // Every xref entry points at its "N 0 obj".
        for (i, line) in s[start..].lines().skip(3).take(5).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(s[off..].starts_with(&format!("{} 0 obj", i + 1)), "{line}");
        }
    }
}
