//! State time-to-live (Flink's `StateTtlConfig`): keyed state that expires a fixed time
//! after it was last written (or read).
//!
//! TTL is measured in processing time, wall-clock epoch milliseconds, as in Flink. A state
//! with TTL stores its value wrapped with the time of its last access (Flink's `TtlValue`): the whole value for value and reducing state, every element for list state,
//! every entry for map state. Reads check that timestamp, so what a read returns never
//! depends on whether a cleanup has run yet (under [`StateVisibility::NeverReturnExpired`]);
//! cleanups only reclaim memory and keep expired entries out of snapshots:
//!
//! - on read: an expired value a read comes across is removed;
//! - incrementally ([`StateTtlConfigBuilder::cleanup_incrementally`], on by default with 5
//!   keys per access as Flink's heap backend): every access to the state, and optionally
//!   every record, checks the next keys of a cursor over the state's keys;
//! - in full snapshots ([`StateTtlConfigBuilder::cleanup_full_snapshot`]): every checkpoint
//!   drops all expired entries before its delta is taken, so they leave the snapshot too;
//! - on restore: an entry expired by the restoring process's clock is never restored.
//!
//! The clock is the system clock unless a test sets a time provider (Flink's
//! `TtlTimeProvider`) on the operator's [`KeyedContext`](super::KeyedContext).

use super::backend::{mark, StateTable};
use super::{decode_value, encode_value, ReduceFn};
use crate::api::data::{Data, Key};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the last-access timestamp of a state value is refreshed (Flink's
/// `StateTtlConfig.UpdateType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateType {
    /// TTL is disabled: the state never expires (a descriptor given this config is plain
    /// state).
    Disabled,
    /// The timestamp is set when the value is created and on every write (the default).
    OnCreateAndWrite,
    /// Like `OnCreateAndWrite`, and every read refreshes it too.
    OnReadAndWrite,
}

/// Whether a read may return a value that expired but was not cleaned up yet (Flink's
/// `StateTtlConfig.StateVisibility`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateVisibility {
    /// An expired value is returned by the read that finds it before the cleanup removes it;
    /// that read removes it.
    ReturnExpiredIfNotCleanedUp,
    /// An expired value is never returned (the default).
    NeverReturnExpired,
}

/// Incremental cleanup settings (Flink's `StateTtlConfig.IncrementalCleanupStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IncrementalCleanupStrategy {
    cleanup_size: u32,
    run_cleanup_for_every_record: bool,
}

impl IncrementalCleanupStrategy {
    /// How many keys each cleanup step checks.
    pub fn cleanup_size(&self) -> u32 {
        self.cleanup_size
    }
    /// Whether every processed record also runs a cleanup step, besides every state access.
    pub fn run_cleanup_for_every_record(&self) -> bool {
        self.run_cleanup_for_every_record
    }
}

/// Flink's default for heap state when cleanup in background is on: 5 keys per access.
const DEFAULT_INCREMENTAL_CLEANUP: IncrementalCleanupStrategy = IncrementalCleanupStrategy {
    cleanup_size: 5,
    run_cleanup_for_every_record: false,
};

/// Which cleanups remove expired state (Flink's `StateTtlConfig.CleanupStrategies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CleanupStrategies {
    full_snapshot: bool,
    incremental: Option<IncrementalCleanupStrategy>,
    in_background: bool,
}

impl CleanupStrategies {
    /// Whether expired entries are removed before every snapshot is taken.
    pub fn is_cleanup_in_full_snapshot(&self) -> bool {
        self.full_snapshot
    }
    /// Whether the backend's default background cleanup is on (Flink's default).
    pub fn is_cleanup_in_background(&self) -> bool {
        self.in_background
    }
    /// The incremental cleanup in effect: the configured one, else Flink's default
    /// (5 keys per state access) while cleanup in background is on.
    pub fn incremental_cleanup_strategy(&self) -> Option<IncrementalCleanupStrategy> {
        self.incremental
            .or(self.in_background.then_some(DEFAULT_INCREMENTAL_CLEANUP))
    }
}

