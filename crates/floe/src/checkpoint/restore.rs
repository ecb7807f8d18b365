//! The one place that decides whether a snapshot fits a job and which of its handles belong
//! to an operator's subtask.
//!
//! - [`compatibility`] compares a job's stateful operators with a snapshot: the restore
//!   refuses to start with [`Report::into_result`], and `floe savepoint check` prints the
//!   same [`Report`], so the check and a real restore never disagree.
//! - [`RestoreView::operator`] hands an operator its part of the snapshot at restore: inline
//!   handles in subtask order, keyed state files filtered to a key-group range.
//!
//! Both go through [`fit`], the rule itself.

use super::metadata::{LoadedSnapshot, OperatorKind, OperatorState, SnapshotKind, StateHandle};
use crate::state::file::{IndexEntry, StateFileReader};
use crate::state::keygroup::KeyGroupRange;
use crate::storage::Location;
use crate::Result;
use std::fmt;

/// Why a snapshot operator's state does not fit the job operator with its uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misfit {
    /// The job's operator stores no state of the snapshot's kind.
    WrongKind,
    /// Keyed state taken with another max parallelism (its key groups would not map).
    MaxParallelism,
}

/// The rule: state of kind `os.kind` restores into an operator declaring `declared` when the
/// kinds agree and, for keyed state, the max parallelism is the same.
pub fn fit(
    declared: Option<OperatorKind>,
    os: &OperatorState,
    max_parallelism: u32,
) -> std::result::Result<(), Misfit> {
    if declared != Some(os.kind) {
        return Err(Misfit::WrongKind);
    }
    if os.kind.is_keyed() && os.max_parallelism != max_parallelism {
        return Err(Misfit::MaxParallelism);
    }
    Ok(())
}

/// What a job declares about one of its operators, as restore sees it.
#[derive(Clone, Copy, Debug)]
pub struct DeclaredOperator<'a> {
    /// The operator's uid.
    pub uid: &'a str,
    /// Its display name.
    pub name: &'a str,
    /// The kind of state it stores (`None`: stateless).
    pub state: Option<OperatorKind>,
    /// Its parallelism in the job.
    pub parallelism: u32,
}

/// A job as restore sees it.
#[derive(Clone, Debug)]
pub struct JobShape<'a> {
    /// The job's name.
    pub name: &'a str,
    /// The job's max parallelism.
    pub max_parallelism: u32,
    /// Every operator of the job.
    pub operators: Vec<DeclaredOperator<'a>>,
}

/// How one state of a snapshot decodes into the job's state types (`floe savepoint check`).
#[derive(Clone, Debug)]
pub struct StateCheck {
    /// Operator uid.
    pub uid: String,
    /// State name.
    pub state: String,
    /// Entries in the snapshot.
    pub entries: u64,
    /// False when the job's `open()` does not register this state (it would be kept as is).
    pub registered: bool,
    /// The first entry that does not decode into the job's type, if any.
    pub error: Option<String>,
}

/// How one operator of the snapshot fits the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Its state maps to the job operator named `job_name`.
    Matched {
        /// The job operator's name.
        job_name: String,
        /// Parallelism in the snapshot.
        from: u32,
        /// Parallelism in the job.
        to: u32,
    },
    /// No job operator has its uid; with `skipped` the state is dropped
    /// (`--allowNonRestoredState`), otherwise the restore is refused.
    NotInJob {
        /// `--allowNonRestoredState` was given.
        skipped: bool,
    },
    /// The job operator with its uid (named `job_name`) does not store this kind of state.
    WrongKind {
        /// The job operator's name.
        job_name: String,
    },
    /// Keyed state of another max parallelism.
    MaxParallelism {
        /// The job's max parallelism.
        job: u32,
    },
}

/// One operator of the snapshot and how it fits.
#[derive(Clone, Debug)]
pub struct OperatorFit {
    /// Its uid.
    pub uid: String,
    /// Its name in the snapshot.
    pub name: String,
    /// Its kind of state.
    pub kind: OperatorKind,
    /// Max parallelism it was taken with.
    pub max_parallelism: u32,
    /// `, states 'a', 'b'`, `, source positions` or `, pending output` (for messages).
    pub holds: String,
    /// How it fits.
    pub fit: Fit,
}

