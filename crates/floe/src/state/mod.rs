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

pub mod backend;
pub mod file;
pub mod keygroup;

pub use backend::{KeyedContext, StateRegistry};

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
/// the current key has none (the seed's `Tuple2.of(0L, 0L)`).
///
/// ```
/// use floe::prelude::*;
/// let d = ValueStateDescriptor::<(u64, u64)>::new("average").with_default((0, 0));
/// ```
pub struct ValueStateDescriptor<V, D = NoDefault> {
    name: String,
    default: Option<V>,
    _d: PhantomData<D>,
}

impl<V: crate::api::data::Data> ValueStateDescriptor<V, NoDefault> {
    /// A value state named `name` without a default.
    pub fn new(name: impl Into<String>) -> Self {
        ValueStateDescriptor {
            name: name.into(),
            default: None,
            _d: PhantomData,
        }
    }
    /// Returns `default` while the current key has no value.
    pub fn with_default(self, default: V) -> ValueStateDescriptor<V, WithDefault> {
        ValueStateDescriptor {
            name: self.name,
            default: Some(default),
            _d: PhantomData,
        }
    }
}

impl<V: crate::api::data::Data, D> ValueStateDescriptor<V, D> {
    /// Registers the state with the operator (call from `open()`), returning its handle.
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ValueState<V, D>> {
        let id = ctx
            .registry()?
            .register::<V>(&self.name, "value", self.default, None)?;
        Ok(ValueState {
            id,
            _p: PhantomData,
        })
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
        Ok(ctx.registry.table::<V>(self.id)?.get(ctx.current).cloned())
    }
}

impl<V: crate::api::data::Data> ValueState<V, WithDefault> {
    /// The current key's value, or the descriptor's default.
    pub fn value<K>(&self, ctx: &KeyedContext<K>) -> Result<V> {
        let t = ctx.registry.table::<V>(self.id)?;
        match t.get(ctx.current) {
            Some(v) => Ok(v.clone()),
            None => Ok(t
                .default
                .clone()
                .expect("WithDefault descriptor always has a default")),
        }
    }
}

impl<V: crate::api::data::Data, D> ValueState<V, D> {
    /// Sets the current key's value.
    pub fn update<K>(&self, ctx: &mut KeyedContext<K>, value: V) -> Result<()> {
        let slot = ctx.current;
        ctx.registry
            .table_mut::<V>(self.id, slot)?
            .set(slot, Some(value));
        Ok(())
    }
    /// Removes the current key's value.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        ctx.registry.table_mut::<V>(self.id, slot)?.set(slot, None);
        Ok(())
    }
    /// Applies `f` to the current key's value in place (no clone), creating it from the
    /// default (or `V::default()` when the descriptor has none) when absent.
    pub fn update_with<K, R>(
        &self,
        ctx: &mut KeyedContext<K>,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R>
    where
        V: Default,
    {
        let slot = ctx.current;
        let t = ctx.registry.table_mut::<V>(self.id, slot)?;
        let def = t.default.clone();
        let v = t.get_or_insert_with(slot, || def.unwrap_or_default());
        Ok(f(v))
    }
}

/// Describes a [`ListState`].
pub struct ListStateDescriptor<V> {
    name: String,
    _p: PhantomData<V>,
}

impl<V: crate::api::data::Data> ListStateDescriptor<V> {
    /// A list state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ListStateDescriptor {
            name: name.into(),
            _p: PhantomData,
        }
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ListState<V>> {
        let id = ctx
            .registry()?
            .register::<Vec<V>>(&self.name, "list", None, None)?;
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
        ctx.registry
            .table_mut::<Vec<V>>(self.id, slot)?
            .get_or_insert_with(slot, Vec::new)
            .push(value);
        Ok(())
    }
    /// Appends all values.
    pub fn add_all<K>(
        &self,
        ctx: &mut KeyedContext<K>,
        values: impl IntoIterator<Item = V>,
    ) -> Result<()> {
        let slot = ctx.current;
        ctx.registry
            .table_mut::<Vec<V>>(self.id, slot)?
            .get_or_insert_with(slot, Vec::new)
            .extend(values);
        Ok(())
    }
    /// The current key's list (empty when none).
    pub fn get<K>(&self, ctx: &KeyedContext<K>) -> Result<Vec<V>> {
        Ok(ctx
            .registry
            .table::<Vec<V>>(self.id)?
            .get(ctx.current)
            .cloned()
            .unwrap_or_default())
    }
    /// Replaces the current key's list.
    pub fn update<K>(&self, ctx: &mut KeyedContext<K>, values: Vec<V>) -> Result<()> {
        let slot = ctx.current;
        let v = if values.is_empty() {
            None
        } else {
            Some(values)
        };
        ctx.registry
            .table_mut::<Vec<V>>(self.id, slot)?
            .set(slot, v);
        Ok(())
    }
    /// Removes the current key's list.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        ctx.registry
            .table_mut::<Vec<V>>(self.id, slot)?
            .set(slot, None);
        Ok(())
    }
}