/// Time-to-live of keyed state (Flink's `StateTtlConfig`), enabled on a state descriptor
/// with `enable_time_to_live`.
///
/// ```
/// use floe::prelude::*;
/// use std::time::Duration;
///
/// let ttl = StateTtlConfig::new_builder(Duration::from_secs(60))
///     .set_update_type(UpdateType::OnReadAndWrite)
///     .set_state_visibility(StateVisibility::NeverReturnExpired)
///     .cleanup_incrementally(10, false)
///     .cleanup_full_snapshot()
///     .build();
/// assert_eq!(ttl.ttl(), Duration::from_secs(60));
/// let last_seen = ValueStateDescriptor::<u64>::new("last-seen").enable_time_to_live(ttl);
/// ```
///
/// TTL is in processing time; a TTL below one millisecond, or an incremental cleanup size
/// of 0, is refused when the state is registered. A state written with TTL cannot be
/// restored without it, nor the reverse (as in Flink); the TTL's duration and settings may
/// change between a snapshot and its restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateTtlConfig {
    update_type: UpdateType,
    state_visibility: StateVisibility,
    ttl: Duration,
    cleanup_strategies: CleanupStrategies,
}

impl StateTtlConfig {
    /// TTL switched off (Flink's `StateTtlConfig.DISABLED`).
    pub const DISABLED: StateTtlConfig = StateTtlConfig {
        update_type: UpdateType::Disabled,
        state_visibility: StateVisibility::NeverReturnExpired,
        ttl: Duration::MAX,
        cleanup_strategies: CleanupStrategies {
            full_snapshot: false,
            incremental: None,
            in_background: true,
        },
    };

    /// A builder for state that expires `ttl` after its last write.
    pub fn new_builder(ttl: Duration) -> StateTtlConfigBuilder {
        StateTtlConfigBuilder {
            update_type: UpdateType::OnCreateAndWrite,
            state_visibility: StateVisibility::NeverReturnExpired,
            ttl,
            full_snapshot: false,
            incremental: None,
            in_background: true,
        }
    }
    /// When the last-access timestamp is refreshed.
    pub fn update_type(&self) -> UpdateType {
        self.update_type
    }
    /// Whether expired values may be returned.
    pub fn state_visibility(&self) -> StateVisibility {
        self.state_visibility
    }
    /// The time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
    /// False for [`UpdateType::Disabled`].
    pub fn is_enabled(&self) -> bool {
        self.update_type != UpdateType::Disabled
    }
    /// The cleanups in effect.
    pub fn cleanup_strategies(&self) -> CleanupStrategies {
        self.cleanup_strategies
    }
}

/// Builds a [`StateTtlConfig`] (Flink's `StateTtlConfig.Builder`).
#[derive(Clone, Debug)]
pub struct StateTtlConfigBuilder {
    update_type: UpdateType,
    state_visibility: StateVisibility,
    ttl: Duration,
    full_snapshot: bool,
    incremental: Option<IncrementalCleanupStrategy>,
    in_background: bool,
}

impl StateTtlConfigBuilder {
    /// When the last-access timestamp is refreshed (default [`UpdateType::OnCreateAndWrite`]).
    pub fn set_update_type(mut self, update_type: UpdateType) -> Self {
        self.update_type = update_type;
        self
    }
    /// `set_update_type(UpdateType::OnCreateAndWrite)`.
    pub fn update_ttl_on_create_and_write(self) -> Self {
        self.set_update_type(UpdateType::OnCreateAndWrite)
    }
    /// `set_update_type(UpdateType::OnReadAndWrite)`.
    pub fn update_ttl_on_read_and_write(self) -> Self {
        self.set_update_type(UpdateType::OnReadAndWrite)
    }
    /// Whether expired values may be returned (default
    /// [`StateVisibility::NeverReturnExpired`]).
    pub fn set_state_visibility(mut self, visibility: StateVisibility) -> Self {
        self.state_visibility = visibility;
        self
    }
    /// `set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)`.
    pub fn return_expired_if_not_cleaned_up(self) -> Self {
        self.set_state_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp)
    }
    /// `set_state_visibility(StateVisibility::NeverReturnExpired)`.
    pub fn never_return_expired(self) -> Self {
        self.set_state_visibility(StateVisibility::NeverReturnExpired)
    }
    /// Replaces the time to live.
    pub fn set_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// Removes every expired entry before each snapshot, so none is written into a
    /// checkpoint or savepoint. Costs a pass over the state's keys per checkpoint.
    pub fn cleanup_full_snapshot(mut self) -> Self {
        self.full_snapshot = true;
        self
    }
    /// Every access to the state checks the next `cleanup_size` keys and removes what
    /// expired; with `run_cleanup_for_every_record`, every processed record does too.
    pub fn cleanup_incrementally(
        mut self,
        cleanup_size: u32,
        run_cleanup_for_every_record: bool,
    ) -> Self {
        self.incremental = Some(IncrementalCleanupStrategy {
            cleanup_size,
            run_cleanup_for_every_record,
        });
        self
    }
    /// Turns off the default background cleanup (the default incremental cleanup of
    /// 5 keys per access); explicitly configured cleanups stay.
    pub fn disable_cleanup_in_background(mut self) -> Self {
        self.in_background = false;
        self
    }
    /// The configuration.
    pub fn build(self) -> StateTtlConfig {
        StateTtlConfig {
            update_type: self.update_type,
            state_visibility: self.state_visibility,
            ttl: self.ttl,
            cleanup_strategies: CleanupStrategies {
                full_snapshot: self.full_snapshot,
                incremental: self.incremental,
                in_background: self.in_background,
            },
        }
    }
}

