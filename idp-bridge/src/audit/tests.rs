use std::time::SystemTime;

use super::*;

fn key() -> AuditKey {
    AuditKey::from_bytes(&[7u8; 32]).expect("key")
}

fn options(dir: &Path) -> AuditOptions {
    AuditOptions {
        path: dir.join("audit/saml.log"),
        rotate_bytes: 64 * 1024 * 1024,
        retention: Duration::from_secs(730 * 24 * 3600),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(String::from)
        .collect()
}

fn record(log: &mut AuditLog, i: usize) {
    log.record(
        AuditKind::AuthnRequest,
        "https://idp.example",
        &format!("_{i}"),
        "sent",
        b"<samlp:AuthnRequest/>",
    )
    .expect("record");
}

#[test]
fn records_chain_and_tampering_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let path = opts.path.clone();
    let mut log = AuditLog::open(opts.clone(), key()).expect("open");
    for i in 0..5 {
        record(&mut log, i);
    }
    drop(log);
    // The chain start, then five records.
    assert_eq!(verify(&path, Some(&key())).expect("valid").records, 6);
    // Reopening continues the chain.
    let mut log = AuditLog::open(opts.clone(), key()).expect("reopen");
    log.record(
        AuditKind::Response,
        "https://idp.example",
        "_4",
        "accepted",
        b"<samlp:Response/>",
    )
    .expect("record");
    drop(log);
    let v = verify(&path, Some(&key())).expect("valid");
    assert_eq!((v.records, v.first_seq, v.last_seq), (7, 1, 7));

    let original = lines(&path);
    let write = |l: &[String]| std::fs::write(&path, l.join("\n") + "\n").expect("write");
    let broken_at = |line: usize| matches!(verify(&path, Some(&key())), Err(AuditError::Broken { line: l, .. }) if l == line);
    let mut changed = original.clone();
    changed[2] = changed[2].replace("\"sent\"", "\"refused\"");
    write(&changed);
    assert!(broken_at(3));
    let mut removed = original.clone();
    removed.remove(3);
    write(&removed);
    assert!(broken_at(4));
    let mut swapped = original.clone();
    swapped.swap(1, 2);
    write(&swapped);
    assert!(broken_at(2));
    // A broken file is not extended.
    assert!(AuditLog::open(opts.clone(), key()).is_err());
    write(&original);
    assert!(verify(&path, Some(&key())).is_ok());
}

#[test]
fn without_the_key_no_record_can_be_rewritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let mut log = AuditLog::open(opts.clone(), key()).expect("open");
    for i in 0..3 {
        record(&mut log, i);
    }
    drop(log);
    let original = lines(&opts.path);
    // Whoever can write the file rewrites a record and recomputes what they can: a plain hash,
    // or a MAC under a key of their own. Neither fits.
    let (_, json) = original[2].split_once(' ').expect("record");
    let forged_json = json.replace("\"sent\"", "\"refused\"");
    let other = AuditKey::from_bytes(&[9u8; 32]).expect("key");
    for forged_mac in [
        hex(&Sha256::digest(forged_json.as_bytes())),
        other.mac(forged_json.as_bytes()),
    ] {
        let mut forged = original.clone();
        forged[2] = format!("{forged_mac} {forged_json}");
        std::fs::write(&opts.path, forged.join("\n") + "\n").expect("write");
        assert!(matches!(
            verify(&opts.path, Some(&key())),
            Err(AuditError::Broken { line: 3, .. })
        ));
    }
    // And the trail does not verify under another key at all.
    std::fs::write(&opts.path, original.join("\n") + "\n").expect("write");
    assert!(verify(&opts.path, Some(&other)).is_err());
    assert!(
        AuditKey::from_bytes(&[1u8; 31]).is_err(),
        "short keys are refused"
    );
}

#[test]
fn values_cannot_break_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let mut log = AuditLog::open(opts.clone(), key()).expect("open");
    log.record(
        AuditKind::Response,
        "idp\"\n{\"x\":1}",
        "_\\1",
        "refused: \"quoted\"\r\n",
        b"\x00\xff",
    )
    .expect("record");
    assert_eq!(lines(&opts.path).len(), 2);
    assert!(verify(&opts.path, Some(&key())).is_ok());
}