/// Describes a [`MapState`].
pub struct MapStateDescriptor<UK, UV> {
    name: String,
    _p: PhantomData<(UK, UV)>,
}

impl<UK: crate::api::data::Key + Hash, UV: crate::api::data::Data> MapStateDescriptor<UK, UV> {
    /// A map state named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MapStateDescriptor {
            name: name.into(),
            _p: PhantomData,
        }
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<MapState<UK, UV>> {
        let id = ctx
            .registry()?
            .register::<HashMap<UK, UV>>(&self.name, "map", None, None)?;
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
        Ok(ctx
            .registry
            .table::<HashMap<UK, UV>>(self.id)?
            .get(ctx.current)
            .and_then(|m| m.get(key).cloned()))
    }
    /// Puts `value` under `key` for the current key.
    pub fn put<K>(&self, ctx: &mut KeyedContext<K>, key: UK, value: UV) -> Result<()> {
        let slot = ctx.current;
        ctx.registry
            .table_mut::<HashMap<UK, UV>>(self.id, slot)?
            .get_or_insert_with(slot, HashMap::new)
            .insert(key, value);
        Ok(())
    }
    /// True when `key` has a value for the current key.
    pub fn contains<K>(&self, ctx: &KeyedContext<K>, key: &UK) -> Result<bool> {
        Ok(ctx
            .registry
            .table::<HashMap<UK, UV>>(self.id)?
            .get(ctx.current)
            .is_some_and(|m| m.contains_key(key)))
    }
    /// Removes `key` for the current key.
    pub fn remove<K>(&self, ctx: &mut KeyedContext<K>, key: &UK) -> Result<Option<UV>> {
        let slot = ctx.current;
        let t = ctx.registry.table_mut::<HashMap<UK, UV>>(self.id, slot)?;
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
    /// All entries of the current key's map.
    pub fn entries<K>(&self, ctx: &KeyedContext<K>) -> Result<Vec<(UK, UV)>> {
        Ok(ctx
            .registry
            .table::<HashMap<UK, UV>>(self.id)?
            .get(ctx.current)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
    /// True when the current key's map has no entries.
    pub fn is_empty<K>(&self, ctx: &KeyedContext<K>) -> Result<bool> {
        Ok(ctx
            .registry
            .table::<HashMap<UK, UV>>(self.id)?
            .get(ctx.current)
            .is_none_or(|m| m.is_empty()))
    }
    /// Removes the current key's map.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        ctx.registry
            .table_mut::<HashMap<UK, UV>>(self.id, slot)?
            .set(slot, None);
        Ok(())
    }
}

/// A reduce function shared by all instances of a [`ReducingState`].
pub type ReduceFn<V> = Arc<dyn Fn(&V, &V) -> V + Send + Sync>;

/// Describes a [`ReducingState`]: its name and reduce function.
pub struct ReducingStateDescriptor<V> {
    name: String,
    reduce: ReduceFn<V>,
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
        }
    }
    /// Registers the state with the operator (call from `open()`).
    pub fn register(self, ctx: &mut RuntimeContext<'_>) -> Result<ReducingState<V>> {
        let id = ctx
            .registry()?
            .register::<V>(&self.name, "reducing", None, Some(self.reduce))?;
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
        let t = ctx.registry.table_mut::<V>(self.id, slot)?;
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
    /// The current key's reduced value.
    pub fn get<K>(&self, ctx: &KeyedContext<K>) -> Result<Option<V>> {
        Ok(ctx.registry.table::<V>(self.id)?.get(ctx.current).cloned())
    }
    /// Removes the current key's value.
    pub fn clear<K>(&self, ctx: &mut KeyedContext<K>) -> Result<()> {
        let slot = ctx.current;
        ctx.registry.table_mut::<V>(self.id, slot)?.set(slot, None);
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