/// Whether a snapshot restores into a job, operator by operator.
#[derive(Clone, Debug)]
pub struct Report {
    /// The snapshot's directory.
    pub dir: Location,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Its checkpoint id.
    pub checkpoint_id: u64,
    /// The job that took it.
    pub job_id: String,
    /// That job's name.
    pub snapshot_job_name: String,
    /// The job it is checked against.
    pub job_name: String,
    /// Every operator of the snapshot, in snapshot order.
    pub operators: Vec<OperatorFit>,
    /// `(uid, name)` of the job's stateful operators the snapshot has no state for.
    pub new_operators: Vec<(String, String)>,
    /// How each state of a matched keyed operator decodes (empty unless attached with
    /// [`Report::with_state_checks`]).
    pub states: Vec<StateCheck>,
}

/// Compares the job's stateful operators with the snapshot.
pub fn compatibility(
    job: &JobShape<'_>,
    snap: &LoadedSnapshot,
    allow_non_restored: bool,
) -> Report {
    let m = &snap.metadata;
    let operators = m
        .operators
        .iter()
        .map(|os| {
            let fit = match job.operators.iter().find(|o| o.uid == os.uid) {
                None => Fit::NotInJob {
                    skipped: allow_non_restored,
                },
                Some(decl) => match fit(decl.state, os, job.max_parallelism) {
                    Ok(()) => Fit::Matched {
                        job_name: decl.name.to_string(),
                        from: os.parallelism,
                        to: decl.parallelism,
                    },
                    Err(Misfit::WrongKind) => Fit::WrongKind {
                        job_name: decl.name.to_string(),
                    },
                    Err(Misfit::MaxParallelism) => Fit::MaxParallelism {
                        job: job.max_parallelism,
                    },
                },
            };
            OperatorFit {
                uid: os.uid.clone(),
                name: os.name.clone(),
                kind: os.kind,
                max_parallelism: os.max_parallelism,
                holds: holds(snap, os),
                fit,
            }
        })
        .collect();
    let new_operators = job
        .operators
        .iter()
        .filter(|o| o.state.is_some() && m.operator(o.uid).is_none())
        .map(|o| (o.uid.to_string(), o.name.to_string()))
        .collect();
    Report {
        dir: snap.dir.clone(),
        kind: m.kind,
        checkpoint_id: m.checkpoint_id,
        job_id: m.job_id.clone(),
        snapshot_job_name: m.job_name.clone(),
        job_name: job.name.to_string(),
        operators,
        new_operators,
        states: Vec::new(),
    }
}

impl Report {
    /// Attaches how each state decodes into the job's types.
    pub fn with_state_checks(mut self, states: Vec<StateCheck>) -> Self {
        self.states = states;
        self
    }

    /// How many things stop the snapshot from restoring.
    pub fn problems(&self) -> usize {
        let mut n = 0;
        for o in &self.operators {
            match &o.fit {
                Fit::Matched { .. } => {
                    n += self
                        .states
                        .iter()
                        .filter(|c| c.uid == o.uid && c.error.is_some())
                        .count()
                }
                Fit::NotInJob { skipped: true } => {}
                Fit::NotInJob { skipped: false }
                | Fit::WrongKind { .. }
                | Fit::MaxParallelism { .. } => n += 1,
            }
        }
        n
    }

    /// True when the snapshot restores into the job.
    pub fn restores(&self) -> bool {
        self.problems() == 0
    }

