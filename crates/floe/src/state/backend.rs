//! The in-memory keyed state backend: a key index plus one table per state name.

use super::ttl::{self, TtlParams, TtlStored, TtlTable, TtlTimeProvider};
use super::{decode_value, encode_value, ReduceFn, UNBOUND};
use crate::api::data::{Data, Key};
use crate::Result;
use hashbrown::HashTable;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// Restores one slot from snapshot bytes; `now` is the restoring process's TTL clock.
    fn restore_slot(&mut self, slot: u32, bytes: &[u8], now: i64) -> Result<()>;
    /// TTL tables: one incremental cleanup step (run for every record when configured).
    fn ttl_cleanup_step(&self, _now: i64) {}
    /// TTL tables, at a snapshot: the full-snapshot cleanup, and every slot changed through
    /// a read reported to `dirty` so that the delta carries it.
    fn ttl_before_snapshot(&mut self, _now: i64, _dirty: &mut dyn FnMut(u32)) {}
    /// Makes room for `slots` keys and tells where their values lie.
    fn slots_view(&mut self, _slots: usize) -> SlotsView {
        SlotsView::EMPTY
    }
}

/// Where a table's per-key values lie, for prefetching the state of a record a few records
/// ahead of the one being handled: keys are spread over the table, so without it every
/// record of a large key set waits for a cache miss.
#[derive(Clone, Copy)]
pub(crate) struct SlotsView {
    base: *const u8,
    stride: usize,
    len: usize,
}

impl SlotsView {
    const EMPTY: SlotsView = SlotsView {
        base: std::ptr::null(),
        stride: 0,
        len: 0,
    };

    /// Starts loading the value of `slot` into the cache. The view may be stale (the table
    /// grew since): a prefetch never faults, it is only wasted.
    #[inline]
    pub(crate) fn prefetch(&self, slot: u32) {
        let s = slot as usize;
        if s < self.len {
            // A value may straddle two cache lines (a key's few windows take 112 bytes).
            let first = self.base.wrapping_add(s * self.stride);
            prefetch_read(first);
            if self.stride > 1 {
                prefetch_read(first.wrapping_add(self.stride - 1));
            }
        }
    }
}

