//! Bad stores: corrupt, undecodable, unknown-version and orphan records are
//! quarantined with their raw bytes while every other job loads; a newer
//! schema, a locked store, a path that is a file and an unwritable path are
//! refused with a clear error.

mod store_support;

use cronactor::store::SledStore;
use cronactor_actors::{JobState, QuarantinedRecord, SnapshotStore, StoreError};
use std::path::Path;
use store_support::{flush, id, ids, open, raw, snapshot_dir, state, store_with_abc};

/// Writes `value` under `key` in `tree` of the closed store at `dir`.
/// The key of a history chunk: the job id, 0x00, its first sequence number
/// and its number of entries (big-endian).
fn chunk_key(job: &str, first: u64, len: u32) -> Vec<u8> {
    let mut key = format!("{job}\0").into_bytes();
    key.extend_from_slice(&first.to_be_bytes());
    key.extend_from_slice(&len.to_be_bytes());
    key
}

/// Appends run `n` to the history of `job`, keeping `keep` runs.
fn append(job: &str, n: u64, keep: usize) -> cronactor_actors::StoreOp {
    cronactor_actors::StoreOp::AppendHistory {
        id: id(job),
        record: Box::new(store_support::run(n)),
        keep,
    }
}

fn poke(dir: &Path, tree: &str, key: &[u8], value: &[u8]) {
    let db = raw(dir);
    db.open_tree(tree)
        .expect("tree")
        .insert(key, value)
        .expect("insert");
    db.flush().expect("flush");
}

/// Removes `key` from `tree` of the closed store at `dir`.
fn unpoke(dir: &Path, tree: &str, key: &[u8]) {
    let db = raw(dir);
    db.open_tree(tree)
        .expect("tree")
        .remove(key)
        .expect("remove");
    db.flush().expect("flush");
}

/// A value as the store writes it: version byte 1, then JSON.
fn v1<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(serde_json::to_vec(value).expect("json"));
    bytes
}

fn find<'a>(quarantined: &'a [QuarantinedRecord], tree: &str, key: &str) -> &'a QuarantinedRecord {
    quarantined
        .iter()
        .find(|q| q.tree == tree && q.key == key)
        .unwrap_or_else(|| panic!("no quarantined {tree}/{key} in {quarantined:?}"))
}

fn tree_has(dir: &Path, tree: &str, key: &[u8]) -> bool {
    raw(dir)
        .open_tree(tree)
        .expect("tree")
        .contains_key(key)
        .expect("read")
}

#[test]
fn a_corrupt_job_is_quarantined_with_its_state_and_the_others_load() {
    let dir = store_with_abc();
    let garbage = b"\x01{\"id\": \"b\", this is not json \xff\xfe".to_vec();
    poke(dir.path(), "jobs", b"b", &garbage);

    let (first_reasons, first_len) = {
        let store = open(dir.path());
        let loaded = store.load().expect("load");
        assert_eq!(ids(&loaded), ["a", "c"]);
        assert_eq!(loaded.jobs[0].state, state(1));
        assert_eq!(loaded.jobs[1].state, state(3));

        let job = find(&loaded.quarantined, "jobs", "b");
        assert_eq!(job.raw, garbage, "the raw bytes are kept as they were");
        assert!(job.reason.contains("does not decode"), "{}", job.reason);
        // Its state has no spec any more: quarantined too, not deleted.
        let orphan = find(&loaded.quarantined, "state", "b");
        assert_eq!(orphan.raw, {
            let mut bytes = vec![5];
            bytes.extend(postcard::to_allocvec(&state(2)).expect("postcard"));
            bytes
        });
        assert!(
            orphan.reason.contains("without a job spec"),
            "{}",
            orphan.reason
        );
        assert_eq!(loaded.quarantined.len(), 2);
        (
            loaded
                .quarantined
                .iter()
                .map(|q| q.reason.clone())
                .collect::<Vec<_>>(),
            loaded.quarantined.len(),
        )
    };
    // Moved, not copied.
    assert!(!tree_has(dir.path(), "jobs", b"b"));
    assert!(!tree_has(dir.path(), "state", b"b"));

    // A later load lists the earlier quarantine, and quarantines nothing new.
    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "c"]);
    assert_eq!(loaded.quarantined.len(), first_len);
    assert_eq!(
        loaded
            .quarantined
            .iter()
            .map(|q| q.reason.clone())
            .collect::<Vec<_>>(),
        first_reasons
    );
}