/// The clock TTL is measured with, in epoch milliseconds (Flink's `TtlTimeProvider`).
/// Without one set on the [`KeyedContext`](super::KeyedContext), the system clock.
pub(crate) trait TtlTimeProvider: Send + Sync {
    fn current_timestamp(&self) -> i64;
}

/// The system clock in epoch milliseconds.
#[inline]
pub(crate) fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A state value and the processing time of its last access (Flink's `TtlValue`); what a
/// TTL state stores, so `floe savepoint inspect --dump` shows both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TtlValue<V> {
    pub(crate) user_value: V,
    pub(crate) last_access_timestamp: i64,
}

impl<V> TtlValue<V> {
    #[inline]
    fn new(user_value: V, now: i64) -> Self {
        TtlValue {
            user_value,
            last_access_timestamp: now,
        }
    }
}

/// The CBOR tag (an unassigned number, "FLTT") in front of every stored value of a TTL
/// state. It tells TTL state from plain state in a snapshot without the job's types, so
/// restoring one as the other is a clear error instead of a wrong decode.
const TTL_TAG_PREFIX: [u8; 5] = [0xDA, 0x46, 0x4C, 0x54, 0x54];

/// True when snapshot bytes were written by a TTL state.
#[inline]
pub(crate) fn is_ttl_encoded(bytes: &[u8]) -> bool {
    bytes.starts_with(&TTL_TAG_PREFIX)
}

/// The per-state TTL settings resolved for fast checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TtlParams {
    ttl_ms: i64,
    update_on_read: bool,
    return_expired: bool,
    full_snapshot: bool,
    /// Keys checked per access; 0 = no incremental cleanup.
    incremental: usize,
    pub(crate) every_record: bool,
}

impl TtlParams {
    /// Checks `cfg` for state `name`; `None` when TTL is disabled.
    pub(crate) fn resolve(cfg: &StateTtlConfig, kind: &str, name: &str) -> Result<Option<Self>> {
        if !cfg.is_enabled() {
            return Ok(None);
        }
        let ttl_ms = i64::try_from(cfg.ttl.as_millis()).unwrap_or(i64::MAX);
        if ttl_ms <= 0 {
            crate::bail!(
                "{kind} state '{name}': TTL is expected to be positive (at least 1 ms), got {:?}",
                cfg.ttl
            );
        }
        let inc = cfg.cleanup_strategies.incremental_cleanup_strategy();
        if inc.is_some_and(|i| i.cleanup_size == 0) {
            crate::bail!(
                "{kind} state '{name}': the number of incrementally cleaned up state entries should be positive"
            );
        }
        Ok(Some(TtlParams {
            ttl_ms,
            update_on_read: cfg.update_type == UpdateType::OnReadAndWrite,
            return_expired: cfg.state_visibility == StateVisibility::ReturnExpiredIfNotCleanedUp,
            full_snapshot: cfg.cleanup_strategies.full_snapshot,
            incremental: inc.map_or(0, |i| i.cleanup_size as usize),
            every_record: inc.is_some_and(|i| i.run_cleanup_for_every_record),
        }))
    }

    /// Flink's `TtlUtils.expired`: the expiration time (saturating) has been reached.
    #[inline]
    fn expired(&self, last_access: i64, now: i64) -> bool {
        last_access.saturating_add(self.ttl_ms) <= now
    }
}

/// What purging expired parts did to a stored value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Purged {
    Kept,
    Changed,
    Gone,
}

/// A stored TTL value shape: one timestamp (value, reducing), one per element (list) or
/// one per entry (map).
pub(crate) trait TtlStored: Data {
    /// The user's value type (the element of a list, the value of a map).
    type Elem: Data;
    /// Removes what expired by `now`.
    fn purge(&mut self, p: &TtlParams, now: i64) -> Purged;
}