#[inline]
fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86_64, and a prefetch reads nothing the program sees: it
        // is a hint that never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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
    fn slots_view(&mut self, slots: usize) -> SlotsView {
        if self.values.len() < slots {
            self.values.resize_with(slots, || None);
        }
        SlotsView {
            base: self.values.as_ptr().cast(),
            stride: std::mem::size_of::<Option<S>>(),
            len: self.values.len(),
        }
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
    fn restore_slot(&mut self, slot: u32, bytes: &[u8], _now: i64) -> Result<()> {
        if ttl::is_ttl_encoded(bytes) {
            crate::bail!(
                "{} state '{}' was written with state TTL enabled and cannot be restored without it (as in Flink): enable the TTL on its descriptor again",
                self.kind,
                self.name
            );
        }
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
    fn restore_slot(&mut self, slot: u32, bytes: &[u8], _now: i64) -> Result<()> {
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
    /// The TTL clock; `None` = the system clock (no dynamic dispatch outside tests).
    clock: Option<Arc<dyn TtlTimeProvider>>,
    /// Ids of the tables with TTL (visited at each snapshot).
    ttl_tables: Vec<u32>,
    /// Ids of the TTL tables cleaned up on every record.
    per_record_cleanup: Vec<u32>,
}

impl StateRegistry {
    pub(crate) fn register<S: Data>(
        &mut self,
        name: &str,
        kind: &'static str,
        default: Option<S>,
        reduce: Option<ReduceFn<S>>,
    ) -> Result<u32> {
        self.install(
            name,
            kind,
            Table::<S> {
                name: name.to_string(),
                kind,
                values: Vec::new(),
                default,
                reduce,
            },
        )
    }

    /// Registers a state with TTL, stored as `S` (values wrapped with their timestamps).
    pub(crate) fn register_ttl<S: TtlStored>(
        &mut self,
        name: &str,
        kind: &'static str,
        params: TtlParams,
        default: Option<S::Elem>,
        reduce: Option<ReduceFn<S::Elem>>,
    ) -> Result<u32> {
        let id = self.install(
            name,
            kind,
            TtlTable::<S>::new(name, kind, params, default, reduce),
        )?;
        if !self.ttl_tables.contains(&id) {
            self.ttl_tables.push(id);
            if params.every_record {
                self.per_record_cleanup.push(id);
            }
        }
        Ok(id)
    }

    /// Adds `fresh` under `name`, or returns the id of the same state registered before;
    /// state restored before its registration arrives as bytes and is decoded now.
    fn install<T: StateTable + 'static>(
        &mut self,
        name: &str,
        kind: &'static str,
        mut fresh: T,
    ) -> Result<u32> {
        if let Some(&id) = self.by_name.get(name) {
            let now = self.now();
            let t = &mut self.tables[id as usize];
            if let Some(raw) = t.as_any_mut().downcast_mut::<RawTable>() {
                for (slot, v) in std::mem::take(&mut raw.values).into_iter().enumerate() {
                    if let Some(bytes) = v {
                        fresh.restore_slot(slot as u32, &bytes, now)?;
                    }
                }
                *t = Box::new(fresh);
                return Ok(id);
            }
            if !t.as_any().is::<T>() || t.kind() != kind {
                crate::bail!(
                    "state '{name}' is already registered as {} state of another type",
                    t.kind()
                );
            }
            return Ok(id);
        }
        let id = self.tables.len() as u32;
        self.tables.push(Box::new(fresh));
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// The TTL clock's time in epoch milliseconds.
    #[inline]
    pub(crate) fn now(&self) -> i64 {
        match &self.clock {
            None => ttl::system_now(),
            Some(c) => c.current_timestamp(),
        }
    }

    /// The plain table of state `id`, or `None` when the state has TTL (the handle's
    /// methods then take the TTL path). One type check, as before TTL existed.
    #[inline]
    pub(crate) fn plain<S: 'static>(&self, id: u32) -> Result<Option<&Table<S>>> {
        if id == UNBOUND {
            crate::bail!("state handle used before it was registered in open()");
        }
        Ok(self.tables[id as usize].as_any().downcast_ref::<Table<S>>())
    }

    /// Like [`Self::plain`] for a write of `slot`, which marks the slot dirty.
    #[inline]
    pub(crate) fn plain_mut<S: 'static>(
        &mut self,
        id: u32,
        slot: u32,
    ) -> Result<Option<&mut Table<S>>> {
        if id == UNBOUND {
            crate::bail!("state handle used before it was registered in open()");
        }
        self.mark_dirty(slot);
        Ok(self.tables[id as usize]
            .as_any_mut()
            .downcast_mut::<Table<S>>())
    }

    /// The TTL table of state `id` (after [`Self::plain`] returned `None`).
    pub(crate) fn ttl<S: TtlStored>(&self, id: u32) -> Result<&TtlTable<S>> {
        let t = &self.tables[id as usize];
        t.as_any().downcast_ref::<TtlTable<S>>().ok_or_else(|| {
            crate::anyhow!("state '{}' was registered with a different type", t.name())
        })
    }

    /// `run_cleanup_for_every_record`: one cleanup step of every such TTL state. Kept out
    /// of line so that `set_current` stays small for jobs without it.
    #[inline(never)]
    fn cleanup_for_record(&self) {
        let now = self.now();
        for &id in &self.per_record_cleanup {
            self.tables[id as usize].ttl_cleanup_step(now);
        }
    }

    /// Names of the registered states, in id order.
    pub fn names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name().to_string()).collect()
    }

    /// Where the values of state `id` lie, with room made for `slots` keys (see
    /// [`SlotsView`]); an empty view for an unregistered id.
    pub(crate) fn slots_view(&mut self, id: u32, slots: usize) -> SlotsView {
        match self.tables.get_mut(id as usize) {
            Some(t) => t.slots_view(slots),
            None => SlotsView::EMPTY,
        }
    }

    /// The plain table of state `id` (for the runtime's own states, which have no TTL).
    #[inline]
    #[allow(dead_code)] // used by the runtime's hidden keyed states
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
pub(crate) fn mark(dirty_mark: &mut Vec<bool>, dirty: &mut Vec<u32>, slot: u32) {
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
        match self.find(hash, &key) {
            Some(s) => s,
            None => self.insert(hash, key),
        }
    }

    /// [`Self::slot`] for a key that stays with its record (cloned only when new).
    #[inline]
    pub(crate) fn slot_of(&mut self, hash: u64, key: &K) -> u32 {
        match self.find(hash, key) {
            Some(s) => s,
            None => self.insert(hash, key.clone()),
        }
    }

    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        let keys = &self.keys;
        self.table
            .find(hash, |&s| keys[s as usize] == *key)
            .copied()
    }

    fn insert(&mut self, hash: u64, key: K) -> u32 {
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
        let slot = self.index.slot(hash, key);
        self.set_slot(slot);
        slot
    }

    /// Makes the key of `slot` (from [`KeyIndex::slot_of`]) current.
    #[inline]
    pub(crate) fn set_slot(&mut self, slot: u32) {
        self.current = slot;
        // Flink runs this cleanup when the key context changes, i.e. for every record.
        if !self.registry.per_record_cleanup.is_empty() {
            self.registry.cleanup_for_record();
        }
    }

    /// Replaces the clock state TTL is measured with (the system clock by default).
    #[allow(dead_code)] // the seam for deterministic tests
    pub(crate) fn set_ttl_time_provider(&mut self, clock: Arc<dyn TtlTimeProvider>) {
        self.registry.clock = Some(clock);
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
        let now = self.registry.now();
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
                    if let Err(err) = t.restore_slot(0, bytes, now) {
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
        if !reg.ttl_tables.is_empty() {
            let now = reg.now();
            let StateRegistry {
                tables,
                dirty_mark,
                dirty,
                ttl_tables,
                ..
            } = &mut *reg;
            for &id in ttl_tables.iter() {
                tables[id as usize]
                    .ttl_before_snapshot(now, &mut |slot| mark(dirty_mark, dirty, slot));
            }
        }
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
        // Only TTL tables read the clock; plain restores skip it.
        let now = if self.registry.ttl_tables.is_empty() {
            0
        } else {
            self.registry.now()
        };
        for (name, v) in names.iter().zip(values) {
            if let Some(bytes) = v {
                let id = self.registry.table_for_restore(name);
                self.registry.tables[id as usize].restore_slot(slot, bytes, now)?;
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
        TaskInfo::single("t")
    }

    #[test]
    fn keys_resolved_ahead_keep_their_slots_and_tables_make_room_for_them() {
        let mut ctx = KeyedContext::<String>::new(128);
        let i = info();
        let st = ValueStateDescriptor::<u64>::new("v")
            .register(&mut RuntimeContext {
                info: &i,
                registry: Some(&mut ctx.registry),
            })
            .unwrap();
        let mut enc = KeyEncoder::default();
        let keys: Vec<(u64, String)> = ["a", "b", "a", "c"]
            .iter()
            .map(|k| (enc.hash(&k.to_string()), k.to_string()))
            .collect();
        let slots: Vec<u32> = keys.iter().map(|(h, k)| ctx.index.slot_of(*h, k)).collect();
        assert_eq!(slots, vec![0, 1, 0, 2]);
        // Moving the key in resolves to the slot looked up ahead of it.
        assert_eq!(ctx.set_current(keys[3].0, keys[3].1.clone()), 2);
        let view = ctx.registry.slots_view(st.id, ctx.index.keys.len());
        assert_eq!(view.len, 3);
        assert_eq!(view.stride, std::mem::size_of::<Option<u64>>());
        view.prefetch(1);
        view.prefetch(99); // beyond the table: nothing
        ctx.set_slot(1);
        st.update(&mut ctx, 7).unwrap();
        assert_eq!(ctx.current_key(), "b");
        assert_eq!(st.value(&ctx).unwrap(), Some(7));
        assert_eq!(ctx.registry.slots_view(UNBOUND, 3).len, 0);
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

    /// A clock the test moves by hand.
    #[derive(Clone, Default)]
    struct ManualClock(Arc<std::sync::atomic::AtomicI64>);
    impl TtlTimeProvider for ManualClock {
        fn current_timestamp(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }
    impl ManualClock {
        fn set(&self, ms: i64) {
            self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn ctx_with_clock() -> (KeyedContext<String>, ManualClock) {
        let mut ctx = KeyedContext::<String>::new(128);
        let clock = ManualClock::default();
        ctx.set_ttl_time_provider(Arc::new(clock.clone()));
        (ctx, clock)
    }

    fn open<T>(ctx: &mut KeyedContext<String>, f: impl FnOnce(&mut RuntimeContext<'_>) -> T) -> T {
        let i = info();
        let mut rc = RuntimeContext {
            info: &i,
            registry: Some(&mut ctx.registry),
        };
        f(&mut rc)
    }

    fn key(ctx: &mut KeyedContext<String>, k: &str) {
        let h = KeyEncoder::default().hash(&k.to_string());
        ctx.set_current(h, k.to_string());
    }

    fn ttl(ms: u64) -> crate::state::ttl::StateTtlConfigBuilder {
        crate::state::StateTtlConfig::new_builder(std::time::Duration::from_millis(ms))
    }

    /// Delta as (key, decoded stored value of state 0) sorted by key.
    fn delta_of<S: serde::de::DeserializeOwned>(
        ctx: &mut KeyedContext<String>,
    ) -> Vec<(String, Option<S>)> {
        let mut v: Vec<(String, Option<S>)> = ctx
            .take_delta()
            .unwrap()
            .into_iter()
            .map(|d| {
                let k: String = decode_value(&d.key).unwrap();
                let val = d.values[0].as_ref().map(|b| {
                    assert!(ttl::is_ttl_encoded(b), "TTL values carry the TTL tag");
                    decode_value::<S>(&b[5..]).unwrap()
                });
                (k, val)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    type Tv<V> = crate::state::ttl::TtlValue<V>;
    fn tv<V>(user_value: V, last_access_timestamp: i64) -> Tv<V> {
        Tv {
            user_value,
            last_access_timestamp,
        }
    }

    #[test]
    fn ttl_value_state_expires_by_the_injected_clock_and_reads_mark_refreshes_dirty() {
        let (mut ctx, clock) = ctx_with_clock();
        let st = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("count")
                .with_default(0)
                .enable_time_to_live(ttl(1_000).update_ttl_on_read_and_write().build())
                .register(rc)
                .unwrap()
        });
        clock.set(10_000);
        key(&mut ctx, "a");
        st.update(&mut ctx, 5).unwrap();
        assert_eq!(
            delta_of::<Tv<u32>>(&mut ctx),
            vec![("a".into(), Some(tv(5, 10_000)))]
        );
        clock.set(10_999);
        // A read through a shared borrow refreshes the timestamp and reaches the delta.
        assert_eq!(st.value(&ctx).unwrap(), 5);
        assert_eq!(
            delta_of::<Tv<u32>>(&mut ctx),
            vec![("a".into(), Some(tv(5, 10_999)))]
        );
        clock.set(11_999);
        assert_eq!(st.value(&ctx).unwrap(), 0, "expired: the default");
        assert_eq!(delta_of::<Tv<u32>>(&mut ctx), vec![("a".into(), None)]);
    }

    #[test]
    fn ttl_list_and_map_expire_per_element_through_handles() {
        let (mut ctx, clock) = ctx_with_clock();
        let (list, map) = open(&mut ctx, |rc| {
            let cfg = ttl(1_000).build();
            (
                crate::state::ListStateDescriptor::<u32>::new("seen")
                    .enable_time_to_live(cfg)
                    .register(rc)
                    .unwrap(),
                crate::state::MapStateDescriptor::<String, u32>::new("by-name")
                    .enable_time_to_live(cfg)
                    .register(rc)
                    .unwrap(),
            )
        });
        key(&mut ctx, "k");
        list.add(&mut ctx, 1).unwrap();
        map.put(&mut ctx, "x".into(), 1).unwrap();
        clock.set(500);
        list.add_all(&mut ctx, [2, 3]).unwrap();
        map.put(&mut ctx, "y".into(), 2).unwrap();
        clock.set(1_000);
        assert_eq!(list.get(&ctx).unwrap(), vec![2, 3]);
        assert_eq!(map.entries(&ctx).unwrap(), vec![("y".to_string(), 2)]);
        assert!(!map.contains(&ctx, &"x".to_string()).unwrap());
        clock.set(1_500);
        assert!(list.get(&ctx).unwrap().is_empty());
        assert!(map.is_empty(&ctx).unwrap());
        assert_eq!(ctx.take_delta().unwrap()[0].values, vec![None, None]);
    }

    #[test]
    fn expired_entries_are_never_restored_and_live_ones_keep_their_timestamp() {
        let (mut ctx, clock) = ctx_with_clock();
        let cfg = ttl(1_000).build();
        let st = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("count")
                .enable_time_to_live(cfg)
                .register(rc)
                .unwrap()
        });
        key(&mut ctx, "a");
        st.update(&mut ctx, 1).unwrap();
        clock.set(900);
        key(&mut ctx, "b");
        st.update(&mut ctx, 2).unwrap();
        let delta = ctx.take_delta().unwrap();
        let names = vec!["count".to_string()];

        for register_first in [true, false] {
            let (mut r, rclock) = ctx_with_clock();
            rclock.set(1_500);
            let reg = |r: &mut KeyedContext<String>| {
                open(r, |rc| {
                    ValueStateDescriptor::<u32>::new("count")
                        .enable_time_to_live(cfg)
                        .register(rc)
                        .unwrap()
                })
            };
            let mut st2 = None;
            if register_first {
                st2 = Some(reg(&mut r));
            }
            for d in &delta {
                r.restore_entry(&names, &d.key, &d.values).unwrap();
            }
            let st2 = st2.unwrap_or_else(|| reg(&mut r));
            key(&mut r, "a");
            assert_eq!(st2.value(&r).unwrap(), None, "a expired at 1000");
            key(&mut r, "b");
            assert_eq!(st2.value(&r).unwrap(), Some(2));
            assert_eq!(
                delta_of::<Tv<u32>>(&mut r),
                vec![("a".into(), None), ("b".into(), Some(tv(2, 900)))],
                "restored keys go to the first checkpoint; the expired one as removed"
            );
        }
    }

    #[test]
    fn ttl_on_or_off_across_a_restore_is_a_one_line_error_naming_the_state() {
        let (mut ctx, _clock) = ctx_with_clock();
        let with = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("count")
                .enable_time_to_live(ttl(1_000).build())
                .register(rc)
                .unwrap()
        });
        key(&mut ctx, "a");
        with.update(&mut ctx, 1).unwrap();
        let ttl_delta = ctx.take_delta().unwrap();
        let mut plain_ctx = KeyedContext::<String>::new(128);
        let plain = open(&mut plain_ctx, |rc| {
            ValueStateDescriptor::<u32>::new("count")
                .register(rc)
                .unwrap()
        });
        key(&mut plain_ctx, "a");
        plain.update(&mut plain_ctx, 1).unwrap();
        let plain_delta = plain_ctx.take_delta().unwrap();
        let names = vec!["count".to_string()];

        let mut r = KeyedContext::<String>::new(128);
        open(&mut r, |rc| {
            ValueStateDescriptor::<u32>::new("count").register(rc)
        })
        .unwrap();
        let e = r
            .restore_entry(&names, &ttl_delta[0].key, &ttl_delta[0].values)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "value state 'count' was written with state TTL enabled and cannot be restored without it (as in Flink): enable the TTL on its descriptor again");

        let (mut r, _c) = ctx_with_clock();
        open(&mut r, |rc| {
            ValueStateDescriptor::<u32>::new("count")
                .enable_time_to_live(ttl(1_000).build())
                .register(rc)
        })
        .unwrap();
        let e = r
            .restore_entry(&names, &plain_delta[0].key, &plain_delta[0].values)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "value state 'count' was written without state TTL and cannot be restored with TTL enabled (as in Flink): restore it without enable_time_to_live");
    }

    #[test]
    fn full_snapshot_cleanup_removes_expired_keys_from_the_next_delta() {
        for full in [true, false] {
            let (mut ctx, clock) = ctx_with_clock();
            let mut cfg = ttl(1_000).disable_cleanup_in_background();
            if full {
                cfg = cfg.cleanup_full_snapshot();
            }
            let st = open(&mut ctx, |rc| {
                ValueStateDescriptor::<u32>::new("v")
                    .enable_time_to_live(cfg.build())
                    .register(rc)
                    .unwrap()
            });
            for (k, at) in [("a", 0), ("b", 600)] {
                clock.set(at);
                key(&mut ctx, k);
                st.update(&mut ctx, 1).unwrap();
            }
            assert_eq!(ctx.take_delta().unwrap().len(), 2);
            clock.set(1_200);
            // No access touched "a": only the full-snapshot cleanup finds it.
            let d = delta_of::<Tv<u32>>(&mut ctx);
            if full {
                assert_eq!(d, vec![("a".into(), None)]);
            } else {
                assert_eq!(d, vec![]);
            }
        }
    }

    #[test]
    fn incremental_cleanup_checks_the_next_keys_per_access_and_marks_them_dirty() {
        let (mut ctx, clock) = ctx_with_clock();
        let st = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("v")
                .enable_time_to_live(ttl(1_000).cleanup_incrementally(2, false).build())
                .register(rc)
                .unwrap()
        });
        for k in ["a", "b", "c", "d"] {
            key(&mut ctx, k);
            st.update(&mut ctx, 1).unwrap();
        }
        ctx.take_delta().unwrap();
        // The four writes moved the cursor over slots 0, 1 0, 1 2: it points at d.
        clock.set(5_000);
        key(&mut ctx, "e");
        st.update(&mut ctx, 2).unwrap();
        assert_eq!(
            delta_of::<Tv<u32>>(&mut ctx),
            vec![
                ("a".into(), None),
                ("d".into(), None),
                ("e".into(), Some(tv(2, 5_000)))
            ],
            "the access checked d and, wrapping around, a"
        );
        let t = ctx.registry.ttl::<Tv<u32>>(st.id).unwrap();
        assert!(
            t.stored(1).is_some() && t.stored(2).is_some(),
            "b, c not checked yet"
        );
        // The next access, a read, checks b and c.
        assert_eq!(st.value(&ctx).unwrap(), Some(2));
        assert_eq!(
            delta_of::<Tv<u32>>(&mut ctx),
            vec![("b".into(), None), ("c".into(), None)]
        );
    }

    #[test]
    fn incremental_cleanup_for_every_record_runs_on_key_change_alone() {
        let (mut ctx, clock) = ctx_with_clock();
        let st = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("v")
                .enable_time_to_live(ttl(1_000).cleanup_incrementally(1, true).build())
                .register(rc)
                .unwrap()
        });
        key(&mut ctx, "a");
        st.update(&mut ctx, 1).unwrap();
        ctx.take_delta().unwrap();
        clock.set(1_000);
        key(&mut ctx, "b"); // a record of another key, no state access
        assert_eq!(delta_of::<Tv<u32>>(&mut ctx), vec![("a".into(), None)]);
    }

    #[test]
    fn a_disabled_ttl_config_registers_plain_state() {
        let mut ctx = KeyedContext::<String>::new(128);
        let st = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("v")
                .enable_time_to_live(crate::state::StateTtlConfig::DISABLED)
                .register(rc)
                .unwrap()
        });
        assert!(ctx.registry.plain::<u32>(st.id).unwrap().is_some());
        let e = open(&mut ctx, |rc| {
            ValueStateDescriptor::<u32>::new("w")
                .enable_time_to_live(ttl(0).build())
                .register(rc)
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("value state 'w': TTL is expected to be positive"),
            "{e}"
        );
    }

    #[test]
    fn unbound_handle_is_an_error_not_a_panic() {
        let ctx = KeyedContext::<String>::new(128);
        let st: crate::state::ValueState<u64> = Default::default();
        assert!(st.value(&ctx).is_err());
    }
}
