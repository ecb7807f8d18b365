//! Every name Floe gives a checkpoint's files and directories, formatted in one place.
//!
//! ```text
//! <checkpoint-dir>/<job-id>/chk-<n>/_metadata              written last, create-only
//! <checkpoint-dir>/<job-id>/chk-<n>/<uid>-<hash>-<subtask>.state
//! <savepoint-dir>/savepoint-<job6>-<random12>/_metadata
//! ```
//!
//! The default checkpoint directory (checkpointing on, no `execution.checkpointing.dir`) is
//! `<tmp>/floe-checkpoints`.

use crate::checkpoint::metadata::TaskId;
use crate::storage::Location;
use std::path::PathBuf;

/// Name of the metadata file, as in Flink.
pub const METADATA_FILE: &str = "_metadata";

/// The temporary name `_metadata` is written under before its atomic rename.
pub fn metadata_temp_file() -> String {
    format!("{METADATA_FILE}.inprogress")
}

/// File the job manager writes (and removes) to learn that the job's checkpoint directory
/// is writable before the first checkpoint needs it.
pub const WRITE_PROBE_FILE: &str = ".floe-write-test";

const CHECKPOINT_PREFIX: &str = "chk-";

/// `chk-<n>` directory name.
pub fn checkpoint_dir_name(id: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{id}")
}

/// Parses `chk-<n>`.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()
}

/// The directory a job's checkpoints go into: `<root>/<job-id>`.
pub fn job_checkpoint_dir(root: &Location, job_id: &str) -> Location {
    root.join(job_id)
}

/// Where checkpoints go when checkpointing is on and no directory is configured.
pub fn default_checkpoint_dir() -> PathBuf {
    std::env::temp_dir().join("floe-checkpoints")
}

/// Flink's savepoint directory name: `savepoint-<first 6 hex of the job id>-<12 random hex>`.
pub fn savepoint_dir_name(job_id: &str) -> String {
    format!(
        "savepoint-{}-{:012x}",
        &job_id[..6.min(job_id.len())],
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

/// File name of a keyed state file: readable, and unique per operator and subtask even
/// when two uids sanitize to the same text.
pub fn state_file_name(task: &TaskId) -> String {
    let clean: String = task
        .uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let h = xxhash_rust::xxh3::xxh3_64(task.uid.as_bytes()) as u32;
    format!("{clean}-{h:08x}-{}.state", task.subtask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keep_their_shape() {
        assert_eq!(checkpoint_dir_name(12), "chk-12");
        assert_eq!(parse_checkpoint_dir_name("chk-12"), Some(12));
        assert_eq!(parse_checkpoint_dir_name("savepoint-abc"), None);
        let sp = savepoint_dir_name("0123456789abcdef0123456789abcdef");
        assert!(sp.starts_with("savepoint-012345-"), "{sp}");
        assert_eq!(sp.len(), "savepoint-012345-".len() + 12);
        let t = TaskId {
            uid: "my op/1".into(),
            subtask: 3,
        };
        let f = state_file_name(&t);
        assert!(f.starts_with("my_op_1-") && f.ends_with("-3.state"), "{f}");
        assert_eq!(metadata_temp_file(), "_metadata.inprogress");
    }
}