    /// The restore's verdict: the first operator whose state does not fit, as Flink words
    /// it. Skipped operators are logged. State types are checked by the operators
    /// themselves when they restore.
    pub fn into_result(self) -> Result<()> {
        let dir = &self.dir;
        for o in &self.operators {
            match &o.fit {
                Fit::Matched { .. } => {}
                Fit::NotInJob { skipped: true } => tracing::info!(
                    "Skipping state of operator '{}' ({}): it is not in the job (--allowNonRestoredState).",
                    o.uid,
                    o.name
                ),
                Fit::NotInJob { skipped: false } => crate::bail!(
                    "Failed to rollback to checkpoint/savepoint {dir}. Cannot map checkpoint/savepoint state for operator '{}' ({}{}) to the new program, because the operator is not available in the new program. If you want to allow to skip this, you can set the --allowNonRestoredState option on the CLI.",
                    o.uid,
                    o.name,
                    o.holds
                ),
                Fit::WrongKind { job_name } => crate::bail!(
                    "cannot restore {dir}: state of operator '{}' is {:?} state but the operator with that uid in the job is '{job_name}'",
                    o.uid,
                    o.kind
                ),
                Fit::MaxParallelism { job } => crate::bail!(
                    "cannot restore {dir}: operator '{}' was checkpointed with max parallelism {}, but the job's max parallelism is {job}; keyed state cannot change its max parallelism",
                    o.uid,
                    o.max_parallelism
                ),
            }
        }
        Ok(())
    }
}

/// The report `floe savepoint check` prints.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SnapshotKind::Savepoint => "savepoint",
            SnapshotKind::Checkpoint => "checkpoint",
        };
        writeln!(
            f,
            "Checking {} ({kind} {} of job {} '{}') against job '{}':",
            &self.dir, self.checkpoint_id, self.job_id, self.snapshot_job_name, self.job_name
        )?;
        for o in &self.operators {
            let (uid, name, states) = (&o.uid, &o.name, &o.holds);
            match &o.fit {
                Fit::NotInJob { skipped: true } => writeln!(
                    f,
                    "  operator '{uid}' ({name}{states}): not in this job, skipped (--allowNonRestoredState)"
                )?,
                Fit::NotInJob { skipped: false } => writeln!(
                    f,
                    "  operator '{uid}' ({name}{states}): not in this job — restoring needs -n/--allowNonRestoredState"
                )?,
                Fit::WrongKind { job_name } => writeln!(
                    f,
                    "  operator '{uid}' ({name}): INCOMPATIBLE: {:?} state, but '{job_name}' in this job has none of that kind",
                    o.kind
                )?,
                Fit::MaxParallelism { job } => writeln!(
                    f,
                    "  operator '{uid}' ({name}): INCOMPATIBLE: max parallelism {} in the snapshot, {job} in this job",
                    o.max_parallelism
                )?,
                Fit::Matched { job_name, from, to } => {
                    writeln!(
                        f,
                        "  operator '{uid}' ({job_name}): matched, parallelism {from} -> {to}"
                    )?;
                    for c in self.states.iter().filter(|c| c.uid == o.uid) {
                        match (&c.error, c.registered) {
                            (Some(e), _) => writeln!(
                                f,
                                "    state '{}': INCOMPATIBLE ({} entries): {e}",
                                c.state, c.entries
                            )?,
                            (None, true) => writeln!(
                                f,
                                "    state '{}': compatible, {} entries",
                                c.state, c.entries
                            )?,
                            (None, false) => writeln!(
                                f,
                                "    state '{}': not registered by the job's open(), kept as is ({} entries)",
                                c.state, c.entries
                            )?,
                        }
                    }
                }
            }
        }
        for (uid, name) in &self.new_operators {
            writeln!(
                f,
                "  operator '{uid}' ({name}): new in this job, starts empty"
            )?;
        }
        match self.problems() {
            0 => writeln!(f, "Result: the snapshot restores into this job."),
            n => writeln!(
                f,
                "Result: the snapshot does NOT restore into this job ({n} problem(s))."
            ),
        }
    }
}

