//! Data-driven and property tests of the seven config formats (contract section 2): valid
//! documents parse, broken ones are rejected with the line (and column) of the breakage,
//! the JSON shapes schemas validate, and the media types each format accepts.

use std::collections::BTreeMap;

use conflux_domain::format::{Document, Format, ParseError, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---- generated documents -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn json(&self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s.clone()),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Bool(b) => Value::Bool(*b),
        }
    }

    /// YAML and TOML spelling: JSON string escapes are valid in both (YAML double-quoted
    /// scalars and TOML basic strings) for the printable characters generated here.
    fn yaml_or_toml(&self) -> String {
        match self {
            Scalar::Str(s) => serde_json::to_string(s).unwrap(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Printable text with quotes, backslashes, `#`, `:` and some non-ASCII letters.
fn arb_text() -> impl Strategy<Value = String> {
    "[ -~äöüé日本語]{0,16}"
}

fn arb_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        arb_text().prop_map(Scalar::Str),
        any::<i64>().prop_map(Scalar::Int),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

type Flat = BTreeMap<String, Scalar>;

/// Top-level scalars plus sections (one level of nesting). Top-level keys start with `k`
/// and section names with `s`, so they never collide.
#[derive(Debug, Clone)]
struct Nested {
    top: Flat,
    sections: BTreeMap<String, Flat>,
}

impl Nested {
    fn json(&self) -> Value {
        let mut root = serde_json::Map::new();
        for (k, v) in &self.top {
            root.insert(k.clone(), v.json());
        }
        for (s, flat) in &self.sections {
            root.insert(
                s.clone(),
                Value::Object(flat.iter().map(|(k, v)| (k.clone(), v.json())).collect()),
            );
        }
        Value::Object(root)
    }

    fn json_lines(&self) -> Vec<String> {
        lines(&serde_json::to_string_pretty(&self.json()).unwrap())
    }

    fn yaml_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.top {
            out.push(format!("{}: {}", quoted(k), v.yaml_or_toml()));
        }
        for (s, flat) in &self.sections {
            if flat.is_empty() {
                out.push(format!("{}: {{}}", quoted(s)));
                continue;
            }
            out.push(format!("{}:", quoted(s)));
            for (k, v) in flat {
                out.push(format!("  {}: {}", quoted(k), v.yaml_or_toml()));
            }
        }
        out
    }

    fn toml_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.top {
            out.push(format!("{k} = {}", v.yaml_or_toml()));
        }
        for (s, flat) in &self.sections {
            out.push(String::new());
            out.push(format!("[{s}]"));
            for (k, v) in flat {
                out.push(format!("{k} = {}", v.yaml_or_toml()));
            }
        }
        out
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn arb_key() -> impl Strategy<Value = String> {
    "k[a-z0-9_]{0,8}"
}

fn arb_section() -> impl Strategy<Value = String> {
    "s[a-z0-9_]{0,8}"
}

fn arb_nested() -> impl Strategy<Value = Nested> {
    (
        prop::collection::btree_map(arb_key(), arb_scalar(), 0..6),
        prop::collection::btree_map(
            arb_section(),
            prop::collection::btree_map(arb_key(), arb_scalar(), 0..4),
            0..3,
        ),
    )
        .prop_filter("at least one entry", |(top, sections)| {
            !top.is_empty() || !sections.is_empty()
        })
        .prop_map(|(top, sections)| Nested { top, sections })
}

/// INI: string values without quotes, escapes or comment characters.
#[derive(Debug, Clone)]
struct Ini {
    top: BTreeMap<String, String>,
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

fn arb_ini_value() -> impl Strategy<Value = String> {
    "([A-Za-z0-9_.,/@-]([A-Za-z0-9 _.,/@-]{0,10}[A-Za-z0-9_.,/@-])?)?"
}

fn arb_ini() -> impl Strategy<Value = Ini> {
    (
        prop::collection::btree_map(arb_key(), arb_ini_value(), 0..6),
        prop::collection::btree_map(
            arb_section(),
            prop::collection::btree_map(arb_key(), arb_ini_value(), 0..4),
            0..3,
        ),
    )
        .prop_map(|(top, sections)| Ini { top, sections })
}

impl Ini {
    fn lines(&self, sep: &str) -> Vec<String> {
        let mut out = vec!["; generated".to_owned()];
        for (k, v) in &self.top {
            out.push(format!("{k}{sep}{v}"));
        }
        for (s, flat) in &self.sections {
            out.push(String::new());
            out.push(format!("[{s}]"));
            for (k, v) in flat {
                out.push(format!("{k}{sep}{v}"));
            }
        }
        out
    }

    fn json(&self) -> Value {
        let mut root: serde_json::Map<String, Value> = self
            .top
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        for (s, flat) in &self.sections {
            root.insert(s.clone(), json!(flat));
        }
        Value::Object(root)
    }
}

/// Properties: a flat map, written with a mix of separators, comments and blank lines.
fn arb_properties() -> impl Strategy<Value = (BTreeMap<String, String>, Vec<String>)> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9_.]{0,10}",
            arb_ini_value(),
            prop::sample::select(&["=", " = ", ":", " : ", " "][..]),
            prop::sample::select(&["", "# comment", "! note", ""][..]),
        ),
        1..8,
    )
    .prop_map(|entries| {
        let mut map = BTreeMap::new();
        let mut out = Vec::new();
        for (k, v, sep, extra) in entries {
            if !extra.is_empty() {
                out.push(extra.to_owned());
            }
            // A whitespace separator needs a value; an empty one would just end the key.
            let sep = if v.is_empty() && sep == " " { "=" } else { sep };
            out.push(format!("{k}{sep}{v}"));
            map.insert(k, v);
        }
        (map, out)
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn arb_xml_lines() -> impl Strategy<Value = Vec<String>> {
    (
        any::<bool>(),
        prop::collection::vec((arb_key(), arb_text(), arb_text()), 1..8),
    )
        .prop_map(|(decl, children)| {
            let mut out = Vec::new();
            if decl {
                out.push(r#"<?xml version="1.0" encoding="UTF-8"?>"#.to_owned());
            }
            out.push("<config>".to_owned());
            for (name, attr, text) in children {
                out.push(format!(
                    r#"  <{name} note="{}">{}</{name}>"#,
                    xml_escape(&attr),
                    xml_escape(&text)
                ));
            }
            out.push("</config>".to_owned());
            out
        })
}

/// Lines of a valid document of any format.
fn arb_doc_lines(format: Format) -> BoxedStrategy<Vec<String>> {
    match format {
        Format::Json => arb_nested().prop_map(|n| n.json_lines()).boxed(),
        Format::Yaml => arb_nested().prop_map(|n| n.yaml_lines()).boxed(),
        Format::Toml => arb_nested().prop_map(|n| n.toml_lines()).boxed(),
        Format::Xml => arb_xml_lines().boxed(),
        Format::Ini => arb_ini().prop_map(|i| i.lines(" = ")).boxed(),
        Format::Properties => arb_properties().prop_map(|(_, l)| l).boxed(),
        Format::Text => prop::collection::vec("\\PC{0,30}", 0..10).boxed(),
    }
}

fn err(format: Format, content: &[u8]) -> ParseError {
    match parse(format, content) {
        Ok(doc) => panic!(
            "{format} accepted {:?} as {doc:?}",
            String::from_utf8_lossy(content)
        ),
        Err(e) => e,
    }
}

fn ok(format: Format, content: &[u8]) -> Document {
    parse(format, content).unwrap_or_else(|e| {
        panic!(
            "{format} rejected {:?}: {e:?}",
            String::from_utf8_lossy(content)
        )
    })
}

// ---- valid documents parse, with the expected JSON shape ---------------------------------

proptest! {
    #[test]
    fn json_documents_parse_to_their_value(doc in arb_nested()) {
        let text = join(&doc.json_lines());
        prop_assert_eq!(ok(Format::Json, text.as_bytes()).to_json(), Some(doc.json()));
    }

    #[test]
    fn yaml_documents_parse_to_their_json_shape(doc in arb_nested()) {
        let text = join(&doc.yaml_lines());
        prop_assert_eq!(ok(Format::Yaml, text.as_bytes()).to_json(), Some(doc.json()), "{}", text);
    }

    #[test]
    fn toml_documents_parse_to_their_json_shape(doc in arb_nested()) {
        let text = join(&doc.toml_lines());
        prop_assert_eq!(ok(Format::Toml, text.as_bytes()).to_json(), Some(doc.json()), "{}", text);
    }

    #[test]
    fn ini_documents_parse_to_sections_of_strings(
        doc in arb_ini(),
        sep in prop::sample::select(&["=", " = ", ": ", "\t=\t"][..]),
    ) {
        let text = join(&doc.lines(sep));
        prop_assert_eq!(ok(Format::Ini, text.as_bytes()).to_json(), Some(doc.json()), "{}", text);
    }

    #[test]
    fn properties_documents_parse_to_a_flat_object_of_strings(
        (map, lines) in arb_properties(),
        crlf in any::<bool>(),
    ) {
        let text = if crlf { lines.join("\r\n") + "\r\n" } else { join(&lines) };
        prop_assert_eq!(
            ok(Format::Properties, text.as_bytes()).to_json(),
            Some(json!(map)),
            "{}", text
        );
    }

    #[test]
    fn xml_documents_parse_and_have_no_json_shape(lines in arb_xml_lines()) {
        let text = join(&lines);
        prop_assert_eq!(ok(Format::Xml, text.as_bytes()).to_json(), None);
    }

    #[test]
    fn any_utf8_is_text(text in "\\PC{0,200}|(\\PC|\n|\r|\t){0,200}") {
        prop_assert_eq!(ok(Format::Text, text.as_bytes()).to_json(), None);
    }
}

// ---- broken documents: the error points at the broken line -------------------------------

/// Byte sequences that are never valid UTF-8, whatever follows them.
const BAD_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\xe6\x97", b"\xed\xa0\x80", b"\xc0\xaf"];

/// Inserts `bad` at 0-based line index `at`; the reported line must be `at + 1`.
fn insert(lines: &[String], at: usize, bad: &str) -> (String, u32) {
    let mut l = lines.to_vec();
    l.insert(at, bad.to_owned());
    (join(&l), at as u32 + 1)
}

proptest! {
    #[test]
    fn json_errors_point_at_the_inserted_line(
        doc in arb_nested(),
        at in any::<prop::sample::Index>(),
        template in 0usize..4,
    ) {
        // (bad line, column when the line before ends with ',' or '{')
        let (bad, col) = [
            ("  oops", 3),
            (r#"  "bad": ,"#, 10),
            (r#"  "bad" 1,"#, 9),
            (r#"  "bad": tru,"#, 13),
        ][template];
        let lines = doc.json_lines();
        // Between the opening `{` and the closing `}`.
        let at = 1 + at.index(lines.len() - 1);
        let (text, line) = insert(&lines, at, bad);
        // After a member without a comma, the parser wants `,` or `}` where the line starts.
        let prev = lines[at - 1].trim_end();
        let col = if prev.ends_with(',') || prev.ends_with('{') { col } else { 3 };
        let e = err(Format::Json, text.as_bytes());
        prop_assert_eq!((e.line, e.column), (Some(line), Some(col)), "{:?}\n{}", e, text);
    }

    #[test]
    fn toml_errors_point_at_the_inserted_line(
        doc in arb_nested(),
        at in any::<prop::sample::Index>(),
        template in 0usize..6,
    ) {
        let (bad, col) = [
            ("bad = = 2", 7),
            ("bad 2", 5),
            ("[unclosed", 10),
            (r#"bad = "unterminated"#, 20),
            ("= 3", 1),
            ("bad = 1979-13-45", 7),
        ][template];
        let lines = doc.toml_lines();
        let (text, line) = insert(&lines, at.index(lines.len() + 1), bad);
        let e = err(Format::Toml, text.as_bytes());
        prop_assert_eq!((e.line, e.column), (Some(line), Some(col)), "{:?}\n{}", e, text);
    }

    #[test]
    fn yaml_errors_point_at_the_inserted_line(
        doc in arb_nested(),
        at in any::<prop::sample::Index>(),
        template in 0usize..4,
    ) {
        let (bad, col) = [
            ("bad: @x", 6),
            ("bad: c: d", 7),
            ("bad: %x", 6),
            ("\tbad: 1", 1),
        ][template];
        let lines = doc.yaml_lines();
        let (text, line) = insert(&lines, at.index(lines.len() + 1), bad);
        let e = err(Format::Yaml, text.as_bytes());
        prop_assert_eq!((e.line, e.column), (Some(line), Some(col)), "{:?}\n{}", e, text);
    }

    #[test]
    fn xml_errors_point_at_the_inserted_line(
        lines in arb_xml_lines(),
        at in any::<prop::sample::Index>(),
        template in 0usize..5,
    ) {
        let (bad, col) = [
            ("<b></c>", 4),
            ("&bad;", 1),
            ("<b x=></b>", 6),
            ("</nope>", 1),
            ("<1b/>", 2),
        ][template];
        // Inside the root element.
        let root = lines.iter().position(|l| l == "<config>").unwrap();
        let at = root + 1 + at.index(lines.len() - root - 1);
        let (text, line) = insert(&lines, at, bad);
        let e = err(Format::Xml, text.as_bytes());
        prop_assert_eq!((e.line, e.column), (Some(line), Some(col)), "{:?}\n{}", e, text);
    }

    #[test]
    fn properties_errors_point_at_the_inserted_line(
        (_, lines) in arb_properties(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(&[r"bad=\uZZZZ", r"bad=\u12", r"bad = x\uD800"][..]),
    ) {
        let (text, line) = insert(&lines, at.index(lines.len() + 1), bad);
        let e = err(Format::Properties, text.as_bytes());
        prop_assert_eq!(e.line, Some(line), "{:?}\n{}", e, text);
    }

    /// Every format requires UTF-8; a broken sequence is reported at its line and, for the
    /// formats checked before parsing, at its column (in characters).
    #[test]
    fn invalid_utf8_is_reported_at_its_line(
        (format, lines) in prop::sample::select(Format::ALL.to_vec())
            .prop_flat_map(|f| (Just(f), arb_doc_lines(f))),
        line_at in any::<prop::sample::Index>(),
        char_at in any::<prop::sample::Index>(),
        bad in prop::sample::select(BAD_UTF8),
    ) {
        let lines = if lines.is_empty() { vec![String::new()] } else { lines };
        let n = line_at.index(lines.len());
        let line = &lines[n];
        let chars = line.chars().count();
        let c = char_at.index(chars + 1);
        let byte = line.char_indices().nth(c).map_or(line.len(), |(b, _)| b);
        let mut content = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == n {
                content.extend_from_slice(&l.as_bytes()[..byte]);
                content.extend_from_slice(bad);
                content.extend_from_slice(&l.as_bytes()[byte..]);
            } else {
                content.extend_from_slice(l.as_bytes());
            }
            content.push(b'\n');
        }
        let e = err(format, &content);
        prop_assert_eq!(e.line, Some(n as u32 + 1), "{} {:?}\n{:?}", format, e, String::from_utf8_lossy(&content));
        if format != Format::Json {
            prop_assert_eq!(e.column, Some(c as u32 + 1), "{} {:?}", format, e);
            prop_assert!(e.message.contains("UTF-8"), "{}", e.message);
        }
    }
}

#[test]
fn broken_lines_examples() {
    let e = err(Format::Json, b"{\n  \"a\": 1,\n  oops\n}");
    assert_eq!((e.line, e.column), (Some(3), Some(3)));
    let e = err(Format::Toml, b"a = 1\nb = = 2\n");
    assert_eq!((e.line, e.column), (Some(2), Some(5)));
    let e = err(Format::Yaml, b"a: 1\nb: @x\n");
    assert_eq!((e.line, e.column), (Some(2), Some(4)));
    let e = err(Format::Xml, b"<a>\n  <b></c>\n</a>");
    assert_eq!((e.line, e.column), (Some(2), Some(6)));
    let e = err(Format::Properties, b"a=1\nb=\\uZZZZ\n");
    assert_eq!(e.line, Some(2));
    let e = err(Format::Text, b"ok\nbad \xff");
    assert_eq!((e.line, e.column), (Some(2), Some(5)));
    // Columns count characters: two two-byte characters before the bad byte.
    let mut content = "ok\néé".as_bytes().to_vec();
    content.push(0xff);
    let e = err(Format::Text, &content);
    assert_eq!((e.line, e.column), (Some(2), Some(3)));
    // An empty document is not JSON, TOML-wise it is an empty table.
    assert!(parse(Format::Json, b"").is_err());
    assert_eq!(ok(Format::Toml, b"").to_json(), Some(json!({})));
    assert_eq!(ok(Format::Text, b"").to_json(), None);
}

/// INI errors must name the broken line. `rust-ini` already reports 1-based lines (and
/// columns); `parse_ini` adds one again, so every INI error points one line too low.
#[test]
fn ini_errors_point_at_the_broken_line() {
    let base: Vec<String> = ["; settings", "top = 1", "", "[db]", "host = x", "port = 5"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut wrong = Vec::new();
    for at in 0..=base.len() {
        // A line that starts with `=` has no key: rust-ini reports "missing key" there.
        let (text, line) = insert(&base, at, "= value");
        let e = err(Format::Ini, text.as_bytes());
        if (e.line, e.column) != (Some(line), Some(1)) {
            wrong.push(format!(
                "broken line {line} col 1 reported at {:?}:{:?} ({})",
                e.line, e.column, e.message
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Wherever a parser reports a position, it lies inside the document: 1-based line within
/// the text, 1-based column within that line (or just past its end). Checked on every
/// prefix of a sample document per format (truncation is the commonest breakage).
#[test]
fn reported_positions_lie_inside_the_document() {
    let samples: [(Format, &str); 6] = [
        (
            Format::Json,
            "{\n  \"name\": \"svc\",\n  \"ports\": [1, 2],\n  \"db\": {\"host\": \"x\"}\n}\n",
        ),
        (
            Format::Yaml,
            "name: svc\nports:\n  - 1\n  - 2\ndb: {host: \"x\", port: 5}\n",
        ),
        (
            Format::Toml,
            "name = \"svc\"\nports = [1, 2]\n[db]\nhost = \"x\"\n",
        ),
        (
            Format::Xml,
            "<config>\n  <name>svc</name>\n  <db host=\"x\"/>\n</config>\n",
        ),
        (Format::Ini, "name = svc\n[db]\nhost = x\nport = \\x0041\n"),
        (Format::Properties, "name=svc\ndb.host=x\nunicode=\\u0041\n"),
    ];
    let mut wrong = Vec::new();
    for (format, sample) in samples {
        assert!(parse(format, sample.as_bytes()).is_ok(), "{format} sample");
        for end in (0..=sample.len()).filter(|&i| sample.is_char_boundary(i)) {
            let text = &sample[..end];
            let Err(e) = parse(format, text.as_bytes()) else {
                continue;
            };
            let lines: Vec<&str> = text.split('\n').collect();
            let Some(line) = e.line else { continue };
            // libyaml puts the end of a stream that lacks a final newline at column 1 of
            // the line after it; tolerated (it still names the end of the input).
            let yaml_eof = format == Format::Yaml
                && !text.ends_with('\n')
                && line as usize == lines.len() + 1
                && e.column == Some(1);
            if yaml_eof {
                continue;
            }
            let ok_line = line >= 1 && (line as usize) <= lines.len();
            let ok_col = match e.column {
                None => true,
                Some(c) => {
                    ok_line
                        && c >= 1
                        && (c as usize) <= lines[line as usize - 1].chars().count() + 1
                }
            };
            if !ok_line || !ok_col {
                wrong.push(format!(
                    "{format} {text:?}: line {:?} column {:?} ({})",
                    e.line, e.column, e.message
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} position(s) outside the document:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A JSON string left open runs into the newline; the error belongs to that line, not to
/// "column 0" of the next one (serde_json's convention for a position on a newline).
#[test]
fn json_unterminated_string_is_reported_on_its_line() {
    let text = "{\n  \"a\": 1,\n  \"b\": \"unterminated\n}\n";
    let e = err(Format::Json, text.as_bytes());
    assert_eq!(e.line, Some(3), "{e:?}");
    assert!(
        e.column.is_some_and(|c| c >= 1),
        "columns are 1-based: {e:?}"
    );
}

/// Columns count characters in every format (as for the UTF-8 check), so an editor can jump
/// to them; a line with non-ASCII text before the error shows the difference.
#[test]
fn columns_count_characters_not_bytes() {
    // The error character is well inside line 2, after two-byte characters.
    let cases: [(Format, &str); 4] = [
        (Format::Json, "{\n\"é\": \"éé\", ?\n}"),
        (Format::Yaml, "a: 1\n\"éé\": [x, @]\n"),
        (Format::Toml, "a = 1\n\"éé\" = 1 = 2\n"),
        (Format::Xml, "<r>\n<a>éé</a><b></c>\n</r>"),
    ];
    for (format, text) in cases {
        let e = err(format, text.as_bytes());
        let line2: Vec<char> = text.split('\n').nth(1).unwrap().chars().collect();
        let col = e.column.expect("column") as usize;
        assert_eq!(e.line, Some(2), "{format}: {e:?}");
        assert!(
            col >= 1 && col <= line2.len(),
            "{format}: column {col} is past the line {:?}",
            line2.iter().collect::<String>()
        );
        let at = line2[col - 1];
        assert!(
            matches!(at, '?' | '@' | '=' | '<' | '/'),
            "{format}: column {col} points at {at:?} in {:?} ({e:?})",
            line2.iter().collect::<String>()
        );
    }
}

// ---- JSON shapes for schema validation ---------------------------------------------------

#[test]
fn ini_shape_is_sections_of_strings() {
    let d = ok(
        Format::Ini,
        b"; comment\n# also\ntop = 1\nflag=true\n\n[db]\nhost = db.local\nport = 5432\n[empty]\n",
    );
    assert_eq!(
        d.to_json(),
        Some(json!({
            "top": "1",
            "flag": "true",
            "db": {"host": "db.local", "port": "5432"},
            "empty": {}
        }))
    );
    assert_eq!(ok(Format::Ini, b"").to_json(), Some(json!({})));
}

/// A section that appears twice must not silently lose the keys of its first occurrence
/// before schema validation: merge them (as most INI readers do) or reject the document.
#[test]
fn repeated_ini_sections_keep_every_key() {
    let text = b"[db]\nhost = x\n\n[cache]\nsize = 1\n\n[db]\nport = 5\n";
    match parse(Format::Ini, text) {
        Err(e) => assert_eq!(
            e.line,
            Some(7),
            "rejecting is fine if it names the line: {e:?}"
        ),
        Ok(d) => {
            let json = d.to_json().unwrap();
            assert_eq!(
                json["db"],
                json!({"host": "x", "port": "5"}),
                "whole shape: {json}"
            );
        }
    }
}

#[test]
fn properties_shape_is_flat_strings() {
    let d = ok(
        Format::Properties,
        b"# comment\n! other\ndb.host = x\ndb.port:5432\nlong = a \\\n    b\nescaped=tab\\there\nempty=\nkey\\ with\\ space = v\ndup=1\ndup=2\n",
    );
    assert_eq!(
        d.to_json(),
        Some(json!({
            "db.host": "x",
            "db.port": "5432",
            "long": "a b",
            "escaped": "tab\there",
            "empty": "",
            "key with space": "v",
            "dup": "2"
        }))
    );
    assert_eq!(
        ok(Format::Properties, b"u=\\u00e9\\u65e5").to_json(),
        Some(json!({"u": "é日"}))
    );
}

/// Content is UTF-8 in every format; a properties value with non-ASCII characters must reach
/// schema validation as those characters.
#[test]
fn properties_are_read_as_utf8() {
    let d = ok(
        Format::Properties,
        "greeting=grüß dich\ncity=東京\n".as_bytes(),
    );
    assert_eq!(
        d.to_json(),
        Some(json!({"greeting": "grüß dich", "city": "東京"}))
    );
}

#[test]
fn toml_shape_is_natural() {
    let d = ok(
        Format::Toml,
        br#"
name = "svc"
port = 8080
ratio = 0.5
on = true
at = 1979-05-27T07:32:00Z
day = 1979-05-27
tags = ["a", "b"]
matrix = [[1, 2], [3]]
inline = { x = 1 }

[db]
host = "x"

[[servers]]
name = "a"

[[servers]]
name = "b"
"#,
    );
    assert_eq!(
        d.to_json(),
        Some(json!({
            "name": "svc",
            "port": 8080,
            "ratio": 0.5,
            "on": true,
            "at": "1979-05-27T07:32:00Z",
            "day": "1979-05-27",
            "tags": ["a", "b"],
            "matrix": [[1, 2], [3]],
            "inline": {"x": 1},
            "db": {"host": "x"},
            "servers": [{"name": "a"}, {"name": "b"}]
        }))
    );
}

#[test]
fn yaml_shape_is_natural() {
    let d = ok(
        Format::Yaml,
        b"name: svc\nport: 8080\nratio: 0.5\non: true\nnothing: ~\ntags: [a, b]\nlist:\n  - x: 1\n  - y\nnested:\n  deep: {k: v}\n1: one\ntrue: yes\nbig: 18446744073709551615\nneg: -3\n",
    );
    assert_eq!(
        d.to_json(),
        Some(json!({
            "name": "svc",
            "port": 8080,
            "ratio": 0.5,
            "on": true,
            "nothing": null,
            "tags": ["a", "b"],
            "list": [{"x": 1}, "y"],
            "nested": {"deep": {"k": "v"}},
            "1": "one",
            "true": "yes",
            "big": 18446744073709551615u64,
            "neg": -3
        }))
    );
    // Tags are transparent for validation.
    assert_eq!(
        ok(Format::Yaml, b"a: !custom 5\n").to_json(),
        Some(json!({"a": 5}))
    );
}

#[test]
fn json_shape_is_the_document() {
    let v = json!({"a": [1, 2.5, "x", null, true], "b": {"c": {}}});
    assert_eq!(
        ok(Format::Json, v.to_string().as_bytes()).to_json(),
        Some(v.clone())
    );
    assert_eq!(ok(Format::Json, b" 42 ").to_json(), Some(json!(42)));
}

#[test]
fn schema_support_per_format() {
    for f in Format::ALL {
        let expected = !matches!(f, Format::Xml | Format::Text);
        assert_eq!(f.supports_schema(), expected, "{f}");
    }
}

// ---- names and media types ---------------------------------------------------------------

#[test]
fn format_names_round_trip() {
    let names = ["json", "yaml", "toml", "xml", "ini", "properties", "text"];
    assert_eq!(Format::ALL.map(Format::as_str), names);
    for f in Format::ALL {
        assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        assert_eq!(f.to_string(), f.as_str());
        assert_eq!(serde_json::to_value(f).unwrap(), json!(f.as_str()));
    }
    for bad in ["JSON", "yml", "", "txt", "conf"] {
        assert!(bad.parse::<Format>().is_err(), "{bad}");
    }
}

#[test]
fn content_types_follow_the_contract_table() {
    let table: [(Format, &[&str]); 7] = [
        (Format::Json, &["application/json"]),
        (
            Format::Yaml,
            &["application/yaml", "application/x-yaml", "text/yaml"],
        ),
        (Format::Toml, &["application/toml"]),
        (Format::Xml, &["application/xml", "text/xml"]),
        (Format::Ini, &["text/plain"]),
        (Format::Properties, &["text/plain"]),
        (Format::Text, &["text/plain"]),
    ];
    let all_types = [
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "application/toml",
        "application/xml",
        "text/xml",
        "text/plain",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json-patch+json",
        "application/jsonx",
        "text/plain-ish",
        "",
    ];
    for (format, accepted) in table {
        assert_eq!(format.media_types(), accepted, "{format}");
        // Fetch answers with the first listed type.
        let ct = format.content_type();
        let essence = ct.split(';').next().unwrap().trim();
        assert_eq!(essence, accepted[0], "{format}");
        assert!(
            format.accepts_content_type(ct),
            "{format} accepts its own {ct}"
        );
        for t in all_types {
            let expected = accepted.contains(&t);
            assert_eq!(format.accepts_content_type(t), expected, "{format} / {t:?}");
            if !t.is_empty() {
                // Parameters, case and surrounding spaces do not matter.
                let decorated = format!("  {}; charset=UTF-8", t.to_ascii_uppercase());
                assert_eq!(
                    format.accepts_content_type(&decorated),
                    expected,
                    "{format} / {decorated:?}"
                );
            }
        }
        for octet in [
            "application/octet-stream",
            "Application/Octet-Stream; foo=bar",
        ] {
            assert!(format.accepts_content_type(octet), "{format} / {octet}");
        }
    }
}
