//! Keyed state: named, typed state scoped to the key of the record being processed.
//!
//! An operator's keyed state lives in a [`KeyedContext`]: a key index that maps every key
//! seen to a dense slot, and one table per registered state name holding that state's value
//! for each slot. State handles ([`ValueState`], [`ListState`], [`MapState`],
//! [`ReducingState`]) are small `Copy` ids obtained in `open()` from named descriptors and
//! used with the context passed to every call, so a function type stays `Send` and handles
//! can never outlive or escape their operator.
//!
//! Every mutation marks the key's slot dirty. A snapshot serializes only the dirty keys
//! (the processing thread copies what changed, nothing more); the snapshot writer thread
//! merges those deltas into its own image of the state and writes a full, self-contained
//! file per checkpoint (see [`crate::runtime::snapshot`]).
//!
//! Every descriptor can enable a time to live ([`StateTtlConfig`], module [`ttl`]).

pub mod backend;
pub mod file;
pub mod keygroup;
pub mod ttl;

pub use backend::{KeyedContext, StateRegistry};
pub use ttl::{
    CleanupStrategies, IncrementalCleanupStrategy, StateTtlConfig, StateTtlConfigBuilder,
    StateVisibility, UpdateType,
};
use ttl::{TtlParams, TtlValue};

use crate::api::functions::RuntimeContext;
use crate::Result;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

const UNBOUND: u32 = u32::MAX;

/// Marker: a [`ValueState`] without a default value; `value()` returns `Option<V>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDefault;
/// Marker: a [`ValueState`] with a default value; `value()` returns `V`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WithDefault;

/// Describes a [`ValueState`]: its name and, optionally, a default value returned while
/// the current key has none (the seed's `Tuple2.of(0L, 0L)`) and a time to live.
///
/// ```
/// use floe::prelude::*;
/// let d = ValueStateDescriptor::<(u64, u64)>::new("average").with_default((0, 0));
/// ```
pub struct ValueStateDescriptor<V, D = NoDefault> {
    name: String,
    default: Option<V>,
    ttl: Option<StateTtlConfig>,
    _d: PhantomData<D>,
}

impl<V: crate::api::data::Data> ValueStateDescriptor<V, NoDefault> {
    /// A value state named `name` without a default.
    pub fn new(name: impl Into<String>) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            default: None,
            ttl: None,
            _d: PhantomData,
        }
    }
    /// Returns `default` while the current key has no value.
    pub fn with_default(self, default: V) -> ValueStateDescriptor<V, WithDefault> {
        ValueStateDescriptor {
            name: self.name,
            default: Some(default),
            ttl: self.ttl,
            _d: PhantomData,
        }
    }
}

impl<V: crate::api::data::Data, D> ValueStateDescriptor<V, D> {
    /// Lets the value expire `cfg.ttl()` after its last write (Flink's `enableTimeToLive`);
    /// the whole value has one timestamp.
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let d = ValueStateDescriptor::<u64>::new("count")
    ///     .enable_time_to_live(StateTtlConfig::new_builder(Duration::from_secs(1)).build());
    /// ```
    pub fn enable_time_to_live(mut self, cfg: StateTtlConfig) -> Self {
        self.ttl = Some(cfg);
        self
    }
    /// Registers the state with the operator (call from `open()`), returning its handle.
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ValueState<V, D>> {
        let reg = ctx.registry()?;
        let id = match ttl_params(&self.ttl, "value", &self.name)? {
            None => reg.register::<V>(&self.name, "value", self.default, None)?,
            Some(p) => {
                reg.register_ttl::<TtlValue<V>>(&self.name, "value", p, self.default, None)?
            }
        };
        Ok(ValueState {
            id,
            _p: PhantomData,
        })
    }
}

/// The checked TTL settings of a descriptor; `None` without TTL (or with it disabled).
fn ttl_params(cfg: &Option<StateTtlConfig>, kind: &str, name: &str) -> Result<Option<TtlParams>> {
    match cfg {
        None => Ok(None),
        Some(c) => TtlParams::resolve(c, kind, name),
    }
}

/// A single value per key.
pub struct ValueState<V, D = NoDefault> {
    pub(crate) id: u32,
    _p: PhantomData<fn() -> (V, D)>,
}

