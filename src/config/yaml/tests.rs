use super::*;

fn parse_ok(text: &str) -> Node {
    parse(text, &LIMITS)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .expect("a document")
}

fn entries(node: &Node) -> &[Entry] {
    match &node.value {
        Value::Map(entries) => entries,
        other => panic!("not a map: {}", other.kind()),
    }
}

fn text(node: &Node) -> &str {
    match &node.value {
        Value::Scalar(scalar) => scalar.text.expose(),
        other => panic!("not text: {}", other.kind()),
    }
}

#[test]
fn nodes_and_keys_know_their_line_and_column() {
    let doc =
        parse_ok("# header\nsources:\n  a:\n    upstream: \"http://a\"\n  d: {upstream: q}\n");
    let sources = &entries(&doc)[0];
    assert_eq!(
        (&*sources.key.name, sources.key.at),
        ("sources", Mark { line: 2, column: 1 })
    );
    let a = &entries(&sources.value)[0];
    let upstream = &entries(&a.value)[0];
    assert_eq!(upstream.key.at, Mark { line: 4, column: 5 });
    assert_eq!(
        upstream.value.at,
        Mark {
            line: 4,
            column: 15
        }
    );
    assert_eq!(text(&upstream.value), "http://a");
    let flow = &entries(&entries(&sources.value)[1].value)[0];
    assert_eq!(
        flow.value.at,
        Mark {
            line: 5,
            column: 17
        }
    );
}

#[test]
fn scalars_keep_their_text_and_whether_yaml_would_read_a_number() {
    let doc = parse_ok("a: 4711\nb: \"4711\"\nc: 0123\nd: !!str true\ne: ~\nf:\ng: 0x1F\nh: 1.5e3\ni: .inf\nj: t0ken\nk: 31415926535897932384626433832795\n");
    let non_text: Vec<(&str, bool)> = entries(&doc)
        .iter()
        .map(|e| match &e.value.value {
            Value::Scalar(s) => (&*e.key.name, s.reads_as_non_text()),
            Value::Null => (&*e.key.name, false),
            other => panic!("{}", other.kind()),
        })
        .collect();
    assert_eq!(
        non_text,
        [
            ("a", true),
            ("b", false),
            ("c", false),
            ("d", false),
            ("e", false),
            ("f", false),
            ("g", true),
            ("h", true),
            ("i", true),
            ("j", false),
            ("k", true),
        ]
    );
    assert!(matches!(entries(&doc)[4].value.value, Value::Null));
    assert!(matches!(entries(&doc)[5].value.value, Value::Null));
}

#[test]
fn aliases_repeat_their_anchor_at_the_alias() {
    let doc = parse_ok("base: &h { X-A: one }\nuse: *h\n");
    let used = &entries(&doc)[1].value;
    assert_eq!(used.at, Mark { line: 2, column: 6 });
    assert_eq!(text(&entries(used)[0].value), "one");
}

#[test]
fn an_alias_bomb_is_refused_at_the_budget_in_bounded_time() {
    // One 1 MB string aliased 3,000 times: 3 GB if expanded.
    let mut bomb = format!("a: &a {}\nb: [", "x".repeat(1_000_000));
    bomb.push_str(&"*a, ".repeat(3000));
    bomb.push_str("]\n");
    let error = parse(&bomb, &LIMITS).expect_err("over budget");
    assert!(
        error.message.contains("expands to more than") && error.message.contains("aliases"),
        "{error:?}"
    );
    // Nested lists: each level multiplies the one below by ten.
    let mut nested = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = i - 1;
        nested.push_str(&format!(
            "l{i}: &l{i} [{}]\n",
            vec![format!("*l{prev}"); 10].join(", ")
        ));
    }
    let error = parse(&nested, &LIMITS).expect_err("over budget");
    assert!(error.message.contains("YAML nodes"), "{error:?}");
}

#[test]
fn depth_documents_tags_and_keys_are_checked() {
    for (text, expected) in [
        ("a: ".to_owned() + &"[".repeat(40), "more than 32 deep"),
        ("[".repeat(100_000), "nests lists and maps too deep"),
        (
            "a: 1\n---\nb: 2\n".to_owned(),
            "more than one YAML document",
        ),
        ("a: !secret x\n".to_owned(), "tags other than !!str"),
        ("a: !!map {}\n".to_owned(), "tags are not supported"),
        ("? [a]\n: b\n".to_owned(), "keys must be text"),
        ("a: *nope\n".to_owned(), "is not valid YAML"),
        ("a: &x [*x]\n".to_owned(), "cannot contain itself"),
    ] {
        let error = parse(&text, &LIMITS).expect_err(&text[..text.len().min(20)]);
        assert!(error.message.contains(expected), "{expected}: {error:?}");
    }
    assert!(parse("# only a comment\n", &LIMITS)
        .expect("parses")
        .is_none());
}

#[test]
fn parser_messages_never_quote_the_file() {
    let error = parse("bearer_token: @hunter2\n", &LIMITS).expect_err("bad char");
    assert!(!error.message.contains('@'), "{error:?}");
    assert_eq!(
        error.at,
        Some(Mark {
            line: 1,
            column: 15
        })
    );
}
