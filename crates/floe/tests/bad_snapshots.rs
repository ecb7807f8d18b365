//! Bad snapshots never panic: arbitrary bytes and corrupted copies of real files given to
//! the `_metadata` and state-file readers yield one-line errors naming the file (a bounded
//! property-based fuzz, run in the default test suite; `FLOE_FUZZ_CASES=N` runs it longer).

use floe::checkpoint::metadata::{load_snapshot, write_metadata, CheckpointMetadata, SnapshotKind};
use floe::state::file::{write_state_file, StateFileHeader, StateFileReader};
use proptest::prelude::*;
use std::path::Path;

fn read_all(path: &Path) -> Result<usize, String> {
    let mut r = StateFileReader::open(path).map_err(|e| e.to_string())?;
    let mut n = 0;
    for e in r.index.clone() {
        n += r.read_block(&e).map_err(|e| e.to_string())?.len();
    }
    Ok(n)
}

/// Key bytes and per-state value bytes, as the state file stores them.
type Entry = (Vec<u8>, Vec<Option<Vec<u8>>>);
/// A key group's entries, borrowed for writing.
type Group<'a> = (u32, Vec<(&'a [u8], &'a [Option<Vec<u8>>])>);

fn valid_state_file(path: &Path) -> Vec<u8> {
    let header = StateFileHeader {
        state_names: vec!["count".into(), "avg".into()],
        max_parallelism: 128,
    };
    let entries: Vec<Entry> = (0..20u8)
        .map(|i| {
            (
                vec![i, i + 1],
                vec![
                    Some(vec![i; 3]),
                    if i % 2 == 0 { None } else { Some(vec![7]) },
                ],
            )
        })
        .collect();
    let groups: Vec<Group<'_>> = entries
        .chunks(5)
        .enumerate()
        .map(|(g, c)| {
            (
                g as u32 * 9,
                c.iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect(),
            )
        })
        .collect();
    write_state_file(path, &header, groups).unwrap();
    std::fs::read(path).unwrap()
}

/// A valid `_metadata`: savepoint 3 of job `j` with no operators.
fn savepoint_of_job_j() -> CheckpointMetadata {
    CheckpointMetadata::new(
        "0123456789abcdef0123456789abcdef",
        "j",
        3,
        SnapshotKind::Savepoint,
        1,
        128,
        vec![],
    )
}

/// Cases per property: 300 in the default run; `FLOE_FUZZ_CASES=100000` for a long fuzz.
fn cases() -> u32 {
    std::env::var("FLOE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_a_state_file(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.state");
        std::fs::write(&p, &bytes).unwrap();
        if let Err(e) = read_all(&p) {
            prop_assert!(!e.contains('\n') && e.contains("x.state"), "{}", e);
        }
    }

    #[test]
    fn corrupted_copies_of_a_valid_state_file(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("op-0.state");
        let valid = valid_state_file(&p);
        let mut bytes = valid.clone();
        for (i, x) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        // Two flips of one byte by the same value cancel out: that file is the valid one.
        prop_assume!(bytes != valid);
        std::fs::write(&p, &bytes).unwrap();
        // Every byte of the file is covered by a magic number, a checksum or a bound check:
        // a corrupted file is always detected, never read as different state.
        let e = read_all(&p).expect_err("corruption must be detected");
        prop_assert!(e.starts_with("corrupt state file") && e.contains("op-0.state") && !e.contains('\n'), "{}", e);
    }

    #[test]
    fn arbitrary_bytes_as_metadata(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("_metadata"), &bytes).unwrap();
        if let Err(e) = load_snapshot(d.path()) {
            let e = e.to_string();
            prop_assert!(!e.contains('\n') && e.contains("_metadata"), "{}", e);
        }
    }
}

#[test]
fn valid_file_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("op-0.state");
    valid_state_file(&p);
    assert_eq!(read_all(&p), Ok(20));
}

#[test]
fn unknown_versions_and_non_snapshots_are_named() {
    let d = tempfile::tempdir().unwrap();
    // A state file of an older format version.
    let p = d.path().join("old.state");
    let mut bytes = valid_state_file(&p);
    bytes[..8].copy_from_slice(b"FLOEKS01");
    std::fs::write(&p, &bytes).unwrap();
    let e = read_all(&p).unwrap_err();
    assert!(e.contains("unsupported state file version 01"), "{e}");
    // A corrupted version byte that is a line break stays on the one line (found by the fuzz).
    bytes[7] = b'\n';
    std::fs::write(&p, &bytes).unwrap();
    let e = read_all(&p).unwrap_err();
    assert!(e.ends_with("unsupported state file version 0\\n"), "{e}");
    // A _metadata of a newer format version.
    let m = savepoint_of_job_j();
    write_metadata(d.path(), &m).unwrap();
    let text = std::fs::read_to_string(d.path().join("_metadata"))
        .unwrap()
        .replace("\"version\": 1", "\"version\": 99");
    std::fs::write(d.path().join("_metadata"), text).unwrap();
    let e = load_snapshot(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("format version 99, newer than this Floe supports"),
        "{e}"
    );
    // A directory that is not a snapshot, and nothing was deleted.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("data.txt"), b"x").unwrap();
    let e = load_snapshot(other.path()).unwrap_err().to_string();
    assert!(e.contains("is not a checkpoint or savepoint"), "{e}");
    assert!(other.path().join("data.txt").is_file());
}

#[test]
fn an_edited_metadata_that_still_parses_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let m = savepoint_of_job_j();
    write_metadata(d.path(), &m).unwrap();
    assert_eq!(load_snapshot(d.path()).unwrap().metadata.checkpoint_id, 3);
    let text = std::fs::read_to_string(d.path().join("_metadata")).unwrap();
    std::fs::write(
        d.path().join("_metadata"),
        text.replace("\"checkpoint_id\": 3", "\"checkpoint_id\": 8"),
    )
    .unwrap();
    let e = load_snapshot(d.path()).unwrap_err().to_string();
    assert!(
        e.starts_with("corrupt metadata file") && e.contains("checksum mismatch"),
        "{e}"
    );
}