impl<V: Data> TtlStored for TtlValue<V> {
    type Elem = V;
    fn purge(&mut self, p: &TtlParams, now: i64) -> Purged {
        if p.expired(self.last_access_timestamp, now) {
            Purged::Gone
        } else {
            Purged::Kept
        }
    }
}

impl<V: Data> TtlStored for Vec<TtlValue<V>> {
    type Elem = V;
    fn purge(&mut self, p: &TtlParams, now: i64) -> Purged {
        let before = self.len();
        self.retain(|e| !p.expired(e.last_access_timestamp, now));
        if self.is_empty() {
            Purged::Gone
        } else if self.len() != before {
            Purged::Changed
        } else {
            Purged::Kept
        }
    }
}

impl<UK: Key + Hash, UV: Data> TtlStored for HashMap<UK, TtlValue<UV>> {
    type Elem = UV;
    fn purge(&mut self, p: &TtlParams, now: i64) -> Purged {
        let before = self.len();
        self.retain(|_, e| !p.expired(e.last_access_timestamp, now));
        if self.is_empty() {
            Purged::Gone
        } else if self.len() != before {
            Purged::Changed
        } else {
            Purged::Kept
        }
    }
}

/// Slots changed through a shared borrow of the table (reads that refresh or remove), so
/// the next snapshot carries them.
#[derive(Default)]
struct Touched {
    marks: Vec<bool>,
    slots: Vec<u32>,
}

/// The table of a state with TTL: the stored value per key slot plus the cleanup cursor.
///
/// Reads take the keyed context by shared reference (as for plain state), yet a TTL read
/// may refresh a timestamp or remove an expired value, so the values sit in a `RefCell`.
/// No user code runs while it is borrowed (reduce functions and `Clone` impls cannot reach
/// the context), so a borrow never conflicts.
pub(crate) struct TtlTable<S: TtlStored> {
    name: String,
    kind: &'static str,
    values: RefCell<Vec<Option<S>>>,
    pub(crate) default: Option<S::Elem>,
    pub(crate) reduce: Option<ReduceFn<S::Elem>>,
    pub(crate) params: TtlParams,
    cursor: Cell<usize>,
    touched: RefCell<Touched>,
}

impl<S: TtlStored> TtlTable<S> {
    pub(crate) fn new(
        name: &str,
        kind: &'static str,
        params: TtlParams,
        default: Option<S::Elem>,
        reduce: Option<ReduceFn<S::Elem>>,
    ) -> Self {
        TtlTable {
            name: name.to_string(),
            kind,
            values: RefCell::new(Vec::new()),
            default,
            reduce,
            params,
            cursor: Cell::new(0),
            touched: RefCell::new(Touched::default()),
        }
    }

    fn touch(&self, slot: u32) {
        let mut t = self.touched.borrow_mut();
        let Touched { marks, slots } = &mut *t;
        mark(marks, slots, slot);
    }

    /// Runs `f` on the slot's stored value; `f` says whether it changed it.
    fn with_slot<R>(&self, slot: u32, f: impl FnOnce(&mut Option<S>) -> (R, bool)) -> R {
        let mut vals = self.values.borrow_mut();
        let s = slot as usize;
        if s >= vals.len() {
            let mut absent = None;
            let (r, _) = f(&mut absent);
            if absent.is_some() {
                vals.resize_with(s + 1, || None);
                vals[s] = absent;
                drop(vals);
                self.touch(slot);
            }
            return r;
        }
        let (r, changed) = f(&mut vals[s]);
        drop(vals);
        if changed {
            self.touch(slot);
        }
        r
    }

    /// Flink's access callback: the incremental cleanup step every access runs.
    #[inline]
    fn access(&self, now: i64) {
        if self.params.incremental > 0 {
            self.cleanup_step(now);
        }
    }

    /// Checks the next `cleanup_size` key slots after the cursor, removing expired values.
    fn cleanup_step(&self, now: i64) {
        let mut vals = self.values.borrow_mut();
        let len = vals.len();
        if len == 0 {
            return;
        }
        let mut c = self.cursor.get();
        let mut changed = Vec::new();
        for _ in 0..self.params.incremental.min(len) {
            if c >= len {
                c = 0;
            }
            if let Some(v) = &mut vals[c] {
                match v.purge(&self.params, now) {
                    Purged::Kept => {}
                    Purged::Changed => changed.push(c as u32),
                    Purged::Gone => {
                        vals[c] = None;
                        changed.push(c as u32);
                    }
                }
            }
            c += 1;
        }
        self.cursor.set(c);
        drop(vals);
        for slot in changed {
            self.touch(slot);
        }
    }