impl<V, D> Clone for ValueState<V, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V, D> Copy for ValueState<V, D> {}
impl<V, D> Default for ValueState<V, D> {
    /// An unbound handle; using it before `register` is an error, not a panic.
    fn default() -> Self {
        ValueState {
            id: UNBOUND,
            _p: PhantomData,
        }
    }
}

impl<V: crate::api::data::Data> ValueState<V, NoDefault> {
    /// The current key's value, or `None`.
    pub fn value<K>(&self, ctx: &KeyedContext<K>) -> Result<Option<V>> {
        match ctx.registry.plain::<V>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).cloned()),
            None => Ok(ctx
                .registry
                .ttl::<TtlValue<V>>(self.id)?
                .value(ctx.current, ctx.registry.now())),
        }
    }
}

impl<V: crate::api::data::Data> ValueState<V, WithDefault> {
    /// The current key's value, or the descriptor's default.
    pub fn value<K>(&self, ctx: &KeyedContext<K>) -> Result<V> {
        match ctx.registry.plain::<V>(self.id)? {
            Some(t) => match t.get(ctx.current) {
                Some(v) => Ok(v.clone()),
                None => Ok(t
                    .default
                    .clone()
                    .expect("WithDefault descriptor always has a default")),
            },
            None => {
                let t = ctx.registry.ttl::<TtlValue<V>>(self.id)?;
                match t.value(ctx.current, ctx.registry.now()) {
                    Some(v) => Ok(v),
                    None => t.default.clone().ok_or_else(|| {
                        crate::anyhow!("value state without the default its handle expects")
                    }),
                }
            }
        }
    }
}

impl<V: crate::api::data::Data, D> ValueState<V, D> {
    /// Sets the current key's value.
    pub fn update<K>(&self, ctx: &mut KeyedContext<K>, value: V) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<V>(self.id, slot)? {
            Some(t) => t.set(slot, Some(value)),
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<TtlValue<V>>(self.id)?
                    .update(slot, now, value)
            }
        }
        Ok(())
    }
    /// Removes the current key's value.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<V>(self.id, slot)? {
            Some(t) => t.set(slot, None),
            None => {
                let now = ctx.registry.now();
                ctx.registry.ttl::<TtlValue<V>>(self.id)?.clear(slot, now)
            }
        }
        Ok(())
    }
    /// Applies `f` to the current key's value in place (no clone), creating it from the
    /// default (or `V::default()` when the descriptor has none) when absent. With TTL it
    /// is a write: an expired value is replaced by the default first, and the timestamp
    /// is reset.
    pub fn update_with<K, R>(
        &self,
        ctx: &mut KeyedContext<K>,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R>
    where
        V: Default,
    {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<V>(self.id, slot)? {
            Some(t) => {
                let def = t.default.clone();
                let v = t.get_or_insert_with(slot, || def.unwrap_or_default());
                Ok(f(v))
            }
            None => {
                let now = ctx.registry.now();
                Ok(ctx
                    .registry
                    .ttl::<TtlValue<V>>(self.id)?
                    .update_with(slot, now, f))
            }
        }
    }
}

/// Describes a [`ListState`].
pub struct ListStateDescriptor<V> {
    name: String,
    ttl: Option<StateTtlConfig>,
    _p: PhantomData<V>,
}

impl<V: crate::api::data::Data> ListStateDescriptor<V> {
    /// A list state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ListStateDescriptor {
            name: name.into(),
            ttl: None,
            _p: PhantomData,
        }
    }
    /// Lets every element expire `cfg.ttl()` after it was added (Flink's
    /// `enableTimeToLive`; each element has its own timestamp).
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let d = ListStateDescriptor::<u64>::new("recent")
    ///     .enable_time_to_live(StateTtlConfig::new_builder(Duration::from_secs(60)).build());
    /// ```
    pub fn enable_time_to_live(mut self, cfg: StateTtlConfig) -> Self {
        self.ttl = Some(cfg);
        self
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ListState<V>> {
        let reg = ctx.registry()?;
        let id = match ttl_params(&self.ttl, "list", &self.name)? {
            None => reg.register::<Vec<V>>(&self.name, "list", None, None)?,
            Some(p) => reg.register_ttl::<Vec<TtlValue<V>>>(&self.name, "list", p, None, None)?,
        };
        Ok(ListState {
            id,
            _p: PhantomData,
        })
    }
}

