//! `floe savepoint inspect`: what a checkpoint or savepoint holds, readable without the
//! job's Rust types (state is stored as self-describing CBOR).

use anyhow::{anyhow, Result};
use floe::checkpoint::metadata::{load_snapshot, OperatorKind, SnapshotKind, StateHandle};
use floe::state::file::{StateFileReader, OPERATOR_ENTRY_KEY, TIMERS_STATE, WATERMARK_STATE};
use floe::storage::Location;
use serde_json::{json, Value};

fn cbor_to_json(bytes: &[u8]) -> Value {
    match ciborium::from_reader::<ciborium::Value, _>(bytes) {
        Ok(v) => serde_json::to_value(untagged(v)).unwrap_or(Value::Null),
        Err(_) => json!({ "undecodable_bytes": bytes.len() }),
    }
}

/// CBOR tags have no JSON form: print what they tag. (State with TTL is tagged; its
/// values show as `{"user_value": .., "last_access_timestamp": ..}`.)
fn untagged(v: ciborium::Value) -> ciborium::Value {
    use ciborium::Value as C;
    match v {
        C::Tag(_, inner) => untagged(*inner),
        C::Array(a) => C::Array(a.into_iter().map(untagged).collect()),
        C::Map(m) => C::Map(
            m.into_iter()
                .map(|(k, v)| (untagged(k), untagged(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Prints the summary, or with `dump = Some("uid[/state]")` the entries as JSON lines.
pub fn inspect(path: &Location, dump: Option<&str>) -> Result<()> {
    let snap = load_snapshot(path)?;
    let m = &snap.metadata;
    if let Some(sel) = dump {
        let (uid, state) = match sel.split_once('/') {
            Some((u, s)) => (u, Some(s)),
            None => (sel, None),
        };
        let op = m.operator(uid).ok_or_else(|| {
            let uids: Vec<&str> = m.operators.iter().map(|o| o.uid.as_str()).collect();
            anyhow!(
                "no operator with uid '{uid}' in {} (operators: {})",
                snap.dir.display(),
                uids.join(", ")
            )
        })?;
        if op.kind != OperatorKind::Keyed {
            anyhow::bail!("operator '{uid}' has source positions, not keyed state");
        }
        let mut found_state = state.is_none();
        for st in &op.subtasks {
            let StateHandle::KeyedFile { file, .. } = &st.handle else {
                continue;
            };
            let mut r = StateFileReader::open_location(&snap.file_path(file))?;
            let names = r.header.state_names.clone();
            found_state |= state.is_some_and(|s| names.iter().any(|n| n == s));
            for e in r.index.clone() {
                for (key, values) in r.read_block(&e)? {
                    for (name, v) in names.iter().zip(&values) {
                        let Some(v) = v else { continue };
                        if state.is_some_and(|s| s != name) {
                            continue;
                        }
                        println!("{}", dump_line(&key, e.key_group, name, v));
                    }
                }
            }
        }
        if !found_state {
            anyhow::bail!(
                "operator '{uid}' has no state named '{}'",
                state.unwrap_or_default()
            );
        }
        return Ok(());
    }
    println!("Snapshot {}", snap.dir.display());
    println!(
        "  kind:            {}",
        if m.kind == SnapshotKind::Savepoint {
            "savepoint"
        } else {
            "checkpoint"
        }
    );
    println!("  job id:          {}", m.job_id);
    println!("  job name:        {}", m.job_name);
    println!("  checkpoint id:   {}", m.checkpoint_id);
    println!(
        "  time:            {} UTC ({} ms)",
        crate::rest::format_time(m.timestamp_ms),
        m.timestamp_ms
    );
    println!("  max parallelism: {}", m.max_parallelism);
    println!("Operators:");
    for op in &m.operators {
        let kind = match op.kind {
            OperatorKind::Source => "source",
            OperatorKind::Keyed => "keyed",
            OperatorKind::Sink => "sink",
        };
        println!(
            "  uid '{}' ({}): {kind}, parallelism {}, max parallelism {}",
            op.uid, op.name, op.parallelism, op.max_parallelism
        );
        match op.kind {
            OperatorKind::Sink => {
                // Every subtask stores the committables not yet committed at the cut.
                let mut pending = 0usize;
                for st in &op.subtasks {
                    if let StateHandle::Inline { data } = &st.handle {
                        pending += serde_json::from_slice::<Vec<serde_json::Value>>(data)
                            .map(|v| v.len())
                            .unwrap_or(0);
                    }
                }
                println!(
                    "    pending output of {} subtasks: {pending} uncommitted part(s)",
                    op.subtasks.len()
                );
            }
            OperatorKind::Source => {
                let bytes: u64 = op.subtasks.iter().map(|s| s.handle.size()).sum();
                println!(
                    "    positions of {} subtasks, {bytes} bytes",
                    op.subtasks.len()
                );
            }
            OperatorKind::Keyed => {
                let mut summary = KeyedSummary::default();
                for st in &op.subtasks {
                    let StateHandle::KeyedFile { file, .. } = &st.handle else {
                        continue;
                    };
                    let mut r = StateFileReader::open_location(&snap.file_path(file))?;
                    summary.add_file(&mut r, st.subtask)?;
                }
                for line in summary.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    Ok(())
}

/// One `--dump` line. Operator entries (a timed operator's watermark) belong to no key:
/// they are marked `"operator_entry": true` instead of showing their key bytes.
fn dump_line(key: &[u8], key_group: u32, state: &str, value: &[u8]) -> Value {
    if key == OPERATOR_ENTRY_KEY {
        json!({ "operator_entry": true, "key_group": key_group, "state": state, "value": cbor_to_json(value) })
    } else {
        json!({ "key": cbor_to_json(key), "key_group": key_group, "state": state, "value": cbor_to_json(value) })
    }
}

/// The timers and the watermark one subtask's state file holds.
#[derive(Debug, Default, PartialEq)]
struct TimeSummary {
    event_timers: u64,
    processing_timers: u64,
    /// The lowest and highest watermark over the file's key groups (a restore starts
    /// from the lowest its key groups hold); `None` when none was recorded.
    watermark: Option<(i64, i64)>,
}

/// What a keyed operator's state files hold: entries and bytes per state, and per
/// subtask the timers and watermark of timed operators (process functions, windows,
/// joins).
#[derive(Debug, Default)]
struct KeyedSummary {
    per_state: Vec<(String, u64, u64)>,
    subtasks: Vec<(u32, TimeSummary)>,
}

impl KeyedSummary {
    fn add_file(&mut self, r: &mut StateFileReader, subtask: u32) -> Result<()> {
        let names = r.header.state_names.clone();
        let timed = names
            .iter()
            .any(|n| n == TIMERS_STATE || n == WATERMARK_STATE);
        let mut t = TimeSummary::default();
        for e in r.index.clone() {
            for (key, values) in r.read_block(&e)? {
                let operator_entry = key == OPERATOR_ENTRY_KEY;
                for (name, v) in names.iter().zip(&values) {
                    let Some(v) = v else { continue };
                    if operator_entry {
                        // The operator's own entries are no key's state.
                        if name == WATERMARK_STATE {
                            if let Ok(wm) = ciborium::from_reader::<i64, _>(v.as_slice()) {
                                t.watermark = Some(match t.watermark {
                                    None => (wm, wm),
                                    Some((lo, hi)) => (lo.min(wm), hi.max(wm)),
                                });
                            }
                        }
                        continue;
                    }
                    if name == TIMERS_STATE {
                        let (event, processing) = count_timers(v);
                        t.event_timers += event;
                        t.processing_timers += processing;
                    }
                    match self.per_state.iter_mut().find(|(n, _, _)| n == name) {
                        Some(x) => {
                            x.1 += 1;
                            x.2 += v.len() as u64;
                        }
                        None => self.per_state.push((name.clone(), 1, v.len() as u64)),
                    }
                }
            }
        }
        if timed {
            self.subtasks.push((subtask, t));
        }
        Ok(())
    }

    fn lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.per_state.is_empty() {
            v.push("no state entries".to_string());
        }
        for (name, n, bytes) in &self.per_state {
            v.push(format!("state '{name}': {n} entries, {bytes} bytes"));
        }
        for (subtask, t) in &self.subtasks {
            v.push(format!(
                "subtask {subtask}: {} event-time and {} processing-time timers, watermark {}",
                t.event_timers,
                t.processing_timers,
                watermark_text(t.watermark)
            ));
        }
        v
    }
}

/// How many event-time and processing-time timers one key's `_timers` value holds
/// (`{"event": [..], "processing": [..]}`).
fn count_timers(bytes: &[u8]) -> (u64, u64) {
    use ciborium::Value as C;
    let Ok(C::Map(m)) = ciborium::from_reader::<C, _>(bytes) else {
        return (0, 0);
    };
    let len = |field: &str| {
        m.iter()
            .find(|(k, _)| k.as_text() == Some(field))
            .and_then(|(_, v)| v.as_array())
            .map_or(0, |a| a.len() as u64)
    };
    (len("event"), len("processing"))
}

fn watermark_text(wm: Option<(i64, i64)>) -> String {
    let one = |w: i64| match w {
        i64::MIN => "none yet (Long.MIN_VALUE)".to_string(),
        i64::MAX => "end of input (Long.MAX_VALUE)".to_string(),
        // Epoch milliseconds get a date once they look like one (from 2000 on); small
        // watermarks are a job's own time scale.
        w if w >= 946_684_800_000 => format!("{w} ({} UTC)", crate::rest::format_time(w as u64)),
        w => w.to_string(),
    };
    match wm {
        None => "none yet".to_string(),
        Some((lo, hi)) if lo == hi => one(lo),
        Some((lo, hi)) => format!(
            "{} to {} by key group (a restore starts from the lowest its key groups hold)",
            one(lo),
            one(hi)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(v: &impl serde::Serialize) -> Vec<u8> {
        let mut b = Vec::new();
        ciborium::into_writer(v, &mut b).unwrap();
        b
    }

    #[test]
    fn timers_and_watermarks_of_a_timed_operator_read_per_subtask() {
        use floe::state::file::{write_state_file, StateFileHeader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let header = StateFileHeader {
            state_names: vec!["count".into(), TIMERS_STATE.into(), WATERMARK_STATE.into()],
            max_parallelism: 128,
        };
        // Key "a": a count and two event-time timers and one processing-time timer (as a
        // timed operator stores them: (timestamp, namespace) pairs).
        let key_a = cbor(&"a");
        let timers = cbor(&json!({ "event": [[5, null], [7, null]], "processing": [[9, null]] }));
        let a = vec![Some(cbor(&3u64)), Some(timers), None];
        // The operator's watermark, one entry per key group (an older one in group 2).
        let wm = |w: i64| vec![None, None, Some(cbor(&w))];
        let (w1, w2) = (wm(1_999), wm(999));
        let groups = vec![
            (
                1u32,
                vec![
                    (key_a.as_slice(), a.as_slice()),
                    (OPERATOR_ENTRY_KEY, w1.as_slice()),
                ],
            ),
            (2u32, vec![(OPERATOR_ENTRY_KEY, w2.as_slice())]),
        ];
        write_state_file(&path, &header, groups).unwrap();
        let mut r = StateFileReader::open(&path).unwrap();
        let mut s = KeyedSummary::default();
        s.add_file(&mut r, 1).unwrap();
        assert_eq!(
            s.lines(),
            vec![
                format!("state 'count': 1 entries, {} bytes", cbor(&3u64).len()),
                format!("state '_timers': 1 entries, {} bytes", a[1].as_ref().unwrap().len()),
                "subtask 1: 2 event-time and 1 processing-time timers, watermark 999 to 1999 by key group (a restore starts from the lowest its key groups hold)".to_string(),
            ]
        );
        // --dump shows operator entries as such, not as undecodable key bytes.
        assert_eq!(
            dump_line(OPERATOR_ENTRY_KEY, 2, WATERMARK_STATE, &cbor(&999i64)),
            json!({ "operator_entry": true, "key_group": 2, "state": "_watermark", "value": 999 })
        );
        assert_eq!(
            dump_line(&key_a, 1, "count", &cbor(&3u64)),
            json!({ "key": "a", "key_group": 1, "state": "count", "value": 3 })
        );
        assert_eq!(
            watermark_text(Some((i64::MAX, i64::MAX))),
            "end of input (Long.MAX_VALUE)"
        );
        assert_eq!(watermark_text(None), "none yet");
        assert_eq!(
            watermark_text(Some((1_795_299_547_499, 1_795_299_547_499))),
            "1795299547499 (21.11.2026 22:19:07 UTC)"
        );
    }

    #[test]
    fn ttl_tagged_values_dump_as_their_fields() {
        // A TTL value state's stored bytes: the TTL tag, then the CBOR of the wrapper.
        let mut bytes = vec![0xDA, 0x46, 0x4C, 0x54, 0x54];
        ciborium::into_writer(
            &json!({ "user_value": 3, "last_access_timestamp": 1700000000000i64 }),
            &mut bytes,
        )
        .unwrap();
        assert_eq!(
            cbor_to_json(&bytes),
            json!({ "user_value": 3, "last_access_timestamp": 1700000000000i64 })
        );
    }
}
