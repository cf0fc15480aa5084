//! Debian control-file syntax (deb822): paragraphs of `Field: value` lines separated by blank
//! lines, with continuation lines starting with a space or tab. Used by `Packages`, `Release`,
//! `.sources` files, `control` and `/var/lib/dpkg/status`. Pure: `&str` in, paragraphs out.
//!
//! Field names compare case-insensitively (Debian policy 5.1); field order and the original
//! spelling of names are kept. A multi-line value is kept as written, continuation lines
//! joined with `\n` and their single leading space or tab removed (so `Description` and the
//! `SHA256` list keep their shape). Comment lines (`#` at column 0) are skipped, as apt does
//! for `.sources` files; they never occur in the archive's own files.

use std::fmt;

/// One paragraph (stanza): ordered fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
    /// 1-based line number of the paragraph's first field, for error messages.
    line: usize,
}

impl Paragraph {
    /// The value of `field` (case-insensitive), first line trimmed and continuation lines
    /// joined with `\n`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }

    /// Fields in file order, names as written.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// 1-based line of the paragraph's first field in the parsed text.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// A syntax error, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Deb822Error {
    #[error("line {line}: continuation line before any field\nhint: a line starting with a space continues the previous field's value")]
    OrphanContinuation { line: usize },
    #[error("line {line}: expected `Field: value`, found {text:?}\nhint: every line of a paragraph is a field or an indented continuation")]
    NoColon { line: usize, text: String },
    #[error("line {line}: empty field name")]
    EmptyName { line: usize },
    #[error("line {line}: field {name:?} appears twice in one paragraph")]
    Duplicate { line: usize, name: String },
}

impl Deb822Error {
    pub fn line(&self) -> usize {
        match self {
            Deb822Error::OrphanContinuation { line }
            | Deb822Error::NoColon { line, .. }
            | Deb822Error::EmptyName { line }
            | Deb822Error::Duplicate { line, .. } => *line,
        }
    }
}

impl fmt::Display for Paragraph {
    /// Writes the paragraph back in deb822 form (no trailing blank line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.fields {
            let mut lines = v.split('\n');
            let first = lines.next().unwrap_or("");
            if first.is_empty() {
                writeln!(f, "{k}:")?;
            } else {
                writeln!(f, "{k}: {first}")?;
            }
            for l in lines {
                writeln!(f, " {l}")?;
            }
        }
        Ok(())
    }
}

/// Parses every paragraph of `text`. Blank lines (empty or whitespace only) separate
/// paragraphs; several in a row are one separator.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, Deb822Error> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if l.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        if l.starts_with(' ') || l.starts_with('\t') {
            let Some((_, v)) = cur.fields.last_mut() else {
                return Err(Deb822Error::OrphanContinuation { line });
            };
            v.push('\n');
            v.push_str(l[1..].trim_end());
            continue;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(Deb822Error::NoColon {
                line,
                text: l.chars().take(60).collect(),
            });
        };
        let name = name.trim_end();
        if name.is_empty() {
            return Err(Deb822Error::EmptyName { line });
        }
        if cur.get(name).is_some() {
            return Err(Deb822Error::Duplicate {
                line,
                name: name.to_string(),
            });
        }
        if cur.fields.is_empty() {
            cur.line = line;
        }
        cur.fields
            .push((name.to_string(), value.trim().to_string()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: &Paragraph) -> Vec<(&str, &str)> {
        p.fields().collect()
    }

    type Expected<'a> = Vec<Vec<(&'a str, &'a str)>>;

    #[test]
    fn table() {
        let cases: &[(&str, Expected)] = &[
            ("", vec![]),
            ("\n\n  \n", vec![]),
            ("A: 1\n", vec![vec![("A", "1")]]),
            ("A: 1", vec![vec![("A", "1")]]),
            (
                "A:1\nB:   two words  \n",
                vec![vec![("A", "1"), ("B", "two words")]],
            ),
            ("A: 1\n\nB: 2\n", vec![vec![("A", "1")], vec![("B", "2")]]),
            (
                "A: 1\n\n\n \t\nB: 2\n\n",
                vec![vec![("A", "1")], vec![("B", "2")]],
            ),
            (
                "A: 1\r\nB: 2\r\n\r\nC: 3\r\n",
                vec![vec![("A", "1"), ("B", "2")], vec![("C", "3")]],
            ),
            // Continuations keep their shape, including the ` .` blank-line marker.
            (
                "Description: short\n long one\n .\n  indented\n",
                vec![vec![("Description", "short\nlong one\n.\n indented")]],
            ),
            // A field with an empty first line (Release's SHA256 list).
            (
                "SHA256:\n abc 12 main/Packages\n def 34 main/Packages.xz\n",
                vec![vec![(
                    "SHA256",
                    "\nabc 12 main/Packages\ndef 34 main/Packages.xz",
                )]],
            ),
            ("Tab:\n\tx\n", vec![vec![("Tab", "\nx")]]),
            // Values may contain colons; only the first one splits.
            (
                "URIs: http://example.invalid/debian\n",
                vec![vec![("URIs", "http://example.invalid/debian")]],
            ),
            // Comments at column 0 are skipped, also between continuation lines.
            (
                "# c\nA: 1\n# c2\nB: 2\n",
                vec![vec![("A", "1"), ("B", "2")]],
            ),
        ];
        for (text, want) in cases {
            let got = parse_paragraphs(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let got: Vec<Vec<(&str, &str)>> = got.iter().map(fields).collect();
            assert_eq!(&got, want, "input {text:?}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, usize, &str)] = &[
            (" x\n", 1, "continuation line before any field"),
            ("A: 1\n\n x\n", 3, "continuation line before any field"),
            ("A: 1\nnocolon\n", 2, "expected `Field: value`"),
            (": v\n", 1, "empty field name"),
            ("A: 1\na: 2\n", 2, "appears twice"),
        ];
        for (text, line, msg) in cases {
            let e = parse_paragraphs(text).expect_err(text);
            assert_eq!(e.line(), *line, "{text:?}");
            assert!(e.to_string().contains(msg), "{text:?}: {e}");
        }
    }

    #[test]
    fn get_is_case_insensitive_and_keeps_order() {
        let p = &parse_paragraphs("Package: a\nPre-Depends: b\nversion: 1.0\n").unwrap()[0];
        assert_eq!(p.get("package"), Some("a"));
        assert_eq!(p.get("PRE-DEPENDS"), Some("b"));
        assert_eq!(p.get("Version"), Some("1.0"));
        assert_eq!(p.get("Depends"), None);
        let names: Vec<&str> = p.fields().map(|(k, _)| k).collect();
        assert_eq!(names, ["Package", "Pre-Depends", "version"]);
        assert_eq!(p.line(), 1);
    }

    #[test]
    fn paragraph_lines_are_recorded() {
        let ps = parse_paragraphs("\nA: 1\n\n\nB: 2\n").unwrap();
        assert_eq!(ps[0].line(), 2);
        assert_eq!(ps[1].line(), 5);
    }

    #[test]
    fn display_round_trips() {
        let text = "Package: a\nDescription: short\n long\n .\n more\nSHA256:\n x 1 y\n";
        let ps = parse_paragraphs(text).unwrap();
        assert_eq!(ps[0].to_string(), text);
        assert_eq!(parse_paragraphs(&ps[0].to_string()).unwrap(), ps);
    }
}
