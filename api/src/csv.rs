//! CSV (RFC 4180) for exports people open in a spreadsheet: every field quoted, inner
//! quotes doubled, and a leading `=`, `+`, `-` or `@` neutralized with an apostrophe so a
//! spreadsheet never runs a value as a formula. Hand-written: two small functions cover
//! what the exports need, where a parser crate would add a dependency for writing only.

/// One field.
pub fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// One line of fields, CRLF-terminated.
pub fn row<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> String {
    let mut line = fields
        .into_iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_neutralized() {
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
        assert_eq!(field("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(row(["x", "y,z"]), "\"x\",\"y,z\"\r\n");
    }
}