/// A list of values per key.
pub struct ListState<V> {
    id: u32,
    _p: PhantomData<fn() -> V>,
}
impl<V> Clone for ListState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ListState<V> {}
impl<V> Default for ListState<V> {
    fn default() -> Self {
        ListState {
            id: UNBOUND,
            _p: PhantomData,
        }
    }
}

impl<V: crate::api::data::Data> ListState<V> {
    /// Appends a value to the current key's list.
    pub fn add<K>(&self, ctx: &mut KeyedContext<K>, value: V) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<Vec<V>>(self.id, slot)? {
            Some(t) => t.get_or_insert_with(slot, Vec::new).push(value),
            None => {
                let now = ctx.registry.now();
                ctx.registry.ttl::<Vec<TtlValue<V>>>(self.id)?.add_all(
                    slot,
                    now,
                    std::iter::once(value),
                )
            }
        }
        Ok(())
    }
    /// Appends all values.
    pub fn add_all<K>(
        &self,
        ctx: &mut KeyedContext<K>,
        values: impl IntoIterator<Item = V>,
    ) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<Vec<V>>(self.id, slot)? {
            Some(t) => t.get_or_insert_with(slot, Vec::new).extend(values),
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<Vec<TtlValue<V>>>(self.id)?
                    .add_all(slot, now, values)
            }
        }
        Ok(())
    }
    /// The current key's list (empty when none).
    pub fn get<K>(&self, ctx: &KeyedContext<K>) -> Result<Vec<V>> {
        match ctx.registry.plain::<Vec<V>>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).cloned().unwrap_or_default()),
            None => Ok(ctx
                .registry
                .ttl::<Vec<TtlValue<V>>>(self.id)?
                .get(ctx.current, ctx.registry.now())),
        }
    }
    /// Replaces the current key's list.
    pub fn update<K>(&self, ctx: &mut KeyedContext<K>, values: Vec<V>) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<Vec<V>>(self.id, slot)? {
            Some(t) => {
                let v = if values.is_empty() {
                    None
                } else {
                    Some(values)
                };
                t.set(slot, v)
            }
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<Vec<TtlValue<V>>>(self.id)?
                    .update(slot, now, values)
            }
        }
        Ok(())
    }
    /// Removes the current key's list.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<Vec<V>>(self.id, slot)? {
            Some(t) => t.set(slot, None),
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<Vec<TtlValue<V>>>(self.id)?
                    .clear(slot, now)
            }
        }
        Ok(())
    }
}

/// Describes a [`MapState`].
pub struct MapStateDescriptor<UK, UV> {
    name: String,
    ttl: Option<StateTtlConfig>,
    _p: PhantomData<(UK, UV)>,
}

impl<UK: crate::api::data::Key + Hash, UV: crate::api::data::Data> MapStateDescriptor<UK, UV> {
    /// A map state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MapStateDescriptor {
            name: name.into(),
            ttl: None,
            _p: PhantomData,
        }
    }
    /// Lets every entry expire `cfg.ttl()` after it was put (Flink's `enableTimeToLive`;
    /// each entry has its own timestamp).
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let d = MapStateDescriptor::<String, u64>::new("sessions")
    ///     .enable_time_to_live(StateTtlConfig::new_builder(Duration::from_secs(60)).build());
    /// ```
    pub fn enable_time_to_live(mut self, cfg: StateTtlConfig) -> Self {
        self.ttl = Some(cfg);
        self
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<MapState<UK, UV>> {
        let reg = ctx.registry()?;
        let id = match ttl_params(&self.ttl, "map", &self.name)? {
            None => reg.register::<HashMap<UK, UV>>(&self.name, "map", None, None)?,
            Some(p) => {
                reg.register_ttl::<HashMap<UK, TtlValue<UV>>>(&self.name, "map", p, None, None)?
            }
        };
        Ok(MapState {
            id,
            _p: PhantomData,
        })
    }
}

/// A map of user keys to values per key.
pub struct MapState<UK, UV> {
    id: u32,
    _p: PhantomData<fn() -> (UK, UV)>,
}
impl<UK, UV> Clone for MapState<UK, UV> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<UK, UV> Copy for MapState<UK, UV> {}
impl<UK, UV> Default for MapState<UK, UV> {
    fn default() -> Self {
        MapState {
            id: UNBOUND,
            _p: PhantomData,
        }
    }
}