    /// Clears the slot (every state kind's `clear`).
    pub(crate) fn clear(&self, slot: u32, now: i64) {
        self.with_slot(slot, |s| {
            let had = s.take().is_some();
            ((), had)
        });
        self.access(now);
    }

    #[cfg(test)]
    pub(crate) fn stored(&self, slot: u32) -> Option<S> {
        self.values.borrow().get(slot as usize).cloned().flatten()
    }
}

/// Value and reducing state: one timestamp for the whole value.
impl<V: Data> TtlTable<TtlValue<V>> {
    /// Flink's `getWithTtlCheckAndUpdate`: an expired value is removed (and returned only
    /// under `ReturnExpiredIfNotCleanedUp`); a live one is refreshed under `OnReadAndWrite`.
    pub(crate) fn value(&self, slot: u32, now: i64) -> Option<V> {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| match s {
            None => (None, false),
            Some(tv) if p.expired(tv.last_access_timestamp, now) => {
                let old = s.take().map(|tv| tv.user_value);
                (old.filter(|_| p.return_expired), true)
            }
            Some(tv) => {
                if p.update_on_read {
                    tv.last_access_timestamp = now;
                }
                (Some(tv.user_value.clone()), p.update_on_read)
            }
        })
    }

    pub(crate) fn update(&self, slot: u32, now: i64, value: V) {
        self.access(now);
        self.with_slot(slot, |s| {
            *s = Some(TtlValue::new(value, now));
            ((), true)
        });
    }

    /// Applies `f` to the live value (or the expired one under `ReturnExpiredIfNotCleanedUp`),
    /// creating it from the default when there is none; a write, so the timestamp is reset.
    pub(crate) fn update_with<R>(&self, slot: u32, now: i64, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        self.access(now);
        let p = self.params;
        let default = &self.default;
        self.with_slot(slot, |s| {
            if s.as_ref()
                .is_some_and(|tv| p.expired(tv.last_access_timestamp, now) && !p.return_expired)
            {
                *s = None;
            }
            let tv =
                s.get_or_insert_with(|| TtlValue::new(default.clone().unwrap_or_default(), now));
            tv.last_access_timestamp = now;
            (f(&mut tv.user_value), true)
        })
    }

    /// Flink's `TtlReduceFunction`: an expired accumulator (unless returned expired values
    /// are allowed) is replaced by `value` instead of reduced with it.
    pub(crate) fn reduce_add(&self, slot: u32, now: i64, value: V) -> Result<()> {
        self.access(now);
        let p = self.params;
        let Some(reduce) = self.reduce.as_ref() else {
            crate::bail!("{} state '{}' has no reduce function", self.kind, self.name);
        };
        self.with_slot(slot, |s| {
            match s {
                Some(tv) if p.return_expired || !p.expired(tv.last_access_timestamp, now) => {
                    tv.user_value = reduce(&tv.user_value, &value);
                    tv.last_access_timestamp = now;
                }
                _ => *s = Some(TtlValue::new(value, now)),
            }
            ((), true)
        });
        Ok(())
    }
}

/// List state: one timestamp per element (Flink's `TtlListState`).
impl<V: Data> TtlTable<Vec<TtlValue<V>>> {
    pub(crate) fn add_all(&self, slot: u32, now: i64, values: impl IntoIterator<Item = V>) {
        self.access(now);
        self.with_slot(slot, |s| {
            let list = s.get_or_insert_with(Vec::new);
            list.extend(values.into_iter().map(|v| TtlValue::new(v, now)));
            if list.is_empty() {
                *s = None;
            }
            ((), true)
        });
    }

    /// The live elements (all elements under `ReturnExpiredIfNotCleanedUp`); expired ones
    /// are removed, live ones refreshed under `OnReadAndWrite`.
    pub(crate) fn get(&self, slot: u32, now: i64) -> Vec<V> {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| {
            let Some(list) = s else {
                return (Vec::new(), false);
            };
            let before = list.len();
            let out: Vec<V> = if p.return_expired {
                list.iter().map(|e| e.user_value.clone()).collect()
            } else {
                list.iter()
                    .filter(|e| !p.expired(e.last_access_timestamp, now))
                    .map(|e| e.user_value.clone())
                    .collect()
            };
            list.retain(|e| !p.expired(e.last_access_timestamp, now));
            let mut changed = list.len() != before;
            if p.update_on_read && !list.is_empty() {
                for e in list.iter_mut() {
                    e.last_access_timestamp = now;
                }
                changed = true;
            }
            if list.is_empty() {
                *s = None;
            }
            (out, changed)
        })
    }

    pub(crate) fn update(&self, slot: u32, now: i64, values: Vec<V>) {
        self.access(now);
        self.with_slot(slot, |s| {
            *s = if values.is_empty() {
                None
            } else {
                Some(values.into_iter().map(|v| TtlValue::new(v, now)).collect())
            };
            ((), true)
        });
    }
}