#[test]
fn a_corrupt_state_is_quarantined_and_its_job_loads_with_a_default_state() {
    let dir = store_with_abc();
    let garbage = vec![1, b'[', b'1', b','];
    poke(dir.path(), "state", b"c", &garbage);

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(loaded.jobs[2].state, JobState::default());
    assert_eq!(loaded.jobs[1].state, state(2));
    assert_eq!(loaded.quarantined.len(), 1);
    let q = find(&loaded.quarantined, "state", "c");
    assert_eq!(q.raw, garbage);
    assert!(q.reason.contains("job state"), "{}", q.reason);
    drop(store);
    assert!(!tree_has(dir.path(), "state", b"c"));
    assert!(tree_has(dir.path(), "jobs", b"c"));
}

#[test]
fn an_unknown_record_version_is_quarantined() {
    let dir = store_with_abc();
    let mut future = v1(&store_support::spec("a"));
    future[0] = 9;
    poke(dir.path(), "jobs", b"a", &future);

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["b", "c"]);
    let q = find(&loaded.quarantined, "jobs", "a");
    assert_eq!(q.raw, future);
    assert!(
        q.reason.contains("unknown job spec record version 9"),
        "{}",
        q.reason
    );
}

#[test]
fn empty_values_bad_keys_and_mismatched_ids_are_quarantined() {
    let dir = store_with_abc();
    poke(dir.path(), "state", b"a", b"");
    poke(
        dir.path(),
        "jobs",
        b"\xff\xfe",
        &v1(&store_support::spec("a")),
    );
    poke(dir.path(), "jobs", b"not-b", &v1(&store_support::spec("b")));

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(loaded.jobs[0].state, JobState::default());
    assert!(find(&loaded.quarantined, "state", "a")
        .reason
        .contains("empty"));
    let bad_key = find(&loaded.quarantined, "jobs", "\u{fffd}\u{fffd}");
    assert!(bad_key.reason.contains("not UTF-8"), "{}", bad_key.reason);
    let mismatch = find(&loaded.quarantined, "jobs", "not-b");
    assert!(
        mismatch.reason.contains("names job \"b\""),
        "{}",
        mismatch.reason
    );
    assert_eq!(loaded.quarantined.len(), 3);
}

#[test]
fn an_orphan_state_is_quarantined_and_a_spec_without_state_loads() {
    let dir = store_with_abc();
    let orphan = v1(&state(5));
    poke(dir.path(), "state", b"ghost", &orphan);
    unpoke(dir.path(), "state", b"b");

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(loaded.jobs[1].state, JobState::default());
    assert_eq!(loaded.quarantined.len(), 1);
    let q = find(&loaded.quarantined, "state", "ghost");
    assert_eq!(q.raw, orphan);
    assert!(q.reason.contains("without a job spec"), "{}", q.reason);
}

#[test]
fn orphan_states_before_between_and_after_the_specs_are_all_quarantined() {
    // Jobs a, b, c; states without a spec sort before a ("0"), between
    // jobs ("a1", "b1") and after c ("d"); b has no state, c a corrupt one.
    let dir = store_with_abc();
    let orphans: Vec<(&[u8], Vec<u8>)> = vec![
        (b"0", v1(&state(10))),
        (b"a1", v1(&state(11))),
        (b"b1", vec![1, b'{']),
        (b"d", v1(&state(13))),
    ];
    for (key, value) in &orphans {
        poke(dir.path(), "state", key, value);
    }
    let garbage = vec![1, b'[', b'1', b','];
    poke(dir.path(), "state", b"c", &garbage);
    unpoke(dir.path(), "state", b"b");

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(loaded.jobs[0].state, state(1));
    assert_eq!(loaded.jobs[1].state, JobState::default());
    assert_eq!(loaded.jobs[2].state, JobState::default());
    assert_eq!(loaded.quarantined.len(), 5, "{:?}", loaded.quarantined);
    for (key, value) in &orphans {
        let q = find(
            &loaded.quarantined,
            "state",
            std::str::from_utf8(key).expect("utf-8"),
        );
        assert_eq!(&q.raw, value);
        assert!(q.reason.contains("without a job spec"), "{}", q.reason);
    }
    let q = find(&loaded.quarantined, "state", "c");
    assert_eq!(q.raw, garbage);
    assert!(q.reason.contains("job state"), "{}", q.reason);
}

