//! The snapshot writer: turns keyed-state deltas into checkpoint files off the processing
//! threads.
//!
//! A keyed operator hands over only the keys that changed since its last snapshot (a copy
//! of what changed in memory, nothing more). The writer keeps its own image of each
//! operator subtask's state, merges the delta into it and writes a complete, self-contained
//! state file for the checkpoint, so every `chk-<n>` can be restored on its own and deleted
//! independently. Writing, syncing and acknowledging happen here, never on a worker.

use super::protocol::FromExecutor;
use crate::checkpoint::layout::state_file_name;
use crate::checkpoint::metadata::{StateHandle, TaskId};
use crate::state::backend::DeltaEntry;
use crate::state::file::{state_file_bytes, write_state_file, StateFileHeader};
use crate::storage::Location;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::thread::JoinHandle;

/// One operator subtask's contribution to one or more checkpoints (several ids when
/// triggers arrived faster than epochs closed; they share the same cut).
pub(crate) struct SnapshotJob {
    pub task: TaskId,
    pub names: Vec<String>,
    pub delta: Vec<DeltaEntry>,
    pub targets: Vec<(u64, Location)>,
}

/// Values of every state for one key, in the image's state-name order.
type Values = Vec<Option<Vec<u8>>>;
/// One key group's entries, borrowed from the image for writing.
type Group<'a> = (u32, Vec<(&'a [u8], &'a [Option<Vec<u8>>])>);

#[derive(Default)]
struct Image {
    names: Vec<String>,
    entries: BTreeMap<(u32, Vec<u8>), Values>,
}

impl Image {
    fn apply(&mut self, names: &[String], delta: Vec<DeltaEntry>) {
        // Map the job's state order onto the image's (states can be registered late).
        let mut pos = Vec::with_capacity(names.len());
        for n in names {
            let i = match self.names.iter().position(|m| m == n) {
                Some(i) => i,
                None => {
                    self.names.push(n.clone());
                    for v in self.entries.values_mut() {
                        v.push(None);
                    }
                    self.names.len() - 1
                }
            };
            pos.push(i);
        }
        let width = self.names.len();
        for d in delta {
            let key = (d.key_group, d.key);
            let slot = self
                .entries
                .entry(key.clone())
                .or_insert_with(|| vec![None; width]);
            for (j, v) in d.values.into_iter().enumerate() {
                slot[pos[j]] = v;
            }
            if slot.iter().all(Option::is_none) {
                self.entries.remove(&key);
            }
        }
    }

    fn groups(&self) -> Vec<Group<'_>> {
        let mut out: Vec<Group<'_>> = Vec::new();
        for ((kg, key), vals) in &self.entries {
            match out.last_mut() {
                Some((g, v)) if g == kg => v.push((key.as_slice(), vals.as_slice())),
                _ => out.push((*kg, vec![(key.as_slice(), vals.as_slice())])),
            }
        }
        out
    }
}

pub(crate) struct SnapshotWriter {
    thread: JoinHandle<()>,
}

impl SnapshotWriter {
    pub(crate) fn spawn(
        attempt: u32,
        events: Sender<FromExecutor>,
        max_parallelism: u32,
    ) -> (Self, Sender<SnapshotJob>) {
        let (tx, rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name(format!("floe-snapshot-writer-{attempt}"))
            .spawn(move || writer_loop(attempt, rx, events, max_parallelism))
            .expect("spawn snapshot writer");
        (SnapshotWriter { thread }, tx)
    }

    pub(crate) fn join(self) {
        let _ = self.thread.join();
    }
}

fn writer_loop(
    attempt: u32,
    rx: Receiver<SnapshotJob>,
    events: Sender<FromExecutor>,
    max_parallelism: u32,
) {
    let mut images: HashMap<TaskId, Image> = HashMap::new();
    for job in rx {
        let image = images.entry(job.task.clone()).or_default();
        image.apply(&job.names, job.delta);
        let header = StateFileHeader {
            state_names: image.names.clone(),
            max_parallelism,
        };
        for (id, dir) in job.targets {
            let file = state_file_name(&job.task);
            let dir = match dir {
                Location::Local(d) => d,
                remote => {
                    upload(
                        attempt, id, &job.task, remote, file, &header, image, &events,
                    );
                    continue;
                }
            };
            let path = dir.join(&file);
            // The job manager creates chk-<id>; if it is gone the checkpoint was aborted and
            // must not be recreated by a late writer.
            let ev = if !dir.is_dir() {
                FromExecutor::Decline {
                    attempt,
                    checkpoint_id: id,
                    task: job.task.clone(),
                    reason: format!("checkpoint directory {} no longer exists", dir.display()),
                }
            } else {
                match write_state_file(&path, &header, image.groups()) {
                    Ok(w) => FromExecutor::Ack {
                        attempt,
                        checkpoint_id: id,
                        task: job.task.clone(),
                        state: StateHandle::KeyedFile {
                            file,
                            size: w.size,
                            entries: w.entries,
                        },
                    },
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        FromExecutor::Decline {
                            attempt,
                            checkpoint_id: id,
                            task: job.task.clone(),
                            reason: format!("{e:#}"),
                        }
                    }
                }
            };
            let _ = events.send(ev);
        }
    }
}

/// Writes one state file into an object store: encoded here, uploaded on the storage
/// runtime (so the uploads of a checkpoint's subtasks run in parallel; multipart above
/// [`crate::storage::MULTIPART_THRESHOLD`]), acknowledged or declined when the upload ends.
/// A failed upload declines the checkpoint, which the coordinator aborts.
#[allow(clippy::too_many_arguments)]
fn upload(
    attempt: u32,
    id: u64,
    task: &TaskId,
    dir: Location,
    file: String,
    header: &StateFileHeader,
    image: &Image,
    events: &Sender<FromExecutor>,
) {
    let decline = |reason: String| FromExecutor::Decline {
        attempt,
        checkpoint_id: id,
        task: task.clone(),
        reason,
    };
    let (bytes, w) = match state_file_bytes(header, image.groups()) {
        Ok(b) => b,
        Err(e) => {
            let _ = events.send(decline(format!("{e:#}")));
            return;
        }
    };
    let loc = dir.join(&file);
    let events = events.clone();
    let task = task.clone();
    crate::storage::spawn(async move {
        let ev = match crate::storage::write_async(loc, bytes).await {
            Ok(()) => FromExecutor::Ack {
                attempt,
                checkpoint_id: id,
                task,
                state: StateHandle::KeyedFile {
                    file,
                    size: w.size,
                    entries: w.entries,
                },
            },
            Err(e) => FromExecutor::Decline {
                attempt,
                checkpoint_id: id,
                task,
                reason: e.to_string(),
            },
        };
        let _ = events.send(ev);
    });
}
