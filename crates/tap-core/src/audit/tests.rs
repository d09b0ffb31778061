//! Chain, verification and record tests.

use super::*;

fn key() -> AuditKey {
    AuditKey::from_bytes([7; 32])
}

fn record(id: &str) -> String {
    serde_json::to_string(&AuditRecord {
        request_id: id.to_owned(),
        ..Default::default()
    })
    .unwrap()
}

/// `legacy` rows written the old way, then `keyed` rows chained with the key.
fn chain_of(team: i64, legacy: i64, keyed: i64) -> AuditChain {
    let mut rows = Vec::new();
    let mut prev = GENESIS_HASH.to_owned();
    for seq in 1..=legacy {
        let json = record(&format!("r{seq}"));
        let hash = chain_hash(&prev, seq, AuditPhase::Finish, &json);
        rows.push(AuditRow {
            seq,
            phase: AuditPhase::Finish,
            record_json: json,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            row_hash: hash,
        });
    }
    let mut chainer = Chainer::new(key());
    chainer.set_head(
        team,
        ChainHead {
            seq: legacy,
            hash: prev,
            keyed_from: legacy + 1,
        },
    );
    for seq in legacy + 1..=legacy + keyed {
        let json = record(&format!("r{seq}"));
        let link = chainer.link(team, AuditPhase::Finish, &json).unwrap();
        assert_eq!(link.seq, seq);
        rows.push(AuditRow {
            seq,
            phase: AuditPhase::Finish,
            record_json: json,
            prev_hash: link.prev_hash,
            row_hash: link.row_hash,
        });
    }
    let head = chainer.heads().pop();
    AuditChain {
        anchor_hash: GENESIS_HASH.to_owned(),
        first_seq: 1,
        anchor_mac: None,
        rows,
        head,
    }
}

fn verify(c: &AuditChain) -> Verification {
    verify_keyed(&key(), 1, c, None)
}

/// Rewrites row `at` and recomputes every later hash without the key, as
/// the unkeyed chain allowed.
fn rewrite_from(c: &mut AuditChain, at: usize) {
    c.rows[at].record_json = c.rows[at].record_json.replace(":\"r", ":\"x");
    let mut prev = c.rows[at].prev_hash.clone();
    for r in &mut c.rows[at..] {
        r.prev_hash.clone_from(&prev);
        r.row_hash = chain_hash(&prev, r.seq, r.phase, &r.record_json);
        prev.clone_from(&r.row_hash);
    }
}

#[test]
fn an_intact_chain_verifies_legacy_rows_and_keyed_rows() {
    for (legacy, keyed) in [(0, 0), (0, 5), (3, 4), (4, 0)] {
        let c = chain_of(1, legacy, keyed);
        let v = verify(&c);
        assert!(v.ok, "{legacy}+{keyed}: {v:?}");
        assert_eq!(v.rows, u64::try_from(legacy + keyed).unwrap());
    }
    assert!(
        verify(&AuditChain {
            anchor_hash: GENESIS_HASH.into(),
            first_seq: 1,
            anchor_mac: None,
            rows: vec![],
            head: None
        })
        .ok
    );
}

#[test]
fn an_edited_row_fails_even_with_every_later_hash_recomputed() {
    let mut c = chain_of(1, 0, 5);
    c.rows[2].record_json = c.rows[2].record_json.replace("r3", "r9");
    let v = verify(&c);
    assert_eq!((v.ok, v.first_bad_row), (false, Some(3)), "{v:?}");
    assert!(v.error.unwrap().contains("row 3 does not verify"));
    let mut c = chain_of(1, 0, 5);
    rewrite_from(&mut c, 1);
    assert_eq!(verify(&c).first_bad_row, Some(2));
    // Recomputed in the legacy part: the first keyed row's link breaks.
    let mut c = chain_of(1, 3, 2);
    rewrite_from(&mut c, 1);
    assert_eq!(verify(&c).first_bad_row, Some(4));
    // All legacy: the sealed head's last hash catches it.
    let mut c = chain_of(1, 4, 0);
    rewrite_from(&mut c, 1);
    assert_eq!(verify(&c).first_bad_row, Some(4));
    // A MAC made for another team does not verify in this one.
    let c = chain_of(2, 0, 3);
    assert!(!verify_keyed(&key(), 1, &c, None).ok);
}