#[test]
fn quarantining_the_same_key_twice_keeps_both_records() {
    let dir = store_with_abc();
    poke(dir.path(), "jobs", b"a", b"\x01first");
    open(dir.path()).load().expect("load");
    poke(dir.path(), "jobs", b"a", b"\x01second");
    poke(dir.path(), "state", b"a", &v1(&state(1)));

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    let raws: Vec<&[u8]> = loaded
        .quarantined
        .iter()
        .filter(|q| q.tree == "jobs" && q.key == "a")
        .map(|q| q.raw.as_slice())
        .collect();
    assert_eq!(raws, [&b"\x01first"[..], &b"\x01second"[..]]);
    assert_eq!(
        loaded
            .quarantined
            .iter()
            .filter(|q| q.tree == "state" && q.key == "a")
            .count(),
        2
    );
}

#[test]
fn writes_after_a_quarantine_treat_the_job_as_absent() {
    let dir = store_with_abc();
    poke(dir.path(), "jobs", b"a", b"\x01broken");
    let store = open(dir.path());
    store.load().expect("load");
    store
        .apply(vec![cronactor_actors::StoreOp::PutState(
            id("a"),
            Box::new(state(9)),
        )])
        .expect("apply");
    flush(&store);
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["b", "c"]);
    // No new orphan was written: still the two records of the first load.
    assert_eq!(loaded.quarantined.len(), 2);
}

#[test]
fn a_newer_schema_version_is_refused_and_the_store_left_untouched() {
    let dir = store_with_abc();
    // What a newer build would have written: its marker and its meta value.
    let newer = SledStore::SCHEMA_VERSION + 1;
    poke(dir.path(), "meta", b"schema_version", &v1(&newer));
    std::fs::write(dir.path().join("schema_version"), format!("{newer}\n")).expect("write marker");

    let before = snapshot_dir(dir.path());
    let err = SledStore::open(dir.path()).expect_err("a newer store must be refused");
    assert_eq!(
        err,
        StoreError::NewerVersion {
            path: dir.path().display().to_string(),
            found: newer,
            supported: SledStore::SCHEMA_VERSION,
        }
    );
    assert!(err.to_string().contains("left untouched"), "{err}");
    let after = snapshot_dir(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before == after, "a byte or a modification time changed");
}

#[test]
fn a_newer_version_in_meta_alone_is_refused_too() {
    let dir = store_with_abc();
    poke(dir.path(), "meta", b"schema_version", &v1(&7u32));
    std::fs::remove_file(dir.path().join("schema_version")).expect("remove marker");
    let err = SledStore::open(dir.path()).expect_err("a newer store must be refused");
    assert!(
        matches!(err, StoreError::NewerVersion { found: 7, .. }),
        "{err:?}"
    );
    // The marker is not written for a store this build refuses.
    assert!(!dir.path().join("schema_version").exists());
}

#[test]
fn an_unreadable_schema_marker_is_an_error_and_nothing_is_written() {
    let dir = store_with_abc();
    std::fs::write(dir.path().join("schema_version"), "version two").expect("write");
    let before = snapshot_dir(dir.path());
    let err = SledStore::open(dir.path()).expect_err("refused");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("schema marker"), "{err}");
    assert!(before == snapshot_dir(dir.path()));
}

#[test]
fn the_schema_version_is_written_at_creation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new/nested/store");
    drop(open(&path));
    assert_eq!(
        std::fs::read_to_string(path.join("schema_version")).expect("marker"),
        format!("{}\n", SledStore::SCHEMA_VERSION)
    );
    let db = raw(&path);
    let meta = db.open_tree("meta").expect("tree");
    assert_eq!(
        meta.get("schema_version").expect("read").as_deref(),
        Some(&v1(&SledStore::SCHEMA_VERSION)[..])
    );
}