impl<UK: crate::api::data::Key + Hash, UV: crate::api::data::Data> MapState<UK, UV> {
    /// The value under `key` for the current key.
    pub fn get<K>(&self, ctx: &KeyedContext<K>, key: &UK) -> Result<Option<UV>> {
        match ctx.registry.plain::<HashMap<UK, UV>>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).and_then(|m| m.get(key).cloned())),
            None => Ok(ctx.registry.ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?.get(
                ctx.current,
                ctx.registry.now(),
                key,
            )),
        }
    }
    /// Puts `value` under `key` for the current key.
    pub fn put<K>(&self, ctx: &mut KeyedContext<K>, key: UK, value: UV) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<HashMap<UK, UV>>(self.id, slot)? {
            Some(t) => {
                t.get_or_insert_with(slot, HashMap::new).insert(key, value);
            }
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                    .put(slot, now, key, value)
            }
        }
        Ok(())
    }
    /// True when `key` has a value for the current key.
    pub fn contains<K>(&self, ctx: &KeyedContext<K>, key: &UK) -> Result<bool> {
        match ctx.registry.plain::<HashMap<UK, UV>>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).is_some_and(|m| m.contains_key(key))),
            None => Ok(ctx
                .registry
                .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                .contains(ctx.current, ctx.registry.now(), key)),
        }
    }
    /// Removes `key` for the current key.
    pub fn remove<K>(&self, ctx: &mut KeyedContext<K>, key: &UK) -> Result<Option<UV>> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<HashMap<UK, UV>>(self.id, slot)? {
            Some(t) => {
                let (removed, empty) = match t.get_mut(slot) {
                    Some(m) => {
                        let r = m.remove(key);
                        (r, m.is_empty())
                    }
                    None => (None, false),
                };
                if empty {
                    t.set(slot, None);
                }
                Ok(removed)
            }
            None => {
                let now = ctx.registry.now();
                Ok(ctx
                    .registry
                    .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                    .remove(slot, now, key))
            }
        }
    }
    /// All entries of the current key's map.
    pub fn entries<K>(&self, ctx: &KeyedContext<K>) -> Result<Vec<(UK, UV)>> {
        match ctx.registry.plain::<HashMap<UK, UV>>(self.id)? {
            Some(t) => Ok(t
                .get(ctx.current)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()),
            None => Ok(ctx
                .registry
                .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                .entries(ctx.current, ctx.registry.now())),
        }
    }
    /// True when the current key's map has no entries.
    pub fn is_empty<K>(&self, ctx: &KeyedContext<K>) -> Result<bool> {
        match ctx.registry.plain::<HashMap<UK, UV>>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).is_none_or(|m| m.is_empty())),
            None => Ok(ctx
                .registry
                .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                .is_empty(ctx.current, ctx.registry.now())),
        }
    }
    /// Removes the current key's map.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<HashMap<UK, UV>>(self.id, slot)? {
            Some(t) => t.set(slot, None),
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<HashMap<UK, TtlValue<UV>>>(self.id)?
                    .clear(slot, now)
            }
        }
        Ok(())
    }
}

/// A reduce function shared by all instances of a [`ReducingState`].
pub type ReduceFn<V> = Arc<dyn Fn(&V, &V) -> V + Send + Sync>;

/// Describes a [`ReducingState`]: its name and reduce function.
pub struct ReducingStateDescriptor<V> {
    name: String,
    reduce: ReduceFn<V>,
    ttl: Option<StateTtlConfig>,
}