#[test]
fn deleted_rows_are_named() {
    let mut c = chain_of(1, 0, 6);
    c.rows.truncate(4);
    let v = verify(&c);
    assert_eq!(v.first_bad_row, Some(5));
    assert_eq!(v.missing_rows, Some((5, 6)));
    assert!(v.error.unwrap().contains("rows 5..6 are missing"));
    let mut c = chain_of(1, 0, 6);
    c.rows.remove(1);
    let v = verify(&c);
    assert_eq!((v.first_bad_row, v.missing_rows), (Some(2), Some((2, 2))));
    // Every row gone, the head kept.
    let mut c = chain_of(1, 0, 3);
    c.rows.clear();
    assert_eq!(verify(&c).missing_rows, Some((1, 3)));
}

#[test]
fn an_edited_missing_or_unsealed_head_fails() {
    let mut c = chain_of(1, 0, 4);
    c.rows.truncate(2);
    let h = c.head.as_mut().unwrap();
    h.seq = 2;
    h.last_hash = c.rows[1].row_hash.clone();
    let v = verify(&c);
    assert!(!v.ok);
    assert!(v.error.unwrap().contains("head does not match its seal"));
    let mut c = chain_of(1, 3, 1);
    c.head.as_mut().unwrap().keyed_from = 5;
    assert!(
        !verify(&c).ok,
        "moving the switch-over point breaks the seal"
    );
    let mut c = chain_of(1, 0, 2);
    c.head = None;
    assert!(verify(&c).error.unwrap().contains("head is missing"));
    let mut c = chain_of(1, 0, 2);
    c.head.as_mut().unwrap().mac = None;
    assert!(verify(&c).error.unwrap().contains("not sealed"));
    // A row past the head was not appended by a keyed writer.
    let mut c = chain_of(1, 0, 3);
    let extra = c.rows[2].clone();
    c.rows.push(AuditRow { seq: 4, ..extra });
    assert_eq!(verify(&c).first_bad_row, Some(4));
}

#[test]
fn anchors_round_trip_and_a_chain_must_extend_its_anchor() {
    let c = chain_of(1, 0, 4);
    let at = &c.rows[2];
    let anchor: ChainAnchor = format!("tap1:acme:3:{}", at.row_hash).parse().unwrap();
    assert_eq!(anchor.to_string(), format!("tap1:acme:3:{}", at.row_hash));
    assert!(verify_keyed(&key(), 1, &c, Some((3, &anchor.hash))).ok);
    assert!(verify_keyed(&key(), 1, &c, Some((0, GENESIS_HASH))).ok);
    let v = verify_keyed(&key(), 1, &c, Some((2, &anchor.hash)));
    assert_eq!((v.ok, v.first_bad_row), (false, Some(2)));
    let v = verify_keyed(&key(), 1, &c, Some((9, &anchor.hash)));
    assert!(v.error.unwrap().contains("ends at row 4"));
    for bad in ["tap1:a:1:zz", "tap2:a:1:", "tap1::1:", "tap1:a:-1:", "x"] {
        assert_eq!(bad.parse::<ChainAnchor>(), Err(BadAnchor), "{bad}");
    }
}

fn row(seq: i64, phase: AuditPhase, rec: &AuditRecord) -> AuditRow {
    AuditRow {
        seq,
        phase,
        record_json: serde_json::to_string(rec).unwrap(),
        prev_hash: String::new(),
        row_hash: String::new(),
    }
}

