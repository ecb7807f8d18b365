//! The in-memory keyed state backend: a key index plus one table per state name.

use super::{decode_value, encode_value, ReduceFn, UNBOUND};
use crate::api::data::{Data, Key};
use crate::Result;
use hashbrown::HashTable;
use std::any::Any;
use std::collections::HashMap;

/// One changed key in a snapshot delta: its key group, canonical key bytes, and the
/// serialized value of every registered state (`None` = no value for that state).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeltaEntry {
    /// Key group of the key.
    pub key_group: u32,
    /// bincode bytes of the key.
    pub key: Vec<u8>,
    /// Per registered state (same order as the registry's names).
    pub values: Vec<Option<Vec<u8>>>,
}

pub(crate) trait StateTable: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode_slot(&self, slot: u32, out: &mut Vec<u8>) -> Result<bool>;
    fn restore_slot(&mut self, slot: u32, bytes: &[u8]) -> Result<()>;
}

pub(crate) struct Table<S> {
    name: String,
    kind: &'static str,
    values: Vec<Option<S>>,
    pub(crate) default: Option<S>,
    pub(crate) reduce: Option<ReduceFn<S>>,
}

impl<S> Table<S> {
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&S> {
        self.values.get(slot as usize).and_then(|v| v.as_ref())
    }
    #[inline]
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut S> {
        self.values.get_mut(slot as usize).and_then(|v| v.as_mut())
    }
    #[inline]
    fn ensure(&mut self, slot: u32) {
        let need = slot as usize + 1;
        if self.values.len() < need {
            self.values.resize_with(need, || None);
        }
    }
    #[inline]
    pub(crate) fn set(&mut self, slot: u32, v: Option<S>) {
        self.ensure(slot);
        self.values[slot as usize] = v;
    }
    /// Every slot that has a value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &S)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, slot: u32, f: impl FnOnce() -> S) -> &mut S {
        self.ensure(slot);
        self.values[slot as usize].get_or_insert_with(f)
    }
}