#[test]
fn a_second_open_in_the_same_process_is_locked_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let started = std::time::Instant::now();
    let err = SledStore::open(dir.path()).expect_err("locked");
    assert_eq!(err, StoreError::Locked(dir.path().display().to_string()));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    drop(store);
}

#[test]
fn a_path_that_is_a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").expect("write");
    let err = SledStore::open(&file).expect_err("refused");
    assert_eq!(err, StoreError::NotADirectory(file.display().to_string()));
    assert_eq!(std::fs::read(&file).expect("read"), b"not a store");
}

#[test]
fn a_path_under_a_file_is_not_writable() {
    // Works as root too: no permission bit is involved.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let err = SledStore::open(file.join("sub")).expect_err("refused");
    assert!(
        matches!(&err, StoreError::NotWritable { path, .. } if path.ends_with("file/sub")),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_is_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().join("ro");
    std::fs::create_dir(&store_dir).expect("mkdir");
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root (and CAP_DAC_OVERRIDE) writes anyway: then there is nothing to test.
    let probe = store_dir.join("probe");
    if std::fs::write(&probe, b"x").is_ok() {
        let _ = std::fs::remove_file(&probe);
        std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        eprintln!("skipped: this process can write a 0555 directory (it runs as root)");
        return;
    }
    let err = SledStore::open(&store_dir).expect_err("refused");
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
}

#[test]
fn an_unreadable_history_entry_is_skipped_not_fatal() {
    let dir = store_with_abc();
    {
        let store = open(dir.path());
        // One fold per entry: three chunks of one entry each.
        for n in 1..=3 {
            store.apply(vec![append("a", n, 10)]).expect("apply");
            flush(&store);
            store.fold().expect("fold");
        }
    }
    // Damage the middle chunk (sequence 1, one entry) of job a.
    let key = chunk_key("a", 1, 1);
    assert!(tree_has(dir.path(), "history", &key));
    poke(dir.path(), "history", &key, b"\x02\xff\xff");

    let store = open(dir.path());
    assert_eq!(
        store.history(&id("a"), 10).expect("history"),
        [store_support::run(3), store_support::run(1)]
    );
    // Still counted by the trim: appending with keep 2 drops the oldest two.
    store.apply(vec![append("a", 4, 2)]).expect("apply");
    assert_eq!(
        store.history(&id("a"), 10).expect("history"),
        [store_support::run(4), store_support::run(3)]
    );
}

#[test]
fn a_corrupt_journal_segment_is_quarantined_and_every_job_still_loads() {
    let dir = store_with_abc();
    // What a crash could leave: a journal segment (not yet folded) that does
    // not decode.
    let garbage = b"\x01\xff\xff\xff\xff".to_vec();
    poke(dir.path(), "journal", &7u64.to_be_bytes(), &garbage);

    {
        let store = open(dir.path());
        let loaded = store.load().expect("load");
        assert_eq!(ids(&loaded), ["a", "b", "c"]);
        let segment = loaded
            .quarantined
            .iter()
            .find(|q| q.tree == "journal")
            .unwrap_or_else(|| panic!("no quarantined segment in {:?}", loaded.quarantined));
        assert_eq!(segment.raw, garbage, "the raw bytes are kept as they were");
        assert!(
            segment.reason.contains("does not decode"),
            "{}",
            segment.reason
        );
        // The next segment number is past the bad one: nothing overwrites it.
        store
            .apply(vec![cronactor_actors::StoreOp::PutState(
                id("a"),
                Box::new(state(11)),
            )])
            .expect("apply");
        flush(&store);
    }
    assert!(!tree_has(dir.path(), "journal", &7u64.to_be_bytes()));
    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(loaded.jobs[0].state, state(11));
    assert_eq!(
        loaded
            .quarantined
            .iter()
            .filter(|q| q.tree == "journal")
            .count(),
        1
    );
}

/// A store whose sled log was damaged at its start: sled 0.34 opens such a
/// log as an empty database (and rewrites its head). The schema marker says
/// the store was created, so the open is refused with `Damaged`, every
/// time, instead of a scheduler starting with no jobs and writing over
/// what is left. A damaged sled configuration file is an I/O error. Neither
/// panics.
#[test]
fn a_store_whose_sled_files_are_damaged_is_refused_not_opened_empty() {
    let dir = store_with_abc();
    let db = dir.path().join("db");
    let mut bytes = std::fs::read(&db).expect("read");
    bytes[..16].copy_from_slice(b"\xff\xfe\xfd damaged head");
    std::fs::write(&db, &bytes).expect("write");
    for _ in 0..2 {
        let err = SledStore::open(dir.path()).expect_err("a damaged store is refused");
        assert!(
            matches!(&err, StoreError::Damaged { path, .. } if *path == dir.path().display().to_string()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("restore the directory from a backup"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("schema_version")).expect("marker"),
        format!("{}\n", SledStore::SCHEMA_VERSION)
    );

    let dir = store_with_abc();
    let conf = dir.path().join("conf");
    std::fs::write(&conf, b"not sled's configuration").expect("write");
    let err = SledStore::open(dir.path()).expect_err("refused");
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert_eq!(
        std::fs::read(&conf).expect("read"),
        b"not sled's configuration"
    );
}

/// A record whose version byte is newer than this build reads, in each tree
/// (a newer build that changes a layout also raises the schema version, so
/// this is damage, not an upgrade): a state is quarantined and its job loads
/// with a default state; a journal segment is quarantined at open; a history
/// chunk is skipped and left in place; a quarantine record is listed as it
/// is. Each reason names the version found. The other jobs load.
#[test]
fn a_newer_record_version_in_each_tree_is_quarantined_or_skipped_never_fatal() {
    let dir = store_with_abc();
    {
        let store = open(dir.path());
        store.apply(vec![append("c", 1, 10)]).expect("apply");
        flush(&store);
    }
    let newer_state = [6u8, 0, 0, 0];
    poke(dir.path(), "state", b"b", &newer_state);
    let newer_segment = [3u8, 1, 2, 3];
    poke(dir.path(), "journal", &9u64.to_be_bytes(), &newer_segment);
    let newer_quarantine = [2u8, b'{', b'}'];
    poke(dir.path(), "quarantine", b"jobs\0zz", &newer_quarantine);
    // Job c's one chunk (first run 0, one run), from a newer build.
    let mut chunk_key = b"c\0".to_vec();
    chunk_key.extend_from_slice(&0u64.to_be_bytes());
    chunk_key.extend_from_slice(&1u32.to_be_bytes());
    assert!(tree_has(dir.path(), "history", &chunk_key));
    poke(dir.path(), "history", &chunk_key, &[4u8, 10, 1, 0]);

    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(
        loaded.jobs[1].state,
        JobState::default(),
        "b's state is aside"
    );
    assert_eq!(loaded.jobs[2].state, state(3));
    let q = find(&loaded.quarantined, "state", "b");
    assert_eq!(q.raw, newer_state);
    assert!(
        q.reason.contains("unknown job state record version 6"),
        "{}",
        q.reason
    );
    let q = loaded
        .quarantined
        .iter()
        .find(|q| q.tree == "journal")
        .expect("the segment is quarantined");
    assert_eq!(q.raw, newer_segment);
    assert!(
        q.reason
            .contains("unknown journal segment record version 3"),
        "{}",
        q.reason
    );
    let q = find(&loaded.quarantined, "quarantine", "jobs\0zz");
    assert_eq!(q.raw, newer_quarantine);
    assert!(
        q.reason
            .contains("unknown quarantine record record version 2"),
        "{}",
        q.reason
    );
    assert_eq!(loaded.quarantined.len(), 3, "{:?}", loaded.quarantined);
    assert!(store.history(&id("c"), 10).expect("history").is_empty());
    drop(store);
    assert!(tree_has(dir.path(), "history", &chunk_key), "left in place");
}

/// The `meta` value holds the schema version: one that does not decode, or
/// of a newer record version, cannot say which layout the store has, so the
/// open is refused with an error naming it, and nothing is written.
#[test]
fn an_unreadable_meta_value_refuses_the_store_and_writes_nothing() {
    for bad in [&b"\x02 3"[..], b"\x01 three", b""] {
        let dir = store_with_abc();
        poke(dir.path(), "meta", b"schema_version", bad);
        let err = SledStore::open(dir.path()).expect_err("refused");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
        assert!(err.to_string().contains("schema version"), "{err}");
        let db = raw(dir.path());
        let meta = db.open_tree("meta").expect("tree");
        assert_eq!(
            meta.get("schema_version").expect("read").as_deref(),
            Some(bad)
        );
        assert_eq!(db.open_tree("jobs").expect("tree").len(), 3);
    }
}

/// A job whose spec is quarantined leaves its history chunks without a job.
/// They move to the quarantine as well (kept, with their bytes, for an
/// operator), so that a job added later under the same id starts with an
/// empty history instead of showing the runs of the job that was
/// quarantined, and numbers its runs from 0.
#[test]
fn a_job_added_again_after_its_quarantine_does_not_inherit_the_old_history() {
    let dir = store_with_abc();
    {
        let store = open(dir.path());
        let runs = (1..=3).map(|n| append("b", n, 10)).collect();
        store.apply(runs).expect("apply");
        flush(&store);
    }
    poke(dir.path(), "jobs", b"b", b"\x01{ not a spec");

    {
        let store = open(dir.path());
        let loaded = store.load().expect("load");
        assert_eq!(ids(&loaded), ["a", "c"]);
        let chunks: Vec<&QuarantinedRecord> = loaded
            .quarantined
            .iter()
            .filter(|q| q.tree == "history")
            .collect();
        assert_eq!(chunks.len(), 1, "{:?}", loaded.quarantined);
        assert!(chunks[0].key.starts_with("b\0"), "{:?}", chunks[0].key);
        assert!(
            chunks[0].reason.contains("without a job spec"),
            "{}",
            chunks[0].reason
        );
        // The same id again: a new job.
        store
            .apply(vec![store_support::put_job("b", JobState::default())])
            .expect("apply");
        flush(&store);
        assert!(store.history(&id("b"), 10).expect("history").is_empty());
        store.apply(vec![append("b", 7, 10)]).expect("apply");
        flush(&store);
        assert_eq!(
            store.history(&id("b"), 10).expect("history"),
            [store_support::run(7)]
        );
    }
    let store = open(dir.path());
    let loaded = store.load().expect("load");
    assert_eq!(ids(&loaded), ["a", "b", "c"]);
    assert_eq!(
        store.history(&id("b"), 10).expect("history"),
        [store_support::run(7)]
    );
    // Its one run numbered 0: the first key of its history.
    let key = chunk_key("b", 0, 1);
    drop(store);
    assert!(tree_has(dir.path(), "history", &key));
}

/// A schema version record that does not read (the `schema_version` file,
/// or the `meta` value: not a number, empty, version 0, or a meta value of
/// a record version this build does not know although the marker is not
/// newer) is a damaged store, refused with `StoreError::Damaged` naming
/// it, not the catch-all `Io` of a failed read; a readable newer version
/// stays `NewerVersion`. Nothing is written either way.
#[test]
fn a_corrupt_schema_version_record_is_refused_as_damaged() {
    for marker in ["version two", "", "0\n", "-1\n"] {
        let dir = store_with_abc();
        std::fs::write(dir.path().join("schema_version"), marker).expect("write");
        let before = snapshot_dir(dir.path());
        let err = SledStore::open(dir.path()).expect_err("refused");
        assert!(
            matches!(&err, StoreError::Damaged { path, .. } if *path == dir.path().display().to_string()),
            "{marker:?}: {err:?}"
        );
        assert!(err.to_string().contains("schema marker"), "{err}");
        assert!(before == snapshot_dir(dir.path()), "{marker:?}: touched");
    }
    for bad in [&b"\x01 three"[..], b"", b"\x010", b"\x00 3", b"\x02 3"] {
        let dir = store_with_abc();
        poke(dir.path(), "meta", b"schema_version", bad);
        let err = SledStore::open(dir.path()).expect_err("refused");
        assert!(
            matches!(&err, StoreError::Damaged { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("schema version"), "{err}");
        let db = raw(dir.path());
        let meta = db.open_tree("meta").expect("tree");
        assert_eq!(
            meta.get("schema_version").expect("read").as_deref(),
            Some(bad)
        );
    }
}

/// A store of a newer schema whose `schema_version` file is missing is
/// refused from its `meta` value, after sled's open; the refused open adds
/// nothing of its own to the store: no tree this build would have created.
#[test]
fn a_newer_store_without_its_marker_gets_no_trees_from_a_refused_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let db = raw(dir.path());
        let meta = db.open_tree("meta").expect("tree");
        meta.insert("schema_version", v1(&(SledStore::SCHEMA_VERSION + 1)))
            .expect("insert");
        db.flush().expect("flush");
    }
    let names = |dir: &Path| {
        let mut names: Vec<Vec<u8>> = raw(dir).tree_names().iter().map(|n| n.to_vec()).collect();
        names.sort();
        names
    };
    let before = names(dir.path());
    let err = SledStore::open(dir.path()).expect_err("a newer store is refused");
    assert!(matches!(err, StoreError::NewerVersion { .. }), "{err:?}");
    assert_eq!(names(dir.path()), before);
    assert!(!dir.path().join("schema_version").exists());
}

/// The fields of each event the store logs while `f` runs on this thread,
/// by message.
///
/// Through one process-wide subscriber, installed by the first call, that
/// keeps what is logged on a thread while that thread captures. Not a
/// scoped subscriber (`with_default`): tracing caches, per log line, whether
/// any subscriber wants it, from the thread that first reaches the line;
/// with a scoped subscriber the only one in the process, it asks that
/// thread's own default. Another test reaching the same line first on its
/// own thread (`writes_after_a_quarantine_treat_the_job_as_absent` logs
/// "state of a job without a spec ignored") then had "never" cached for it
/// while this capture was on, and the line was lost here.
fn logged_fields(f: impl FnOnce()) -> Vec<(String, Vec<String>)> {
    use std::cell::RefCell;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    type Seen = Vec<(String, Vec<String>)>;
    thread_local! {
        /// What this thread's capture has seen, while it captures.
        static SEEN: RefCell<Option<Seen>> = const { RefCell::new(None) };
    }
    struct Capture;
    struct Names<'a>(&'a mut Vec<String>, &'a mut String);
    impl Visit for Names<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                *self.1 = format!("{value:?}");
            } else {
                self.0.push(field.name().to_owned());
            }
        }
    }
    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            SEEN.with(|seen| {
                if let Some(seen) = seen.borrow_mut().as_mut() {
                    let (mut names, mut message) = (Vec::new(), String::new());
                    event.record(&mut Names(&mut names, &mut message));
                    seen.push((message, names));
                }
            });
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber in this test binary");
    });
    SEEN.with(|seen| *seen.borrow_mut() = Some(Vec::new()));
    f();
    SEEN.with(|seen| seen.borrow_mut().take())
        .unwrap_or_default()
}