#[test]
fn merge_takes_headers_and_body_from_the_start_row_when_the_finish_leaves_them_there() {
    let start = AuditRecord {
        request_id: "a".into(),
        decision: "proceed".into(),
        request_headers: vec![("x-note".into(), "hi".into())],
        request_body: Some("{}".into()),
        ..Default::default()
    };
    let finish = AuditRecord {
        upstream_status: Some(200),
        request_headers: Vec::new(),
        request_body: None,
        request_in_start: true,
        ..start.clone()
    };
    let json = serde_json::to_string(&finish).unwrap();
    assert!(json.contains("\"request_in_start\":true"), "{json}");
    assert!(!json.contains("x-note"), "{json}");
    // A refusal's lone finish row carries everything itself.
    let lone = AuditRecord {
        request_id: "b".into(),
        request_headers: vec![("x-other".into(), "1".into())],
        ..Default::default()
    };
    let merged = merge_rows(&[
        row(1, AuditPhase::Start, &start),
        row(2, AuditPhase::Finish, &lone),
        row(3, AuditPhase::Finish, &finish),
    ]);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].upstream_status, Some(200));
    assert_eq!(merged[0].request_headers, start.request_headers);
    assert_eq!(merged[0].request_body.as_deref(), Some("{}"));
    assert!(!merged[0].request_in_start);
    assert_eq!(merged[1].request_headers, lone.request_headers);
    let api = serde_json::to_string(&merged[0]).unwrap();
    assert!(!api.contains("request_in_start"), "{api}");
    // Chained in the other order (a denial written by the CLI before the
    // proxy folded its spooled start row): the outcome still wins.
    let merged = merge_rows(&[
        row(1, AuditPhase::Finish, &finish),
        row(2, AuditPhase::Start, &start),
    ]);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].upstream_status, Some(200));
    assert_eq!(merged[0].request_headers, start.request_headers);
    assert_eq!(merged[0].request_body.as_deref(), Some("{}"));
    let full_finish = AuditRecord {
        request_in_start: false,
        request_headers: vec![("x-own".into(), "v".into())],
        ..finish
    };
    let merged = merge_rows(&[
        row(1, AuditPhase::Finish, &full_finish),
        row(2, AuditPhase::Start, &start),
    ]);
    assert_eq!(merged[0].request_headers, full_finish.request_headers);
    assert_eq!(merged[0].upstream_status, Some(200));
}

#[test]
fn chainer_keeps_one_verifiable_chain_per_team() {
    let mut chainer = Chainer::new(key());
    chainer.set_head(1, ChainHead::genesis());
    chainer.set_head(2, ChainHead::fresh(Some(("f".repeat(64), 40))));
    let one: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|id| chainer.link(1, AuditPhase::Start, &record(id)).unwrap().seq)
        .collect();
    let two = chainer.link(2, AuditPhase::Start, &record("x")).unwrap();
    assert_eq!(one, [1, 2, 3]);
    assert_eq!((two.seq, two.prev_hash), (40, "f".repeat(64)));
    let heads = chainer.heads();
    assert_eq!(heads.len(), 2);
    assert_eq!((heads[0].seq, heads[0].keyed_from), (3, 1));
    assert_eq!((heads[1].seq, heads[1].keyed_from), (40, 40));
    for h in &heads {
        assert_eq!(h.open(&key()).unwrap().seq, h.seq);
        assert_eq!(
            h.open(&AuditKey::from_bytes([8; 32])),
            Err(HeadError::BadSeal)
        );
    }
}

#[test]
fn chainer_refuses_a_team_whose_head_was_not_read() {
    let mut chainer = Chainer::new(key());
    assert_eq!(
        chainer.link(7, AuditPhase::Start, "{}"),
        Err(MissingHead(7))
    );
}

#[test]
fn the_heads_sealed_marker_needs_the_key() {
    let m = heads_sealed_marker(&key());
    assert!(heads_sealed_marker_verifies(&key(), &m));
    assert!(!heads_sealed_marker_verifies(
        &AuditKey::from_bytes([1; 32]),
        &m
    ));
}

#[test]
fn teams_of_a_batch_are_distinct() {
    assert_eq!(Chainer::teams_of([3, 1, 3, 2, 1]), [1, 2, 3]);
}

#[test]
fn chain_hash_is_the_hash_of_the_joined_fields() {
    assert_eq!(
        chain_hash("p", 7, AuditPhase::Start, "{}"),
        crate::crypto::sha256_hex(b"p|7|start|{}")
    );
}

#[test]
fn cuts_multibyte_text_on_a_boundary() {
    let s = "aé"; // é is two bytes
    assert_eq!(cut_on_char_boundary(s, 2), "a");
    assert_eq!(cut_on_char_boundary(s, 3), "aé");
}