#[test]
fn rotation_keeps_the_chain_across_files_and_retention_prunes_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path());
    opts.rotate_bytes = 2048;
    let mut log = AuditLog::open(opts.clone(), key()).expect("open");
    for i in 0..40 {
        record(&mut log, i);
    }
    let last = log.last_mac().to_string();
    drop(log);
    let v = verify(&opts.path, Some(&key())).expect("valid set");
    assert!(v.files.len() > 3, "{:?}", v.files);
    assert_eq!(v.last_mac, last);
    // A record removed from a rotated file breaks the set there.
    let middle = v.files[1].clone();
    let mut l = lines(&middle);
    let saved = l.clone();
    l.remove(2);
    std::fs::write(&middle, l.join("\n") + "\n").expect("write");
    assert!(verify(&opts.path, Some(&key())).is_err());
    std::fs::write(&middle, saved.join("\n") + "\n").expect("write");
    // A whole rotated file removed from the middle breaks it too.
    let kept = std::fs::read(&middle).expect("read");
    std::fs::remove_file(&middle).expect("remove");
    assert!(verify(&opts.path, Some(&key())).is_err());
    std::fs::write(&middle, kept).expect("restore");
    // Retention: the oldest files go, and the rest verifies from its first rotated record.
    let oldest = v.files[0].clone();
    let old = std::fs::File::options()
        .write(true)
        .open(&oldest)
        .expect("open");
    old.set_modified(SystemTime::now() - Duration::from_secs(800 * 24 * 3600))
        .expect("age it");
    drop(old);
    let log = AuditLog::open(opts.clone(), key()).expect("reopen prunes");
    drop(log);
    assert!(!oldest.exists());
    let after = verify(&opts.path, Some(&key())).expect("valid after pruning");
    assert!(
        after.first_seq > 1 && after.last_seq == v.last_seq,
        "{after:?}"
    );
}

#[test]
fn an_unkeyed_trail_still_verifies_and_is_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    std::fs::create_dir_all(opts.path.parent().expect("dir")).expect("mkdir");
    // Two records as the plain SHA-256 chain wrote them.
    let mut text = String::new();
    let mut prev = GENESIS.to_string();
    for seq in 1..=2 {
        let json = format!("{{\"seq\":{seq},\"prev\":\"{prev}\",\"time\":\"2026-11-26T08:00:00.000Z\",\"kind\":\"response\",\"idp\":\"-\",\"request_id\":\"-\",\"outcome\":\"refused\",\"message\":\"\"}}");
        let h = hex(&Sha256::digest(json.as_bytes()));
        text.push_str(&format!("{h} {json}\n"));
        prev = h;
    }
    std::fs::write(&opts.path, &text).expect("write");
    assert_eq!(verify(&opts.path, None).expect("unkeyed").records, 2);
    let log = AuditLog::open(opts.clone(), key()).expect("open");
    drop(log);
    let aside: Vec<_> = std::fs::read_dir(opts.path.parent().expect("dir"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".unkeyed-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        verify(&aside[0].path(), None).expect("still valid").records,
        2
    );
    assert_eq!(
        verify(&opts.path, Some(&key())).expect("new chain").records,
        1
    );
}

#[test]
fn unverified_posts_are_kept_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let mut log = AuditLog::open(opts.clone(), key()).expect("open");
    let junk = vec![b'x'; 270 * 1024];
    log.append(&[AuditRecord::bounded(
        AuditKind::Response,
        "-",
        "-",
        "refused: garbage",
        &junk,
    )])
    .expect("record");
    let size = std::fs::metadata(&opts.path).expect("meta").len();
    assert!(size < 8 * 1024, "{size} bytes for a 270 KB post");
    let text = std::fs::read_to_string(&opts.path).expect("read");
    assert!(text.contains("276480 bytes, sha256 ") && text.contains("\"bounded\":true"));
}

#[test]
fn one_trail_has_one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let mut first = AuditLog::open(opts.clone(), key()).expect("open");
    record(&mut first, 1);
    match AuditLog::open(opts.clone(), key()) {
        Err(AuditError::InUse { path }) => assert!(path.ends_with("saml.log"), "{path}"),
        other => panic!("a second writer got {other:?}"),
    }
    drop(first);
    // Once released, the next writer continues the same chain.
    let mut second = AuditLog::open(opts.clone(), key()).expect("reopen");
    assert_eq!(second.seq(), 2, "header and one record");
    record(&mut second, 2);
    drop(second);
    let v = verify(&opts.path, Some(&key())).expect("verify");
    assert_eq!(v.last_seq, 3);
    // The lock file is no part of the trail.
    assert_eq!(v.files, vec![opts.path.clone()]);
}