impl<V: crate::api::data::Data> ReducingStateDescriptor<V> {
    /// A reducing state named `name` that combines added values with `reduce`.
    pub fn new(
        name: impl Into<String>,
        reduce: impl Fn(&V, &V) -> V + Send + Sync + 'static,
    ) -> Self {
        ReducingStateDescriptor {
            name: name.into(),
            reduce: Arc::new(reduce),
            ttl: None,
        }
    }
    /// Lets the reduced value expire `cfg.ttl()` after its last `add` (Flink's
    /// `enableTimeToLive`); a value added after expiry starts a new reduction.
    ///
    /// ```
    /// use floe::prelude::*;
    /// use std::time::Duration;
    /// let d = ReducingStateDescriptor::new("max", |a: &u64, b: &u64| *a.max(b))
    ///     .enable_time_to_live(StateTtlConfig::new_builder(Duration::from_secs(60)).build());
    /// ```
    pub fn enable_time_to_live(mut self, cfg: StateTtlConfig) -> Self {
        self.ttl = Some(cfg);
        self
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ReducingState<V>> {
        let reg = ctx.registry()?;
        let id = match ttl_params(&self.ttl, "reducing", &self.name)? {
            None => reg.register::<V>(&self.name, "reducing", None, Some(self.reduce))?,
            Some(p) => {
                reg.register_ttl::<TtlValue<V>>(&self.name, "reducing", p, None, Some(self.reduce))?
            }
        };
        Ok(ReducingState {
            id,
            _p: PhantomData,
        })
    }
}

/// A value per key that added values are reduced into.
pub struct ReducingState<V> {
    id: u32,
    _p: PhantomData<fn() -> V>,
}
impl<V> Clone for ReducingState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ReducingState<V> {}
impl<V> Default for ReducingState<V> {
    fn default() -> Self {
        ReducingState {
            id: UNBOUND,
            _p: PhantomData,
        }
    }
}

impl<V: crate::api::data::Data> ReducingState<V> {
    /// Reduces `value` into the current key's value.
    pub fn add<K>(&self, ctx: &mut KeyedContext<K>, value: V) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<V>(self.id, slot)? {
            Some(t) => {
                let reduce = Arc::clone(
                    t.reduce
                        .as_ref()
                        .expect("reducing table has a reduce function"),
                );
                match t.get_mut(slot) {
                    Some(acc) => *acc = reduce(acc, &value),
                    None => t.set(slot, Some(value)),
                }
                Ok(())
            }
            None => {
                let now = ctx.registry.now();
                ctx.registry
                    .ttl::<TtlValue<V>>(self.id)?
                    .reduce_add(slot, now, value)
            }
        }
    }
    /// The current key's reduced value.
    pub fn get<K>(&self, ctx: &KeyedContext<K>) -> Result<Option<V>> {
        match ctx.registry.plain::<V>(self.id)? {
            Some(t) => Ok(t.get(ctx.current).cloned()),
            None => Ok(ctx
                .registry
                .ttl::<TtlValue<V>>(self.id)?
                .value(ctx.current, ctx.registry.now())),
        }
    }
    /// Removes the current key's value.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        match ctx.registry.plain_mut::<V>(self.id, slot)? {
            Some(t) => t.set(slot, None),
            None => {
                let now = ctx.registry.now();
                ctx.registry.ttl::<TtlValue<V>>(self.id)?.clear(slot, now)
            }
        }
        Ok(())
    }
}

/// Restored state that does not fit the job's state types: retrying cannot fix it, so the
/// job fails before processing instead of restarting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IncompatibleState(pub String);

/// Serialization of state values (and keys) in checkpoints and savepoints: CBOR, a
/// self-describing encoding. Structs keep their field names, so a snapshot can be read
/// without the job's Rust types (`floe savepoint inspect --dump`) and state types evolve as
/// serde users expect: added `#[serde(default)]` fields, removed, reordered and
/// `#[serde(alias)]`-renamed fields all restore (docs/architecture.md).
pub(crate) fn encode_value<V: Serialize + ?Sized>(v: &V, out: &mut Vec<u8>) -> Result<()> {
    ciborium::into_writer(v, out).map_err(|e| crate::anyhow!("cannot serialize state value: {e}"))
}

/// Decodes a state value. On failure the error names the field where the stored value no
/// longer fits the type (e.g. a field whose type changed).
pub(crate) fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    match ciborium::from_reader::<V, _>(bytes) {
        Ok(v) => Ok(v),
        Err(e) => {
            let reason = match &e {
                ciborium::de::Error::Semantic(_, msg) => msg.clone(),
                other => other.to_string(),
            };
            // Decode again through a generic value to find the failing field's path.
            let path = ciborium::from_reader::<ciborium::Value, _>(bytes)
                .ok()
                .and_then(|cv| serde_json::to_value(&cv).ok())
                .and_then(|jv| serde_path_to_error::deserialize::<_, V>(jv).err())
                .map(|pe| pe.path().to_string())
                .filter(|p| p != ".");
            match path {
                Some(p) => Err(crate::anyhow!("field `{p}`: {reason}")),
                None => Err(crate::anyhow!("{reason}")),
            }
        }
    }
}