impl<S: Data> StateTable for Table<S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encode_slot(&self, slot: u32, out: &mut Vec<u8>) -> Result<bool> {
        match self.get(slot) {
            Some(v) => {
                encode_value(v, out)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn restore_slot(&mut self, slot: u32, bytes: &[u8]) -> Result<()> {
        let v: S = decode_value(bytes)
            .map_err(|e| crate::anyhow!("{} state '{}': {e}", self.kind, self.name))?;
        self.set(slot, Some(v));
        Ok(())
    }
}

/// State restored from a snapshot under a name no function registered: kept as bytes and
/// carried into every later snapshot, so restoring never silently drops state.
struct RawTable {
    name: String,
    values: Vec<Option<Vec<u8>>>,
}

impl StateTable for RawTable {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "unregistered"
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encode_slot(&self, slot: u32, out: &mut Vec<u8>) -> Result<bool> {
        match self.values.get(slot as usize).and_then(|v| v.as_ref()) {
            Some(b) => {
                out.extend_from_slice(b);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn restore_slot(&mut self, slot: u32, bytes: &[u8]) -> Result<()> {
        let need = slot as usize + 1;
        if self.values.len() < need {
            self.values.resize_with(need, || None);
        }
        self.values[slot as usize] = Some(bytes.to_vec());
        Ok(())
    }
}

/// The registered states of one keyed operator instance and which keys changed since the
/// last snapshot.
#[derive(Default)]
pub struct StateRegistry {
    tables: Vec<Box<dyn StateTable>>,
    by_name: HashMap<String, u32>,
    dirty_mark: Vec<bool>,
    dirty: Vec<u32>,
}

impl StateRegistry {
    pub(crate) fn register<S: Data>(
        &mut self,
        name: &str,
        kind: &'static str,
        default: Option<S>,
        reduce: Option<ReduceFn<S>>,
    ) -> Result<u32> {
        if let Some(&id) = self.by_name.get(name) {
            // State restored before its registration arrives as bytes: decode it now.
            if let Some(raw) = self.tables[id as usize]
                .as_any_mut()
                .downcast_mut::<RawTable>()
            {
                let mut typed = Table::<S> {
                    name: name.to_string(),
                    kind,
                    values: Vec::new(),
                    default,
                    reduce,
                };
                for (slot, v) in std::mem::take(&mut raw.values).into_iter().enumerate() {
                    if let Some(bytes) = v {
                        typed.restore_slot(slot as u32, &bytes)?;
                    }
                }
                self.tables[id as usize] = Box::new(typed);
                return Ok(id);
            }
            let t = &self.tables[id as usize];
            if t.as_any().downcast_ref::<Table<S>>().is_none() || t.kind() != kind {
                crate::bail!(
                    "state '{name}' is already registered as {} state of another type",
                    t.kind()
                );
            }
            return Ok(id);
        }
        let id = self.tables.len() as u32;
        self.tables.push(Box::new(Table::<S> {
            name: name.to_string(),
            kind,
            values: Vec::new(),
            default,
            reduce,
        }));
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// Names of the registered states, in id order.
    pub fn names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name().to_string()).collect()
    }

    #[inline]
    pub(crate) fn table<S: 'static>(&self, id: u32) -> Result<&Table<S>> {
        if id == UNBOUND {
            crate::bail!("state handle used before it was registered in open()");
        }
        let t = &self.tables[id as usize];
        t.as_any().downcast_ref::<Table<S>>().ok_or_else(|| {
            crate::anyhow!("state '{}' was registered with a different type", t.name())
        })
    }

    #[inline]
    pub(crate) fn table_mut<S: 'static>(&mut self, id: u32, slot: u32) -> Result<&mut Table<S>> {
        if id == UNBOUND {
            crate::bail!("state handle used before it was registered in open()");
        }
        self.mark_dirty(slot);
        let t = &mut self.tables[id as usize];
        if t.as_any().is::<Table<S>>() {
            Ok(t.as_any_mut()
                .downcast_mut::<Table<S>>()
                .expect("checked type"))
        } else {
            Err(crate::anyhow!(
                "state '{}' was registered with a different type",
                t.name()
            ))
        }
    }

    #[inline]
    pub(crate) fn mark_dirty(&mut self, slot: u32) {
        mark(&mut self.dirty_mark, &mut self.dirty, slot);
    }

    fn table_for_restore(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = self.tables.len() as u32;
        self.tables.push(Box::new(RawTable {
            name: name.to_string(),
            values: Vec::new(),
        }));
        self.by_name.insert(name.to_string(), id);
        id
    }
}

#[inline]
fn mark(dirty_mark: &mut Vec<bool>, dirty: &mut Vec<u32>, slot: u32) {
    let s = slot as usize;
    if s >= dirty_mark.len() {
        dirty_mark.resize(s + 1, false);
    }
    if !dirty_mark[s] {
        dirty_mark[s] = true;
        dirty.push(slot);
    }
}

/// Maps keys to dense slots. Lookups use the key's stable hash, computed once before the
/// exchange and carried with the record, so a key is never hashed twice.
pub(crate) struct KeyIndex<K> {
    table: HashTable<u32>,
    pub(crate) keys: Vec<K>,
    hashes: Vec<u64>,
}

impl<K: Key> KeyIndex<K> {
    fn new() -> Self {
        KeyIndex {
            table: HashTable::new(),
            keys: Vec::new(),
            hashes: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn slot(&mut self, hash: u64, key: K) -> u32 {
        let keys = &self.keys;
        if let Some(&s) = self.table.find(hash, |&s| keys[s as usize] == key) {
            return s;
        }
        let s = self.keys.len() as u32;
        self.keys.push(key);
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, s, |&s| hashes[s as usize]);
        s
    }
}

/// The keyed state of one operator instance, scoped to the key of the current record.
///
/// Passed to [`crate::api::functions::KeyedFlatMapFunction::flat_map`]; state handles read
/// and write the current key's values through it.
pub struct KeyedContext<K> {
    pub(crate) registry: StateRegistry,
    pub(crate) index: KeyIndex<K>,
    pub(crate) current: u32,
    pub(crate) max_parallelism: u32,
}

impl<K: Key> KeyedContext<K> {
    pub(crate) fn new(max_parallelism: u32) -> Self {
        KeyedContext {
            registry: StateRegistry::default(),
            index: KeyIndex::new(),
            current: 0,
            max_parallelism,
        }
    }

    /// The key of the record being processed.
    pub fn current_key(&self) -> &K {
        &self.index.keys[self.current as usize]
    }

    /// Makes `key` current; returns its slot.
    #[inline]
    pub(crate) fn set_current(&mut self, hash: u64, key: K) -> u32 {
        self.current = self.index.slot(hash, key);
        self.current
    }

    /// Runs `f` for every `(hash, key, value)` with the key made current and its slot marked
    /// dirty, resolving the typed table `id` once for the whole batch instead of per record.
    /// Used by the built-in aggregations, whose only state is that table.
    #[inline]
    pub(crate) fn for_each_in_table<S: 'static, R>(
        &mut self,
        id: u32,
        records: impl Iterator<Item = (u64, K, R)>,
        mut f: impl FnMut(u32, &mut Table<S>, R),
    ) -> Result<()> {
        if id == UNBOUND {
            crate::bail!("state handle used before it was registered in open()");
        }
        let StateRegistry {
            tables,
            dirty_mark,
            dirty,
            ..
        } = &mut self.registry;
        let t = &mut tables[id as usize];
        if !t.as_any().is::<Table<S>>() {
            crate::bail!("state '{}' was registered with a different type", t.name());
        }
        let table = t
            .as_any_mut()
            .downcast_mut::<Table<S>>()
            .expect("checked type");
        for (hash, key, value) in records {
            let slot = self.index.slot(hash, key);
            self.current = slot;
            mark(dirty_mark, dirty, slot);
            f(slot, table, value);
        }
        Ok(())
    }

    /// Decodes one snapshot entry into the registered state types, tallying per state name
    /// `(entries, registered, first error)` instead of failing (`floe savepoint check`).
    pub(crate) fn check_entry(
        &mut self,
        names: &[String],
        key_bytes: &[u8],
        values: &[Option<Vec<u8>>],
        tally: &mut std::collections::BTreeMap<String, (u64, bool, Option<String>)>,
    ) {
        let key: Result<K> = decode_value(key_bytes);
        for (name, v) in names.iter().zip(values) {
            let Some(bytes) = v else { continue };
            let id = self.registry.table_for_restore(name);
            let t = &mut self.registry.tables[id as usize];
            let registered = t.kind() != "unregistered";
            let e = tally.entry(name.clone()).or_insert((0, registered, None));
            e.0 += 1;
            if e.2.is_some() {
                continue;
            }
            match &key {
                Err(err) => e.2 = Some(format!("key: {err}")),
                Ok(_) => {
                    if let Err(err) = t.restore_slot(0, bytes) {
                        e.2 = Some(format!("{err:#}"));
                    }
                }
            }
        }
    }

    /// Number of keys that ever had state in this instance.
    pub fn key_count(&self) -> usize {
        self.index.keys.len()
    }

    /// Serializes every key changed since the last call; clears the dirty set.
    pub(crate) fn take_delta(&mut self) -> Result<Vec<DeltaEntry>> {
        let reg = &mut self.registry;
        let mut out = Vec::with_capacity(reg.dirty.len());
        let mut buf = Vec::new();
        for &slot in &reg.dirty {
            reg.dirty_mark[slot as usize] = false;
            let key = &self.index.keys[slot as usize];
            let mut key_bytes = Vec::new();
            encode_value(key, &mut key_bytes)?;
            let hash = self.index.hashes[slot as usize];
            let mut values = Vec::with_capacity(reg.tables.len());
            for t in &reg.tables {
                buf.clear();
                values.push(if t.encode_slot(slot, &mut buf)? {
                    Some(buf.clone())
                } else {
                    None
                });
            }
            out.push(DeltaEntry {
                key_group: crate::state::keygroup::key_group_for_hash(hash, self.max_parallelism),
                key: key_bytes,
                values,
            });
        }
        reg.dirty.clear();
        Ok(out)
    }

    /// Restores one entry of a snapshot. `names[i]` is the state name of `values[i]`.
    /// The restored key is marked dirty so that the first checkpoint after a restore
    /// carries the full state to the snapshot writer.
    pub(crate) fn restore_entry(
        &mut self,
        names: &[String],
        key_bytes: &[u8],
        values: &[Option<Vec<u8>>],
    ) -> Result<()> {
        let key: K = decode_value(key_bytes).map_err(|e| crate::anyhow!("key: {e}"))?;
        let hash = crate::state::keygroup::KeyEncoder::default().hash(&key);
        let slot = self.index.slot(hash, key);
        for (name, v) in names.iter().zip(values) {
            if let Some(bytes) = v {
                let id = self.registry.table_for_restore(name);
                self.registry.tables[id as usize].restore_slot(slot, bytes)?;
            }
        }
        self.registry.mark_dirty(slot);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::functions::{RuntimeContext, TaskInfo};
    use crate::state::{keygroup::KeyEncoder, ValueStateDescriptor};

    fn info() -> TaskInfo {
        TaskInfo {
            task_name: "t".into(),
            subtask_index: 0,
            parallelism: 1,
            attempt_number: 0,
            max_parallelism: 128,
        }
    }

    #[test]
    fn value_state_default_update_clear_and_delta_roundtrip() {
        let mut ctx = KeyedContext::<String>::new(128);
        let i = info();
        let st = {
            let mut rc = RuntimeContext {
                info: &i,
                registry: Some(&mut ctx.registry),
            };
            ValueStateDescriptor::<(u64, u64)>::new("average")
                .with_default((0, 0))
                .register(&mut rc)
                .unwrap()
        };
        let mut enc = KeyEncoder::default();
        let h = enc.hash(&"a".to_string());
        ctx.set_current(h, "a".to_string());
        assert_eq!(st.value(&ctx).unwrap(), (0, 0));
        st.update(&mut ctx, (1, 3)).unwrap();
        let h2 = enc.hash(&"b".to_string());
        ctx.set_current(h2, "b".to_string());
        st.update(&mut ctx, (2, 8)).unwrap();
        st.clear(&mut ctx).unwrap();
        let delta = ctx.take_delta().unwrap();
        assert_eq!(delta.len(), 2);
        assert!(ctx.take_delta().unwrap().is_empty());

        let mut restored = KeyedContext::<String>::new(128);
        let names = vec!["average".to_string()];
        for d in &delta {
            restored.restore_entry(&names, &d.key, &d.values).unwrap();
        }
        let st2 = {
            let mut rc = RuntimeContext {
                info: &i,
                registry: Some(&mut restored.registry),
            };
            ValueStateDescriptor::<(u64, u64)>::new("average").register(&mut rc)
        };
        // Restored before registration: the bytes are decoded on registration.
        let st2 = st2.unwrap();
        let h = enc.hash(&"a".to_string());
        restored.set_current(h, "a".to_string());
        assert_eq!(st2.value(&restored).unwrap(), Some((1, 3)));
        let h2 = enc.hash(&"b".to_string());
        restored.set_current(h2, "b".to_string());
        assert_eq!(st2.value(&restored).unwrap(), None);
    }

    #[test]
    fn unbound_handle_is_an_error_not_a_panic() {
        let ctx = KeyedContext::<String>::new(128);
        let st: crate::state::ValueState<u64> = Default::default();
        assert!(st.value(&ctx).is_err());
    }
}