/// Map state: one timestamp per entry (Flink's `TtlMapState`).
impl<UK: Key + Hash, UV: Data> TtlTable<HashMap<UK, TtlValue<UV>>> {
    /// Reads the entry under `key` as Flink's `getWrappedWithTtlCheckAndUpdate`: an expired
    /// entry is removed (and seen by `f` only under `ReturnExpiredIfNotCleanedUp`).
    fn read_entry<R>(&self, slot: u32, now: i64, key: &UK, f: impl FnOnce(&UV) -> R) -> Option<R> {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| {
            let Some(m) = s else {
                return (None, false);
            };
            let Some(e) = m.get_mut(key) else {
                return (None, false);
            };
            if p.expired(e.last_access_timestamp, now) {
                let r = if p.return_expired {
                    Some(f(&e.user_value))
                } else {
                    None
                };
                m.remove(key);
                if m.is_empty() {
                    *s = None;
                }
                return (r, true);
            }
            if p.update_on_read {
                e.last_access_timestamp = now;
            }
            (Some(f(&e.user_value)), p.update_on_read)
        })
    }

    pub(crate) fn get(&self, slot: u32, now: i64, key: &UK) -> Option<UV> {
        self.read_entry(slot, now, key, UV::clone)
    }

    pub(crate) fn contains(&self, slot: u32, now: i64, key: &UK) -> bool {
        self.read_entry(slot, now, key, |_| ()).is_some()
    }

    pub(crate) fn put(&self, slot: u32, now: i64, key: UK, value: UV) {
        self.access(now);
        self.with_slot(slot, |s| {
            s.get_or_insert_with(HashMap::new)
                .insert(key, TtlValue::new(value, now));
            ((), true)
        });
    }

    /// Removes `key`, returning its value unless it had expired (returned anyway under
    /// `ReturnExpiredIfNotCleanedUp`).
    pub(crate) fn remove(&self, slot: u32, now: i64, key: &UK) -> Option<UV> {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| {
            let Some(m) = s else {
                return (None, false);
            };
            let Some(e) = m.remove(key) else {
                return (None, false);
            };
            if m.is_empty() {
                *s = None;
            }
            let visible = p.return_expired || !p.expired(e.last_access_timestamp, now);
            (visible.then_some(e.user_value), true)
        })
    }

    /// The visible entries; expired ones are removed, live ones refreshed under
    /// `OnReadAndWrite`.
    pub(crate) fn entries(&self, slot: u32, now: i64) -> Vec<(UK, UV)> {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| {
            let Some(m) = s else {
                return (Vec::new(), false);
            };
            let before = m.len();
            let mut out = Vec::with_capacity(m.len());
            m.retain(|k, e| {
                let live = !p.expired(e.last_access_timestamp, now);
                if live || p.return_expired {
                    out.push((k.clone(), e.user_value.clone()));
                }
                if live && p.update_on_read {
                    e.last_access_timestamp = now;
                }
                live
            });
            let changed = m.len() != before || (p.update_on_read && !m.is_empty());
            if m.is_empty() {
                *s = None;
            }
            (out, changed)
        })
    }

    /// True when no entry is visible; expired entries are removed.
    pub(crate) fn is_empty(&self, slot: u32, now: i64) -> bool {
        self.access(now);
        let p = self.params;
        self.with_slot(slot, |s| {
            let Some(m) = s else {
                return (true, false);
            };
            let any_before = !m.is_empty();
            let before = m.len();
            m.retain(|_, e| !p.expired(e.last_access_timestamp, now));
            let empty = if p.return_expired {
                !any_before
            } else {
                m.is_empty()
            };
            let changed = m.len() != before;
            if m.is_empty() {
                *s = None;
            }
            (empty, changed)
        })
    }
}

