use proptest::prelude::*;

use super::*;

fn r<'a>(credential: &'a str, field: Option<&'a str>) -> Segment<'a> {
    Segment::Reference(Reference { credential, field })
}

#[test]
fn splits_literals_and_references() {
    assert_eq!(
        parse("Bearer <CREDENTIAL:github>").unwrap(),
        vec![Segment::Literal("Bearer "), r("github", None)]
    );
    assert_eq!(
        parse("<CREDENTIAL:aws.key_id>:<CREDENTIAL:aws.secret-key> tail").unwrap(),
        vec![
            r("aws", Some("key_id")),
            Segment::Literal(":"),
            r("aws", Some("secret-key")),
            Segment::Literal(" tail"),
        ]
    );
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse("plain").unwrap(), vec![Segment::Literal("plain")]);
}

#[test]
fn the_keyword_matches_in_any_case() {
    assert_eq!(parse("<credential:a>").unwrap(), vec![r("a", None)]);
    assert_eq!(parse("<Credential:a>").unwrap(), vec![r("a", None)]);
}

#[test]
fn refuses_malformed_placeholders() {
    assert_eq!(
        parse("x <CREDENTIAL:a"),
        Err(PlaceholderError::Unterminated(2))
    );
    assert_eq!(
        parse("<CREDENTIAL:>"),
        Err(PlaceholderError::InvalidName(0))
    );
    assert_eq!(
        parse("<CREDENTIAL:Upper>"),
        Err(PlaceholderError::InvalidName(0))
    );
    assert_eq!(
        parse("<CREDENTIAL: a>"),
        Err(PlaceholderError::InvalidName(0))
    );
    assert_eq!(
        parse("<CREDENTIAL:a.>"),
        Err(PlaceholderError::InvalidField(0))
    );
    assert_eq!(
        parse("<CREDENTIAL:a.b.c>"),
        Err(PlaceholderError::InvalidField(0))
    );
    assert_eq!(
        parse("<CREDENTIAL:a.b c>"),
        Err(PlaceholderError::InvalidField(0))
    );
    let long_field = format!("<CREDENTIAL:a.{}>", "f".repeat(MAX_FIELD_LEN + 1));
    assert_eq!(parse(&long_field), Err(PlaceholderError::InvalidField(0)));
    let long_name = format!("<CREDENTIAL:{}>", "n".repeat(65));
    assert_eq!(parse(&long_name), Err(PlaceholderError::InvalidName(0)));
}

#[test]
fn placeholders_do_not_nest() {
    assert_eq!(
        parse("<CREDENTIAL:<CREDENTIAL:a>>"),
        Err(PlaceholderError::Nested(0))
    );
    assert_eq!(parse("<CREDENTIAL:a<b>"), Err(PlaceholderError::Nested(0)));
    // A stray `>` after a complete placeholder is a literal.
    assert_eq!(
        parse("<CREDENTIAL:a>>").unwrap(),
        vec![r("a", None), Segment::Literal(">")]
    );
}

#[test]
fn unicode_is_literal_outside_and_refused_inside() {
    assert_eq!(
        parse("ключ <CREDENTIAL:a> 🔑").unwrap(),
        vec![
            Segment::Literal("ключ "),
            r("a", None),
            Segment::Literal(" 🔑")
        ]
    );
    assert_eq!(
        parse("<CREDENTIAL:clé>"),
        Err(PlaceholderError::InvalidName(0))
    );
    assert_eq!(
        parse("<CREDENTIAL:a.fïeld>"),
        Err(PlaceholderError::InvalidField(0))
    );
    // A fullwidth '<' is not a marker.
    assert_eq!(
        parse("＜CREDENTIAL:a>").unwrap(),
        vec![Segment::Literal("＜CREDENTIAL:a>")]
    );
}

#[test]
fn not_a_marker_without_the_colon() {
    assert_eq!(
        parse("<CREDENTIAL>").unwrap(),
        vec![Segment::Literal("<CREDENTIAL>")]
    );
    assert_eq!(
        parse("<CREDENTIALS:a>").unwrap(),
        vec![Segment::Literal("<CREDENTIALS:a>")]
    );
    assert_eq!(find_marker(b"<CREDENTIALS:a>"), None);
}

#[test]
fn references_lists_every_placeholder_in_order() {
    let refs = references("<CREDENTIAL:b> and <CREDENTIAL:a.x>").unwrap();
    assert_eq!(
        refs,
        vec![
            Reference {
                credential: "b",
                field: None
            },
            Reference {
                credential: "a",
                field: Some("x")
            },
        ]
    );
    assert_eq!(refs[1].to_string(), "<CREDENTIAL:a.x>");
}

#[test]
fn finds_markers_in_every_spelling() {
    for s in [
        "<CREDENTIAL:a>",
        "x=%3CCREDENTIAL%3Aa%3E",
        "x=%3ccredential%3aa",
        r#"{"k":"\u003cCREDENTIAL:a\u003e"}"#,
        r#"{"k":"\u003ccredential\u003aa"}"#,
        "&lt;CREDENTIAL:a&gt;",
        "&#60;credential&#58;a",
        "<credential:",
    ] {
        assert!(find_marker(s.as_bytes()).is_some(), "{s}");
    }
    assert_eq!(find_marker(b"ab<CREDENTIAL:a>"), Some(2));
    for s in [
        "",
        "<",
        "%3C",
        "credential:a",
        "<cred:a>",
        "&lt;",
        "\\u003c",
    ] {
        assert_eq!(find_marker(s.as_bytes()), None, "{s}");
    }
    assert_eq!(find_marker(&[0xff, 0xfe, b'<', 0x80]), None);
}

#[test]
fn very_long_inputs_finish_without_panicking() {
    let many_openers = "<CREDENTIAL:".repeat(100_000);
    assert!(parse(&many_openers).is_err());
    assert!(find_marker(many_openers.as_bytes()).is_some());
    let many_placeholders = "<CREDENTIAL:a.b>".repeat(100_000);
    assert_eq!(parse(&many_placeholders).unwrap().len(), 100_000);
    let no_marker = "<".repeat(1_000_000);
    assert_eq!(parse(&no_marker).unwrap().len(), 1);
    assert_eq!(find_marker(no_marker.as_bytes()), None);
    let unterminated = format!("<CREDENTIAL:{}", "a".repeat(1_000_000));
    assert_eq!(parse(&unterminated), Err(PlaceholderError::Unterminated(0)));
}

proptest! {
    #[test]
    fn parse_never_panics_and_keeps_literals(s in ".{0,200}") {
        if let Ok(segments) = parse(&s) {
            for seg in &segments {
                if let Segment::Literal(l) = seg {
                    prop_assert!(s.contains(l));
                    prop_assert!(plain_marker_at(l.as_bytes(), 0).is_none());
                }
            }
        }
        let _ = find_marker(s.as_bytes());
    }

    #[test]
    fn parse_never_panics_near_markers(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("<CREDENTIAL:".to_owned()),
                Just(">".to_owned()),
                Just(".".to_owned()),
                Just("<".to_owned()),
                "[a-z_.-]{0,5}",
                ".{0,3}",
            ],
            0..30,
        )
    ) {
        let s: String = parts.concat();
        if let Ok(segments) = parse(&s) {
            // Re-rendering gives back the input modulo the keyword's case.
            let rendered: String = segments
                .iter()
                .map(|seg| match seg {
                    Segment::Literal(l) => (*l).to_owned(),
                    Segment::Reference(r) => r.to_string(),
                })
                .collect();
            prop_assert_eq!(rendered.len(), s.len());
        }
    }
}