/// `, states 'a', 'b'` for a keyed operator (read from its state file headers), what the
/// kind holds for the others.
fn holds(snap: &LoadedSnapshot, os: &OperatorState) -> String {
    if let Some(what) = os.kind.holds() {
        return format!(", {what}");
    }
    let mut names: Vec<String> = Vec::new();
    for st in &os.subtasks {
        if let StateHandle::KeyedFile { file, .. } = &st.handle {
            if let Ok(r) = StateFileReader::open_location(&snap.file_path(file)) {
                for n in r.header.state_names {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
    }
    if names.is_empty() {
        String::new()
    } else {
        format!(
            ", states {}",
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A snapshot as the operators of a job with `max_parallelism` restore from it.
#[derive(Clone, Copy)]
pub struct RestoreView<'a> {
    snap: &'a LoadedSnapshot,
    max_parallelism: u32,
}

impl<'a> RestoreView<'a> {
    /// The view of `snap` for a job with `max_parallelism` key groups.
    pub fn new(snap: &'a LoadedSnapshot, max_parallelism: u32) -> Self {
        RestoreView {
            snap,
            max_parallelism,
        }
    }

    /// The state of operator `uid`, which stores `kind` state: `None` when the snapshot has
    /// none for it (it starts empty), an error when the state does not [`fit`].
    pub fn operator(&self, uid: &str, kind: OperatorKind) -> Result<Option<OperatorRestore<'a>>> {
        let Some(os) = self.snap.metadata.operator(uid) else {
            return Ok(None);
        };
        match fit(Some(kind), os, self.max_parallelism) {
            Ok(()) => Ok(Some(OperatorRestore {
                snap: self.snap,
                state: os,
            })),
            Err(Misfit::WrongKind) => crate::bail!(
                "state of operator '{uid}' in {} is not {} state",
                &self.snap.dir,
                kind.noun()
            ),
            Err(Misfit::MaxParallelism) => crate::bail!(
                "cannot restore operator '{uid}' from {}: it was checkpointed with max parallelism {}, the job has {}",
                &self.snap.dir,
                os.max_parallelism,
                self.max_parallelism
            ),
        }
    }

    /// Like [`operator`](Self::operator), but state of another kind is no error, just not
    /// this operator's (reports, which name the misfit themselves).
    pub fn operator_if(&self, uid: &str, kind: OperatorKind) -> Option<OperatorRestore<'a>> {
        let os = self.snap.metadata.operator(uid)?;
        (os.kind == kind).then_some(OperatorRestore {
            snap: self.snap,
            state: os,
        })
    }
}

/// One operator's part of a snapshot.
#[derive(Clone, Copy)]
pub struct OperatorRestore<'a> {
    snap: &'a LoadedSnapshot,
    state: &'a OperatorState,
}

/// A keyed state file and the blocks in it of the key groups asked for.
pub struct KeyedFile {
    /// The file's location.
    pub path: Location,
    /// The open file.
    pub reader: StateFileReader,
    /// Its index entries within the key-group range.
    pub blocks: Vec<IndexEntry>,
}

impl<'a> OperatorRestore<'a> {
    /// The snapshot's directory (for messages).
    pub fn dir(&self) -> &'a Location {
        &self.snap.dir
    }

    /// The operator's state as stored.
    pub fn state(&self) -> &'a OperatorState {
        self.state
    }

    /// Every subtask's inline bytes, in subtask order (the snapshot may have another
    /// parallelism than the job now has).
    pub fn inline(&self) -> Result<Vec<(u32, &'a [u8])>> {
        let mut out = Vec::with_capacity(self.state.subtasks.len());
        for st in &self.state.subtasks {
            let StateHandle::Inline { data } = &st.handle else {
                crate::bail!(
                    "corrupt snapshot {}: {} '{}' subtask {} has no inline {}",
                    &self.snap.dir,
                    self.state.kind.noun(),
                    self.state.uid,
                    st.subtask,
                    self.state.kind.inline_noun()
                );
            };
            out.push((st.subtask, data.as_slice()));
        }
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }

    /// The keyed state files with their blocks of `key_groups`, opened one at a time.
    pub fn keyed_files(
        &self,
        key_groups: KeyGroupRange,
    ) -> impl Iterator<Item = Result<KeyedFile>> + 'a {
        let snap = self.snap;
        self.state.subtasks.iter().filter_map(move |st| {
            let StateHandle::KeyedFile { file, .. } = &st.handle else {
                return None;
            };
            let path = snap.file_path(file);
            Some(StateFileReader::open_location(&path).map(|reader| {
                let blocks = reader
                    .index
                    .iter()
                    .filter(|e| key_groups.contains(e.key_group))
                    .cloned()
                    .collect();
                KeyedFile {
                    path,
                    reader,
                    blocks,
                }
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{
        load_snapshot, write_metadata, CheckpointMetadata, SubtaskState,
    };
    use crate::state::file::{write_state_file, StateFileHeader};

    fn op(uid: &str, kind: OperatorKind, subtasks: Vec<SubtaskState>) -> OperatorState {
        OperatorState {
            uid: uid.into(),
            name: format!("{uid} op"),
            kind,
            parallelism: subtasks.len() as u32,
            max_parallelism: 128,
            subtasks,
        }
    }

    fn inline(subtask: u32, data: &[u8]) -> SubtaskState {
        SubtaskState {
            subtask,
            handle: StateHandle::Inline {
                data: data.to_vec(),
            },
        }
    }

    /// A snapshot with a source (two subtasks, stored out of order) and a keyed operator
    /// whose one state file holds key groups 3 and 100.
    fn snapshot(dir: &std::path::Path) -> LoadedSnapshot {
        let file = "sum-0.state";
        let v = [Some(b"v".to_vec())];
        let groups = vec![
            (3u32, vec![(&b"a"[..], &v[..])]),
            (100, vec![(&b"b"[..], &v[..])]),
        ];
        let header = StateFileHeader {
            state_names: vec!["total".into()],
            max_parallelism: 128,
        };
        let w = write_state_file(&dir.join(file), &header, groups).unwrap();
        let keyed = SubtaskState {
            subtask: 0,
            handle: StateHandle::KeyedFile {
                file: file.into(),
                size: w.size,
                entries: w.entries,
            },
        };
        let meta = CheckpointMetadata::new(
            "0123456789abcdef0123456789abcdef",
            "old",
            4,
            SnapshotKind::Savepoint,
            1,
            128,
            vec![
                op(
                    "src",
                    OperatorKind::Source,
                    vec![inline(1, b"p1"), inline(0, b"p0")],
                ),
                op("sum", OperatorKind::Keyed, vec![keyed]),
            ],
        );
        write_metadata(dir, &meta).unwrap();
        load_snapshot(dir).unwrap()
    }

    fn decl<'a>(uid: &'a str, state: Option<OperatorKind>) -> DeclaredOperator<'a> {
        DeclaredOperator {
            uid,
            name: uid,
            state,
            parallelism: 2,
        }
    }

    fn job<'a>(max_parallelism: u32, operators: Vec<DeclaredOperator<'a>>) -> JobShape<'a> {
        JobShape {
            name: "new",
            max_parallelism,
            operators,
        }
    }

    #[test]
    fn a_snapshot_that_fits_restores_and_reports_new_operators() {
        let d = tempfile::tempdir().unwrap();
        let snap = snapshot(d.path());
        let j = job(
            128,
            vec![
                decl("src", Some(OperatorKind::Source)),
                decl("map", None),
                decl("sum", Some(OperatorKind::Keyed)),
                decl("out", Some(OperatorKind::Sink)),
            ],
        );
        let r = compatibility(&j, &snap, false);
        assert!(r.restores());
        assert_eq!(
            r.new_operators,
            vec![("out".to_string(), "out".to_string())]
        );
        let text = r.to_string();
        assert!(
            text.contains("operator 'sum' (sum): matched, parallelism 1 -> 2"),
            "{text}"
        );
        assert!(
            text.contains("operator 'out' (out): new in this job, starts empty"),
            "{text}"
        );
        assert!(
            text.ends_with("Result: the snapshot restores into this job.\n"),
            "{text}"
        );
        r.into_result().unwrap();
    }

    #[test]
    fn a_snapshot_that_does_not_fit_names_the_first_problem() {
        let d = tempfile::tempdir().unwrap();
        let snap = snapshot(d.path());
        // Another max parallelism: keyed state cannot move.
        let r = compatibility(
            &job(
                64,
                vec![
                    decl("src", Some(OperatorKind::Source)),
                    decl("sum", Some(OperatorKind::Keyed)),
                ],
            ),
            &snap,
            false,
        );
        assert_eq!(r.problems(), 1);
        let e = r.into_result().unwrap_err().to_string();
        assert!(e.contains("operator 'sum' was checkpointed with max parallelism 128, but the job's max parallelism is 64"), "{e}");
        // The uid now names a stateless operator.
        let r = compatibility(
            &job(
                128,
                vec![decl("src", None), decl("sum", Some(OperatorKind::Keyed))],
            ),
            &snap,
            false,
        );
        assert!(r
            .to_string()
            .contains("INCOMPATIBLE: Source state, but 'src' in this job has none of that kind"));
        let e = r.into_result().unwrap_err().to_string();
        assert!(e.contains("state of operator 'src' is Source state but the operator with that uid in the job is 'src'"), "{e}");
        // A decoding error of a matched state is a problem of the check.
        let r = compatibility(
            &job(
                128,
                vec![
                    decl("src", Some(OperatorKind::Source)),
                    decl("sum", Some(OperatorKind::Keyed)),
                ],
            ),
            &snap,
            false,
        )
        .with_state_checks(vec![StateCheck {
            uid: "sum".into(),
            state: "total".into(),
            entries: 2,
            registered: true,
            error: Some("bad".into()),
        }]);
        assert_eq!(r.problems(), 1);
        assert!(r
            .to_string()
            .contains("    state 'total': INCOMPATIBLE (2 entries): bad"));
    }

    #[test]
    fn a_missing_operator_needs_allow_non_restored_state() {
        let d = tempfile::tempdir().unwrap();
        let snap = snapshot(d.path());
        let j = job(128, vec![decl("src", Some(OperatorKind::Source))]);
        let refused = compatibility(&j, &snap, false);
        assert!(!refused.restores());
        assert!(refused.to_string().contains(
            "operator 'sum' (sum op, states 'total'): not in this job — restoring needs -n/--allowNonRestoredState"
        ));
        let e = refused.into_result().unwrap_err().to_string();
        assert!(
            e.starts_with("Failed to rollback to checkpoint/savepoint"),
            "{e}"
        );
        assert!(e.contains("operator 'sum' (sum op, states 'total')"), "{e}");
        let allowed = compatibility(&j, &snap, true);
        assert!(allowed.restores());
        assert!(allowed
            .to_string()
            .contains("not in this job, skipped (--allowNonRestoredState)"));
        allowed.into_result().unwrap();
    }

    #[test]
    fn operators_get_their_handles_in_subtask_order_and_their_key_groups_only() {
        let d = tempfile::tempdir().unwrap();
        let snap = snapshot(d.path());
        let view = RestoreView::new(&snap, 128);
        let src = view.operator("src", OperatorKind::Source).unwrap().unwrap();
        assert_eq!(
            src.inline().unwrap(),
            vec![(0, &b"p0"[..]), (1, &b"p1"[..])]
        );
        assert!(view
            .operator("absent", OperatorKind::Keyed)
            .unwrap()
            .is_none());
        let e = view
            .operator("src", OperatorKind::Keyed)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("state of operator 'src' in") && e.ends_with("is not keyed state"),
            "{e}"
        );
        let sum = view.operator("sum", OperatorKind::Keyed).unwrap().unwrap();
        let groups = |r: KeyGroupRange| -> Vec<u32> {
            sum.keyed_files(r)
                .flat_map(|f| f.unwrap().blocks.into_iter().map(|b| b.key_group))
                .collect()
        };
        assert_eq!(groups(KeyGroupRange { start: 0, end: 63 }), vec![3]);
        assert_eq!(
            groups(KeyGroupRange {
                start: 64,
                end: 127
            }),
            vec![100]
        );
        assert_eq!(groups(KeyGroupRange { start: 0, end: 127 }), vec![3, 100]);
        let e = RestoreView::new(&snap, 64)
            .operator("sum", OperatorKind::Keyed)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("it was checkpointed with max parallelism 128, the job has 64"),
            "{e}"
        );
        assert!(view.operator_if("src", OperatorKind::Keyed).is_none());
        let e = view
            .operator("sum", OperatorKind::Keyed)
            .unwrap()
            .unwrap()
            .inline()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("keyed 'sum' subtask 0 has no inline state"),
            "{e}"
        );
    }
}