impl<S: TtlStored> StateTable for TtlTable<S> {
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
        match self.values.borrow().get(slot as usize) {
            Some(Some(v)) => {
                out.extend_from_slice(&TTL_TAG_PREFIX);
                encode_value(v, out)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    /// Decodes a stored value and drops what expired by the restoring process's clock, so
    /// expired state is never restored.
    fn restore_slot(&mut self, slot: u32, bytes: &[u8], now: i64) -> Result<()> {
        let Some(body) = bytes.strip_prefix(&TTL_TAG_PREFIX) else {
            crate::bail!(
                "{} state '{}' was written without state TTL and cannot be restored with TTL enabled (as in Flink): restore it without enable_time_to_live",
                self.kind,
                self.name
            );
        };
        let mut v: S = decode_value(body)
            .map_err(|e| crate::anyhow!("{} state '{}': {e}", self.kind, self.name))?;
        let keep = v.purge(&self.params, now) != Purged::Gone;
        let vals = self.values.get_mut();
        let s = slot as usize;
        if vals.len() <= s {
            vals.resize_with(s + 1, || None);
        }
        vals[s] = keep.then_some(v);
        Ok(())
    }
    fn ttl_cleanup_step(&self, now: i64) {
        self.cleanup_step(now);
    }
    fn ttl_before_snapshot(&mut self, now: i64, dirty: &mut dyn FnMut(u32)) {
        if self.params.full_snapshot {
            let p = self.params;
            for (slot, v) in self.values.get_mut().iter_mut().enumerate() {
                if let Some(s) = v {
                    match s.purge(&p, now) {
                        Purged::Kept => {}
                        Purged::Changed => dirty(slot as u32),
                        Purged::Gone => {
                            *v = None;
                            dirty(slot as u32);
                        }
                    }
                }
            }
        }
        let t = self.touched.get_mut();
        for &slot in &t.slots {
            t.marks[slot as usize] = false;
            dirty(slot);
        }
        t.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cfg: StateTtlConfig) -> TtlParams {
        TtlParams::resolve(&cfg, "value", "s").unwrap().unwrap()
    }

    fn table<S: TtlStored>(cfg: StateTtlConfig) -> TtlTable<S> {
        TtlTable::new("s", "value", params(cfg), None, None)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn builder_defaults_and_aliases_match_flink() {
        let c = StateTtlConfig::new_builder(secs(1)).build();
        assert_eq!(c.update_type(), UpdateType::OnCreateAndWrite);
        assert_eq!(c.state_visibility(), StateVisibility::NeverReturnExpired);
        assert!(c.is_enabled());
        let cs = c.cleanup_strategies();
        assert!(cs.is_cleanup_in_background());
        assert!(!cs.is_cleanup_in_full_snapshot());
        assert_eq!(
            cs.incremental_cleanup_strategy(),
            Some(IncrementalCleanupStrategy {
                cleanup_size: 5,
                run_cleanup_for_every_record: false
            })
        );
        let c = StateTtlConfig::new_builder(secs(1))
            .update_ttl_on_read_and_write()
            .return_expired_if_not_cleaned_up()
            .disable_cleanup_in_background()
            .set_ttl(secs(3))
            .build();
        assert_eq!(c.update_type(), UpdateType::OnReadAndWrite);
        assert_eq!(
            c.state_visibility(),
            StateVisibility::ReturnExpiredIfNotCleanedUp
        );
        assert_eq!(c.ttl(), secs(3));
        assert_eq!(c.cleanup_strategies().incremental_cleanup_strategy(), None);
        let c = StateTtlConfig::new_builder(secs(1))
            .disable_cleanup_in_background()
            .cleanup_incrementally(7, true)
            .build();
        let i = c
            .cleanup_strategies()
            .incremental_cleanup_strategy()
            .unwrap();
        assert_eq!(
            (i.cleanup_size(), i.run_cleanup_for_every_record()),
            (7, true)
        );
        assert!(!StateTtlConfig::DISABLED.is_enabled());
    }

    #[test]
    fn bad_configs_are_one_line_errors_naming_the_state() {
        let e = TtlParams::resolve(
            &StateTtlConfig::new_builder(Duration::from_micros(500)).build(),
            "value",
            "count",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "value state 'count': TTL is expected to be positive (at least 1 ms), got 500µs"
        );
        let e = TtlParams::resolve(
            &StateTtlConfig::new_builder(secs(1))
                .cleanup_incrementally(0, false)
                .build(),
            "list",
            "seen",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "list state 'seen': the number of incrementally cleaned up state entries should be positive"
        );
        assert!(TtlParams::resolve(&StateTtlConfig::DISABLED, "value", "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn value_expires_exactly_at_last_access_plus_ttl() {
        let t = table::<TtlValue<u32>>(StateTtlConfig::new_builder(secs(1)).build());
        t.update(0, 1_000, 7);
        assert_eq!(t.value(0, 1_999), Some(7));
        // Reads do not refresh under OnCreateAndWrite.
        assert_eq!(t.value(0, 2_000), None);
        assert_eq!(
            t.stored(0),
            None,
            "the expired value was removed by the read"
        );
    }

    #[test]
    fn on_read_and_write_refreshes_on_read() {
        let t = table::<TtlValue<u32>>(
            StateTtlConfig::new_builder(secs(1))
                .update_ttl_on_read_and_write()
                .build(),
        );
        t.update(0, 0, 7);
        assert_eq!(t.value(0, 900), Some(7));
        assert_eq!(t.value(0, 1_800), Some(7));
        assert_eq!(t.stored(0).unwrap().last_access_timestamp, 1_800);
        assert_eq!(t.value(0, 2_800), None);
    }

    #[test]
    fn return_expired_if_not_cleaned_up_returns_it_once() {
        let t = table::<TtlValue<u32>>(
            StateTtlConfig::new_builder(secs(1))
                .return_expired_if_not_cleaned_up()
                .disable_cleanup_in_background()
                .build(),
        );
        t.update(0, 0, 7);
        assert_eq!(t.value(0, 5_000), Some(7));
        assert_eq!(t.value(0, 5_000), None);
    }

    #[test]
    fn update_with_restarts_from_the_default_after_expiry() {
        let mut t = table::<TtlValue<u32>>(StateTtlConfig::new_builder(secs(1)).build());
        t.default = Some(100);
        t.update_with(0, 0, |v| *v += 1);
        t.update_with(0, 500, |v| *v += 1);
        assert_eq!(
            t.value(0, 1_400),
            Some(102),
            "the write at 500 reset the timestamp"
        );
        t.update_with(0, 2_000, |v| *v += 1);
        assert_eq!(t.value(0, 2_000), Some(101));
    }

    #[test]
    fn reducing_state_restarts_from_the_added_value_after_expiry() {
        let mut t = table::<TtlValue<u32>>(StateTtlConfig::new_builder(secs(1)).build());
        t.reduce = Some(std::sync::Arc::new(|a: &u32, b: &u32| a + b));
        t.reduce_add(0, 0, 1).unwrap();
        t.reduce_add(0, 10, 2).unwrap();
        assert_eq!(t.value(0, 500), Some(3));
        t.reduce_add(0, 1_010, 5).unwrap();
        assert_eq!(t.value(0, 1_010), Some(5));
    }

    #[test]
    fn list_elements_expire_one_by_one() {
        let t = table::<Vec<TtlValue<u32>>>(
            StateTtlConfig::new_builder(secs(1))
                .disable_cleanup_in_background()
                .build(),
        );
        t.add_all(0, 0, [1, 2]);
        t.add_all(0, 600, [3]);
        assert_eq!(t.get(0, 999), vec![1, 2, 3]);
        assert_eq!(t.get(0, 1_000), vec![3]);
        assert_eq!(
            t.stored(0).unwrap().len(),
            1,
            "expired elements were removed"
        );
        assert_eq!(t.get(0, 1_600), Vec::<u32>::new());
        assert_eq!(t.stored(0), None);
    }

    #[test]
    fn list_read_refreshes_live_elements_under_on_read_and_write() {
        let t = table::<Vec<TtlValue<u32>>>(
            StateTtlConfig::new_builder(secs(1))
                .update_ttl_on_read_and_write()
                .build(),
        );
        t.add_all(0, 0, [1]);
        t.add_all(0, 500, [2]);
        assert_eq!(t.get(0, 900), vec![1, 2]);
        assert_eq!(t.get(0, 1_800), vec![1, 2]);
        t.update(0, 1_800, vec![9]);
        assert_eq!(t.get(0, 2_799), vec![9]);
    }

    #[test]
    fn map_entries_expire_one_by_one() {
        let t =
            table::<HashMap<String, TtlValue<u32>>>(StateTtlConfig::new_builder(secs(1)).build());
        t.put(0, 0, "a".into(), 1);
        t.put(0, 600, "b".into(), 2);
        assert!(t.contains(0, 999, &"a".to_string()));
        assert_eq!(t.get(0, 1_000, &"a".to_string()), None);
        assert_eq!(t.entries(0, 1_000), vec![("b".to_string(), 2)]);
        assert!(!t.is_empty(0, 1_599));
        assert_eq!(t.remove(0, 1_599, &"b".to_string()), Some(2));
        assert!(t.is_empty(0, 1_599));
        t.put(0, 2_000, "c".into(), 3);
        assert_eq!(t.remove(0, 3_000, &"c".to_string()), None, "expired");
        assert_eq!(t.stored(0), None);
    }
}