/// What the store logs about one job names it in the `job_id` field, as
/// every other log line of the runtime does, so that a subscriber that
/// filters or indexes on `job_id` finds them.
#[test]
fn the_store_logs_the_job_it_is_about_in_the_job_id_field() {
    let dir = store_with_abc();
    {
        let store = open(dir.path());
        store.apply(vec![append("a", 1, 10)]).expect("apply");
        flush(&store);
        store.fold().expect("fold");
    }
    // Damage job a's one chunk (sequence 0, one entry).
    let key = chunk_key("a", 0, 1);
    assert!(tree_has(dir.path(), "history", &key));
    poke(dir.path(), "history", &key, b"\x02\xff\xff");
    let store = open(dir.path());
    let logged = logged_fields(|| {
        assert_eq!(store.history(&id("a"), 10).expect("history"), []);
        // A state and a history entry of a job the store does not have.
        store
            .apply(vec![
                cronactor_actors::StoreOp::PutState(id("nobody"), Box::new(state(1))),
                append("nobody", 1, 10),
            ])
            .expect("apply");
    });
    for message in [
        "store: unreadable history chunk skipped",
        "store: state of a job without a spec ignored",
        "store: history of a job without a spec ignored",
    ] {
        let (_, fields) = logged
            .iter()
            .find(|(m, _)| m == message)
            .unwrap_or_else(|| panic!("{message:?} not logged: {logged:?}"));
        assert!(
            fields.iter().any(|f| f == "job_id") && !fields.iter().any(|f| f == "job"),
            "{message:?}: {fields:?}"
        );
    }
}
