//! `floe savepoint inspect`: what a checkpoint or savepoint holds, readable without the
//! job's Rust types (state is stored as self-describing CBOR).

use anyhow::{anyhow, Result};
use floe::checkpoint::metadata::{load_snapshot, OperatorKind, SnapshotKind, StateHandle};
use floe::state::file::StateFileReader;
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
                        let line = json!({ "key": cbor_to_json(&key), "key_group": e.key_group, "state": name, "value": cbor_to_json(v) });
                        println!("{line}");
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
                let mut per_state: Vec<(String, u64, u64)> = Vec::new();
                for st in &op.subtasks {
                    let StateHandle::KeyedFile { file, .. } = &st.handle else {
                        continue;
                    };
                    let mut r = StateFileReader::open_location(&snap.file_path(file))?;
                    let names = r.header.state_names.clone();
                    for e in r.index.clone() {
                        for (_, values) in r.read_block(&e)? {
                            for (name, v) in names.iter().zip(&values) {
                                if let Some(v) = v {
                                    match per_state.iter_mut().find(|(n, _, _)| n == name) {
                                        Some(x) => {
                                            x.1 += 1;
                                            x.2 += v.len() as u64;
                                        }
                                        None => per_state.push((name.clone(), 1, v.len() as u64)),
                                    }
                                }
                            }
                        }
                    }
                }
                if per_state.is_empty() {
                    println!("    no state entries");
                }
                for (name, n, bytes) in per_state {
                    println!("    state '{name}': {n} entries, {bytes} bytes");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
