use std::net::IpAddr;

use super::*;

fn t(s: &str) -> TargetUrl {
    TargetUrl::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn p(s: &str) -> HostPattern {
    HostPattern::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn list(entries: &[&str]) -> AllowedHosts {
    AllowedHosts::List(entries.iter().map(|e| p(e)).collect())
}

// ---- TargetUrl::parse -------------------------------------------------

#[test]
fn parses_plain_https_target() {
    let u = t("https://api.github.com/repos/x?y=1");
    assert_eq!(u.scheme(), "https");
    assert_eq!(u.host_str(), "api.github.com");
    assert_eq!(u.port(), 443);
    assert_eq!(u.ip(), None);
    assert_eq!(u.as_str(), "https://api.github.com/repos/x?y=1");
    assert_eq!(u.to_string(), u.as_str());
    assert_eq!(u.url().path(), "/repos/x");
}

#[test]
fn default_and_explicit_ports() {
    assert_eq!(t("http://a.test/").port(), 80);
    assert_eq!(t("https://a.test:8443/").port(), 8443);
    assert_eq!(t("https://a.test:443/").port(), 443);
    assert_eq!(t("http://a.test:00080/").port(), 80);
}

#[test]
fn lower_cases_scheme_and_host() {
    let u = t("HTTPS://API.GitHub.COM/Path");
    assert_eq!(u.scheme(), "https");
    assert_eq!(u.host_str(), "api.github.com");
    assert_eq!(u.url().path(), "/Path");
}

#[test]
fn refusals_table() {
    use TargetError as E;
    let cases: &[(&str, TargetError)] = &[
        ("", E::Missing),
        (" https://a.test/", E::Whitespace),
        ("https://a.test/ ", E::Whitespace),
        ("https://a.test/\u{a0}", E::Whitespace),
        ("\thttps://a.test/", E::ControlCharacter),
        ("https://a.test/\t", E::ControlCharacter),
        ("https://a.t\test/", E::ControlCharacter),
        ("https://a.test/\r\nx", E::ControlCharacter),
        ("https://a.test/\n", E::ControlCharacter),
        ("https://a.test\0.evil/", E::ControlCharacter),
        ("https://a.test/\u{7f}", E::ControlCharacter),
        ("https://a.test/\u{85}", E::ControlCharacter),
        ("ftp://a.test/", E::UnsupportedScheme("ftp".into())),
        ("file:///etc/passwd", E::UnsupportedScheme("file".into())),
        ("gopher://a.test/", E::UnsupportedScheme("gopher".into())),
        ("ws://a.test/", E::UnsupportedScheme("ws".into())),
        (
            "javascript:alert(1)",
            E::UnsupportedScheme("javascript".into()),
        ),
        ("data:text/plain,x", E::UnsupportedScheme("data".into())),
        (
            "sk-live-0123456789abcdef://a.test/",
            E::UnsupportedScheme("other".into()),
        ),
        ("localhost:8080/x", E::UnsupportedScheme("localhost".into())),
        ("//a.test/x", E::Relative),
        ("\\\\a.test/x", E::Relative),
        ("/\\a.test/x", E::Relative),
        ("/path", E::Relative),
        ("a.test/path", E::Relative),
        ("?q=1", E::Relative),
        ("#frag", E::Relative),
        (
            "http:a.test/",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        (
            "http:/a.test/",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        (
            "http:///a.test/",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        (
            "http:\\\\a.test/",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        (
            "http://\\a.test/",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        ("https://user:pw@a.test/", E::UserInfo),
        ("https://user@a.test/", E::UserInfo),
        ("https://@a.test/", E::UserInfo),
        ("https://:@a.test/", E::UserInfo),
        ("https://a.test@evil.test/", E::UserInfo),
        (
            "https:///",
            E::Ambiguous("the scheme must be followed by exactly '//'"),
        ),
        ("https://", E::NoHost),
        ("https://:443/", E::NoHost),
        ("https://?x", E::NoHost),
        ("https://a.test:0/", E::InvalidPort),
        ("http://./", E::NoHost),
    ];
    for (raw, want) in cases {
        assert_eq!(TargetUrl::parse(raw).as_ref().err(), Some(want), "{raw:?}");
    }
}

#[test]
fn refuses_invalid_hosts_via_url_or_domain_check() {
    for raw in [
        "https://a..test/",
        "https://*.a.test/",
        "https://evil.test,.a.test/",
        "https://a.test{}/",
        "https://a b.test/",
        "https://a.test:99999/",
        "https://a.test:x/",
        "https://[::1/",
        "https://[zz::1]/",
        "https://256.0.0.1/",
        "https://1.2.3.4.5/",
        "https://%00.test/",
        "https://a%2fb.test/",
        "https://a%40b.test/",
        "https://a.test%2f@evil.test/",
        &format!("https://{}.test/", "a".repeat(64)),
        &format!("https://{}test/", "a.".repeat(130)),
    ] {
        assert!(TargetUrl::parse(raw).is_err(), "{raw:?} should be refused");
    }
}

#[test]
fn error_messages_never_echo_the_input() {
    let secret = "sk_live_SECRET123";
    for raw in [
        format!("https://{secret}@a.test/"),
        format!("https://a.test/{secret}\n"),
        format!("ftp://a.test/{secret}"),
        format!("https://{secret}..test/"),
        format!("https://[{secret}]/"),
        format!("/{secret}"),
    ] {
        let e = TargetUrl::parse(&raw).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert_eq!(
            e.to_string(),
            e.to_string().to_lowercase(),
            "messages are lower-case"
        );
    }
}

#[test]
fn size_limit_is_8_kib() {
    let prefix = "https://a.test/";
    let ok = format!("{prefix}{}", "a".repeat(MAX_TARGET_BYTES - prefix.len()));
    assert_eq!(ok.len(), 8192);
    assert!(TargetUrl::parse(&ok).is_ok());
    let long = format!("{ok}a");
    assert_eq!(TargetUrl::parse(&long).unwrap_err(), TargetError::TooLong);
    let huge = "x".repeat(1 << 20);
    assert_eq!(TargetUrl::parse(&huge).unwrap_err(), TargetError::TooLong);
}

#[test]
fn numeric_ipv4_spellings_fold_to_dotted_quad_and_are_private() {
    for raw in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.0.0.1./",
        "http://127.000.000.001/",
        "http://0x7F.0.0.1/",
        "http://%31%32%37.0.0.1/",
        "http://１２７.0.0.1/",
    ] {
        let u = t(raw);
        assert_eq!(u.ip(), Some(ip("127.0.0.1")), "{raw}");
        assert_eq!(u.host_str(), "127.0.0.1", "{raw}");
        assert!(is_private(ip(u.host_str())), "{raw}");
    }
    assert_eq!(t("http://0/").ip(), Some(ip("0.0.0.0")));
    assert_eq!(t("http://2852039166/").ip(), Some(ip("169.254.169.254")));
}

#[test]
fn ipv6_literals_lose_brackets_in_host_str() {
    let u = t("http://[::1]:8080/x");
    assert_eq!(u.host_str(), "::1");
    assert_eq!(u.ip(), Some(ip("::1")));
    assert_eq!(u.port(), 8080);
    let m = t("http://[::ffff:127.0.0.1]/");
    assert_eq!(m.ip(), Some(ip("::ffff:127.0.0.1")));
    assert!(is_private(m.ip().unwrap()));
    assert_eq!(
        t("http://[2606:4700:0::1111]/").host_str(),
        "2606:4700::1111"
    );
}

#[test]
fn backslash_after_host_is_a_slash_and_the_checked_host_is_the_one_url_reports() {
    // WHATWG: for http(s) '\' ends the authority like '/', so the '@'
    // after it is path, not userinfo. The host checked is `a.test`,
    // and that is also the host `url` connects to.
    let u = t("http://a.test\\@evil.test/");
    assert_eq!(u.host_str(), "a.test");
    assert_eq!(u.url().host_str(), Some("a.test"));
    assert_eq!(u.url().path(), "/@evil.test/");
    assert!(list(&["http://a.test"]).matches(&u));
    assert!(!list(&["http://evil.test"]).matches(&u));

    let v = t("https://api.github.com\\repos\\x");
    assert_eq!(v.host_str(), "api.github.com");
    assert_eq!(v.url().path(), "/repos/x");
}

#[test]
fn fragment_and_query_cannot_move_the_host() {
    let u = t("https://api.github.com#@evil.test/");
    assert_eq!(u.host_str(), "api.github.com");
    let v = t("https://api.github.com?@evil.test/");
    assert_eq!(v.host_str(), "api.github.com");
    let w = t("https://api.github.com/x#https://evil.test/");
    assert_eq!(w.host_str(), "api.github.com");
}

#[test]
fn percent_encoded_host_is_decoded_before_checking() {
    let u = t("https://%61pi.github.com/");
    assert_eq!(u.host_str(), "api.github.com");
    assert_eq!(u.url().host_str(), Some("api.github.com"));
    let e = t("https://api.github.com%2eevil.test/");
    assert_eq!(e.host_str(), "api.github.com.evil.test");
    assert!(!list(&["api.github.com"]).matches(&e));
}

#[test]
fn idna_hosts_normalise_to_punycode() {
    let u = t("https://bücher.example/");
    assert_eq!(u.host_str(), "xn--bcher-kva.example");
    // Full-width letters map to ASCII.
    assert_eq!(t("https://ＡＰＩ.github.com/").host_str(), "api.github.com");
    // A Cyrillic 'а' look-alike is a different name.
    let homograph = t("https://аpi.github.com/");
    assert_ne!(homograph.host_str(), "api.github.com");
    assert!(homograph.host_str().starts_with("xn--"));
    assert!(!list(&["api.github.com"]).matches(&homograph));
    // Ideographic full stop is a dot.
    assert_eq!(t("https://api。github.com/").host_str(), "api.github.com");
}

#[test]
fn strips_exactly_one_trailing_dot_for_matching() {
    let u = t("https://api.github.com./x");
    assert_eq!(u.host_str(), "api.github.com");
    assert_eq!(u.url().host_str(), Some("api.github.com."));
    assert!(list(&["api.github.com"]).matches(&u));
    assert!(TargetUrl::parse("https://api.github.com../").is_err());
}

#[test]
fn interior_spaces_are_percent_encoded_not_refused() {
    let u = t("https://a.test/a b?q=c d");
    assert_eq!(u.as_str(), "https://a.test/a%20b?q=c%20d");
}

#[test]
fn underscore_hosts_are_accepted() {
    assert_eq!(
        t("https://my_service.internal/").host_str(),
        "my_service.internal"
    );
}

// ---- join_relative ----------------------------------------------------

#[test]
fn join_relative_appends_path_to_base_path() {
    let base = t("https://api.twitter.com/2/");
    let j = TargetUrl::join_relative(&base, "/tweets?ids=1").unwrap();
    assert_eq!(j.as_str(), "https://api.twitter.com/2/tweets?ids=1");
    let root = t("https://api.example.com");
    assert_eq!(
        TargetUrl::join_relative(&root, "/v1/x").unwrap().as_str(),
        "https://api.example.com/v1/x"
    );
    let port = t("http://[::1]:9000/base");
    assert_eq!(
        TargetUrl::join_relative(&port, "/y").unwrap().as_str(),
        "http://[::1]:9000/base/y"
    );
    // Base query and fragment are dropped.
    let q = t("https://a.test/v1?k=1#f");
    assert_eq!(
        TargetUrl::join_relative(&q, "/x").unwrap().as_str(),
        "https://a.test/v1/x"
    );
}

#[test]
fn join_relative_refuses_traversal_and_non_paths() {
    use TargetError as E;
    let base = t("https://api.example.com/v1/");
    let cases: &[(&str, TargetError)] = &[
        ("", E::Missing),
        ("x/y", E::NotAPath),
        ("https://evil.test/", E::NotAPath),
        ("//evil.test/x", E::NotAPath),
        ("/\\evil.test/x", E::NotAPath),
        ("/..", E::PathTraversal),
        ("/../admin", E::PathTraversal),
        ("/a/../../admin", E::PathTraversal),
        ("/a/..", E::PathTraversal),
        ("/a\\..\\b", E::PathTraversal),
        ("/%2e%2e/admin", E::PathTraversal),
        ("/%2E%2e/admin", E::PathTraversal),
        ("/%2E%2E/admin", E::PathTraversal),
        ("/.%2e/admin", E::PathTraversal),
        ("/%2e./admin", E::PathTraversal),
        ("/a%2f..%2fadmin", E::PathTraversal),
        ("/a%5c..%5cadmin", E::PathTraversal),
        ("/%252e%252e/admin", E::PathTraversal),
        ("/..;/admin", E::PathTraversal),
        ("/x\t", E::ControlCharacter),
        ("/x\r\nHost: evil", E::ControlCharacter),
        ("/x ", E::Whitespace),
    ];
    for (path, want) in cases {
        assert_eq!(
            TargetUrl::join_relative(&base, path).as_ref().err(),
            Some(want),
            "{path:?}"
        );
    }
}

#[test]
fn join_relative_allows_dots_that_are_not_traversal() {
    let base = t("https://api.example.com/v1");
    for (path, want) in [
        ("/a..b", "https://api.example.com/v1/a..b"),
        ("/...", "https://api.example.com/v1/..."),
        ("/x?p=../..", "https://api.example.com/v1/x?p=../.."),
        ("/file.tar.gz", "https://api.example.com/v1/file.tar.gz"),
        ("/a@evil.test", "https://api.example.com/v1/a@evil.test"),
    ] {
        assert_eq!(
            TargetUrl::join_relative(&base, path).unwrap().as_str(),
            want,
            "{path}"
        );
    }
}

#[test]
fn join_relative_never_changes_origin() {
    let base = t("https://api.example.com/v1");
    for path in [
        "/@evil.test",
        "/:80@evil.test/",
        "/#@evil.test",
        "/?//evil.test",
        "/\\/evil.test",
    ] {
        if let Ok(j) = TargetUrl::join_relative(&base, path) {
            assert_eq!(j.host_str(), "api.example.com", "{path}");
            assert_eq!(j.port(), 443, "{path}");
            assert!(j.url().path().starts_with("/v1"), "{path}");
        }
    }
}

// ---- HostPattern ------------------------------------------------------

#[test]
fn look_alikes_do_not_match_exact_host() {
    let allowed = list(&["api.github.com"]);
    assert!(allowed.matches(&t("https://api.github.com/x")));
    assert!(allowed.matches(&t("https://API.GITHUB.COM/x")));
    for raw in [
        "https://api.github.com.evil.test/",
        "https://evilgithub.com/",
        "https://evilapi.github.com/",
        "https://api.github.co/",
        "https://github.com/",
        "https://x.api.github.com/",
        "http://api.github.com/",
        "https://api.github.com:8443/",
        "https://api.github.com:80/",
        "http://api.github.com:443/",
    ] {
        assert!(!allowed.matches(&t(raw)), "{raw} must not match");
    }
}

#[test]
fn scheme_and_port_rules() {
    let cases: &[(&str, &str, bool)] = &[
        ("api.test", "https://api.test/", true),
        ("api.test", "https://api.test:443/", true),
        ("api.test", "http://api.test/", false),
        ("api.test", "http://api.test:443/", false),
        ("api.test:8443", "https://api.test:8443/", true),
        ("api.test:8443", "https://api.test/", false),
        ("api.test:8443", "http://api.test:8443/", false),
        ("http://api.test", "http://api.test/", true),
        ("http://api.test", "http://api.test:80/", true),
        ("http://api.test", "https://api.test/", false),
        ("http://api.test", "http://api.test:8080/", false),
        ("http://api.test:8080", "http://api.test:8080/", true),
        ("HTTPS://api.test", "https://api.test/", true),
        ("https://api.test", "http://api.test/", false),
        ("https://api.test:443", "https://api.test/", true),
    ];
    for (pat, raw, want) in cases {
        assert_eq!(p(pat).matches(&t(raw)), *want, "{pat} vs {raw}");
    }
}

#[test]
fn wildcard_suffix_rules() {
    let cases: &[(&str, &str, bool)] = &[
        ("*.example.com", "https://a.example.com/", true),
        ("*.example.com", "https://a.b.example.com/", true),
        ("*.example.com", "https://A.EXAMPLE.COM./", true),
        ("*.example.com", "https://example.com/", false),
        ("*.example.com", "https://example.com./", false),
        ("*.example.com", "https://aexample.com/", false),
        ("*.example.com", "https://a.example.com.evil.test/", false),
        ("*.example.com", "https://example.com.evil.test/", false),
        ("*.example.com", "http://a.example.com/", false),
        ("*.example.com", "https://a.example.com:8443/", false),
        (
            "http://*.example.com:8080",
            "http://a.example.com:8080/",
            true,
        ),
        ("http://*.example.com:8080", "http://a.example.com/", false),
        ("*.Example.COM.", "https://a.example.com/", true),
        ("*.bücher.example", "https://a.bücher.example/", true),
        ("*.bücher.example", "https://a.xn--bcher-kva.example/", true),
    ];
    for (pat, raw, want) in cases {
        assert_eq!(p(pat).matches(&t(raw)), *want, "{pat} vs {raw}");
    }
}

#[test]
fn ip_literal_patterns_match_only_that_literal() {
    let v4 = p("10.0.0.5:8080");
    assert!(v4.matches(&t("https://10.0.0.5:8080/")));
    assert!(v4.matches(&t("https://0x0a.0.0.5:8080/")));
    assert!(!v4.matches(&t("https://10.0.0.6:8080/")));
    assert!(v4.is_exact_ip(ip("10.0.0.5")));
    assert!(!v4.is_exact_ip(ip("10.0.0.6")));
    assert!(!v4.is_exact_ip(ip("::ffff:10.0.0.5")));

    let v6 = p("http://[::1]:9000");
    assert!(v6.matches(&t("http://[::1]:9000/")));
    assert!(v6.matches(&t("http://[0:0::1]:9000/")));
    assert!(!v6.matches(&t("http://127.0.0.1:9000/")));
    assert!(v6.is_exact_ip(ip("::1")));
    assert_eq!(v6.as_str(), "http://[::1]:9000");

    assert!(!p("api.test").is_exact_ip(ip("10.0.0.5")));
    assert!(!p("*.test").is_exact_ip(ip("10.0.0.5")));
    // A name pattern never matches an IP-literal target.
    assert!(!p("localhost").matches(&t("https://127.0.0.1/")));
}

#[test]
fn pattern_refusals() {
    for s in [
        "",
        " ",
        " api.test",
        "api.test ",
        "api.\ttest",
        "*",
        "https://*",
        "*.",
        "*.*.test",
        "a*.test",
        "*a.test",
        "a.*.test",
        "api.test/path",
        "api.test/",
        "api.test?x",
        "api.test#x",
        "api.test\\x",
        "user@api.test",
        "https://user:pw@api.test",
        "ftp://api.test",
        "ws://api.test",
        "//api.test",
        "api.test:",
        "api.test:0",
        "api.test:65536",
        "api.test:443x",
        "api.test:-1",
        "::1",
        "[::1",
        "[::1]x",
        "*.10.0.0.1",
        "*.[::1]",
        "a..test",
        "api%2etest",
        "a,b.test",
    ] {
        assert!(HostPattern::parse(s).is_err(), "{s:?} should be refused");
    }
}

#[test]
fn pattern_as_str_is_normalised() {
    for (input, want) in [
        ("API.GitHub.com", "api.github.com"),
        ("api.github.com.", "api.github.com"),
        ("HTTP://Api.Test:8080", "http://api.test:8080"),
        ("*.Example.COM", "*.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("[0:0::1]", "[::1]"),
        ("2130706433", "127.0.0.1"),
        ("https://api.test:443", "https://api.test:443"),
    ] {
        let pat = p(input);
        assert_eq!(pat.as_str(), want, "{input}");
        assert_eq!(pat.to_string(), want, "{input}");
    }
    assert_eq!(p("API.test"), p("api.test."));
}

#[test]
fn allowed_hosts_any_matches_all_but_names_no_ip() {
    assert!(AllowedHosts::Any.matches(&t("https://anything.test/")));
    assert!(!AllowedHosts::Any.names_exact_ip(ip("127.0.0.1")));
    assert!(!AllowedHosts::List(vec![]).matches(&t("https://anything.test/")));
    let l = list(&["api.test", "10.1.2.3"]);
    assert!(l.names_exact_ip(ip("10.1.2.3")));
    assert!(!l.names_exact_ip(ip("10.1.2.4")));
}

// ---- is_private -------------------------------------------------------

#[test]
fn private_address_table() {
    let private = [
        // IPv4
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.1",
        "192.0.0.170",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "3fff::1",
        "100::1",
        "64:ff9b:1::a00:1",
        "64:ff9b:1::808:808",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1",
        "2001:10::1",
        "4000::1",
        "::2:1:1:1",
        // IPv4-mapped / translated / compatible / NAT64 / 6to4 of private v4
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0:127.0.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        "::0.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::192.168.0.1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:101:1::1",
    ];
    for a in private {
        assert!(is_private(ip(a)), "{a} must be private");
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.0.3.1",
        "192.167.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "203.0.114.1",
        "223.255.255.255",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001::1",
        "2001:200::1",
        "3ffe::1",
        "::ffff:8.8.8.8",
        "::ffff:0:8.8.8.8",
        "::8.8.8.8",
        "64:ff9b::8.8.8.8",
        "64:ff9b::101:101",
        "2002:808:808::1",
    ];
    for a in public {
        assert!(!is_private(ip(a)), "{a} must be public");
    }
}

// ---- PrivateAllowlist, ResolvePins, OutboundRule ------------------------

#[test]
fn allowlist_hosts_and_cidrs() {
    let a =
        PrivateAllowlist::parse("internal.corp, 10.1.0.0/16,192.168.5.5, [fd00::1],fd10::/16,,")
            .unwrap();
    assert!(!a.is_empty());
    assert!(a.allows("internal.corp", ip("10.9.9.9")));
    assert!(a.allows("INTERNAL.corp.", ip("172.16.0.1")));
    assert!(!a.allows("x.internal.corp", ip("172.16.0.1")));
    assert!(!a.allows("internal.corp.evil", ip("172.16.0.1")));
    assert!(a.allows("svc.test", ip("10.1.200.3")));
    assert!(!a.allows("svc.test", ip("10.2.0.1")));
    assert!(a.allows("svc.test", ip("::ffff:10.1.0.9")));
    assert!(a.allows("svc.test", ip("192.168.5.5")));
    assert!(!a.allows("svc.test", ip("192.168.5.6")));
    assert!(a.allows("svc.test", ip("fd00::1")));
    assert!(a.allows("svc.test", ip("fd10:1::1")));
    assert!(!a.allows("svc.test", ip("fd11::1")));
    // Host bits in a CIDR are truncated, not refused.
    assert!(
        PrivateAllowlist::parse("10.1.2.3/8")
            .unwrap()
            .allows("x", ip("10.200.0.1"))
    );
    assert!(PrivateAllowlist::parse("").unwrap().is_empty());
    assert!(PrivateAllowlist::default().is_empty());
    assert!(!PrivateAllowlist::default().allows("localhost", ip("127.0.0.1")));
}

#[test]
fn allowlist_refusals_name_the_entry() {
    for (s, entry) in [
        ("ok.test,*.corp", 2),
        ("10.0.0.0/33", 1),
        ("a.test,b.test:80", 2),
        ("a.test/path", 1),
        ("a..b", 1),
        ("user@a.test", 1),
        ("a b", 1),
    ] {
        match PrivateAllowlist::parse(s) {
            Err(TargetError::InvalidAllowlist { entry: e, .. }) => assert_eq!(e, entry, "{s}"),
            other => panic!("{s:?}: {other:?}"),
        }
    }
}

#[test]
fn resolve_pins_parse_and_lookup() {
    let r = ResolvePins::parse("api.test=127.0.0.1, Other.Test.=[::1],v6.test=fd00::2").unwrap();
    assert_eq!(r.get("api.test"), Some(ip("127.0.0.1")));
    assert_eq!(r.get("API.TEST."), Some(ip("127.0.0.1")));
    assert_eq!(r.get("other.test"), Some(ip("::1")));
    assert_eq!(r.get("v6.test"), Some(ip("fd00::2")));
    assert_eq!(r.get("missing.test"), None);
    assert_eq!(ResolvePins::parse("").unwrap().get("api.test"), None);
    for s in [
        "api.test",
        "api.test=",
        "=127.0.0.1",
        "api.test=localhost",
        "api.test=1.2.3.4,API.test=1.2.3.5",
        "*.test=1.2.3.4",
        "1.2.3.4=1.2.3.4",
        "a.test:80=1.2.3.4",
        "a.test=1.2.3.4/8",
    ] {
        assert!(ResolvePins::parse(s).is_err(), "{s:?} should be refused");
    }
}

#[test]
fn outbound_rule_table() {
    let none = AllowedHosts::List(vec![]);
    let names_ip = list(&["10.0.0.5:8080"]);
    let default = OutboundRule::default();
    // Public addresses always pass.
    assert!(default.permits("api.test", ip("8.8.8.8"), &none));
    assert!(default.permits("2606:4700::1111", ip("2606:4700::1111"), &none));
    // Private addresses are refused by default, also when a name resolves there.
    assert!(!default.permits("api.test", ip("10.0.0.5"), &names_ip));
    assert!(!default.permits("127.0.0.1", ip("127.0.0.1"), &AllowedHosts::Any));
    assert!(!default.permits("metadata.test", ip("169.254.169.254"), &AllowedHosts::Any));
    // Exact IP literal named in allowed_hosts, reached as that literal.
    assert!(default.permits("10.0.0.5", ip("10.0.0.5"), &names_ip));
    assert!(!default.permits("10.0.0.6", ip("10.0.0.6"), &names_ip));
    assert!(!default.permits("10.0.0.5", ip("10.0.0.6"), &names_ip));
    let v6 = list(&["[::1]"]);
    assert!(default.permits("::1", ip("::1"), &v6));
    assert!(default.permits("[::1]", ip("::1"), &v6));
    assert!(!default.permits("localhost", ip("::1"), &v6));
    // Deployment-wide switch.
    let all = OutboundRule {
        allow_all_private: true,
        ..OutboundRule::default()
    };
    assert!(all.permits("api.test", ip("127.0.0.1"), &none));
    // Allowlist by host or CIDR.
    let allow = OutboundRule {
        allow_all_private: false,
        allowlist: PrivateAllowlist::parse("internal.corp,192.168.0.0/24").unwrap(),
    };
    assert!(allow.permits("internal.corp", ip("10.9.9.9"), &none));
    assert!(allow.permits("x.test", ip("192.168.0.7"), &none));
    assert!(!allow.permits("x.test", ip("192.168.1.7"), &none));
}

#[test]
fn end_to_end_numeric_loopback_target_is_refused_without_exception() {
    let allowed = list(&["http://api.test"]);
    let target = t("http://0x7f.1/");
    assert!(!allowed.matches(&target));
    let rule = OutboundRule::default();
    let addr = target.ip().unwrap();
    assert!(!rule.permits(target.host_str(), addr, &AllowedHosts::Any));
}

// ---- properties -------------------------------------------------------

mod props {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = TargetUrl::parse(&s);
            let _ = HostPattern::parse(&s);
            let _ = PrivateAllowlist::parse(&s);
            let _ = ResolvePins::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_url_like_input(
            s in r"(https?|HTTP|ftp)?:?[/\\]{0,3}[a-zA-Z0-9.:@/\\?#%\[\]_~ \t\n\x00\u{80}-\u{10ffff}-]{0,40}"
        ) {
            if let Ok(u) = TargetUrl::parse(&s) {
                prop_assert!(u.scheme() == "http" || u.scheme() == "https");
                prop_assert!(!u.host_str().is_empty());
                prop_assert!(u.port() != 0);
                prop_assert_eq!(u.url().username(), "");
                prop_assert!(!u.host_str().bytes().any(|b| b.is_ascii_uppercase()));
                // Re-parsing the normalised form is stable.
                let again = TargetUrl::parse(u.as_str());
                prop_assert_eq!(again.as_ref().map(TargetUrl::host_str).ok(), Some(u.host_str()));
                prop_assert_eq!(again.as_ref().map(TargetUrl::port).ok(), Some(u.port()));
            }
        }

        #[test]
        fn accepted_targets_hold_the_invariants(
            s in r"(http|https|HTTP)://[a-zA-Z0-9.%@:\[\]\\_~\u{80}-\u{3000}-]{1,24}([/\\?#][ -~\u{80}-\u{ff}]{0,30})?"
        ) {
            if let Ok(u) = TargetUrl::parse(&s) {
                prop_assert!(!u.host_str().is_empty());
                prop_assert!(u.host_str().is_ascii());
                prop_assert!(!u.host_str().bytes().any(|b| b.is_ascii_uppercase()));
                prop_assert!(u.as_str().is_ascii());
                prop_assert_eq!(u.url().username(), "");
                prop_assert!(u.url().password().is_none());
                let again = TargetUrl::parse(u.as_str());
                prop_assert_eq!(again.as_ref().map(TargetUrl::host_str).ok(), Some(u.host_str()));
                prop_assert_eq!(again.as_ref().map(TargetUrl::ip).ok(), Some(u.ip()));
                prop_assert_eq!(again.as_ref().map(TargetUrl::port).ok(), Some(u.port()));
            }
        }

        #[test]
        fn join_relative_never_panics_and_keeps_origin(path in "(?s)[ -~\u{80}-\u{ff}\t\n\0]{0,40}") {
            let base = TargetUrl::parse("https://api.example.com/v1/").unwrap();
            if let Ok(j) = TargetUrl::join_relative(&base, &path) {
                prop_assert_eq!(j.host_str(), "api.example.com");
                prop_assert_eq!(j.port(), 443);
                prop_assert!(j.url().path().starts_with("/v1/"));
                prop_assert!(!j.url().path().split('/').any(|s| s == ".."));
            }
        }

        #[test]
        fn suffixes_of_an_allowed_name_never_match(label in "[a-z0-9-]{1,20}") {
            let pat = HostPattern::parse("api.github.com").unwrap();
            for raw in [
                format!("https://api.github.com.{label}/"),
                format!("https://{label}api.github.com/"),
                format!("https://{label}.api.github.com/"),
            ] {
                if let Ok(u) = TargetUrl::parse(&raw) {
                    prop_assert!(!pat.matches(&u), "{}", raw);
                }
            }
        }

        #[test]
        fn is_private_agrees_on_mapped_forms(a in any::<u32>()) {
            let v4 = Ipv4Addr::from(a);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            let compat = IpAddr::V6(v4.to_ipv6_compatible());
            prop_assert_eq!(is_private(IpAddr::V4(v4)), is_private(mapped));
            prop_assert_eq!(is_private(IpAddr::V4(v4)), is_private(compat));
        }
    }
}
