//! What a window keeps of its elements (Flink's window state: a `ReducingState`,
//! `AggregatingState` or `ListState` namespaced by window), and the per-key map from
//! window to that state.

use crate::api::data::Data;
use crate::api::window::{AggregateFunction, TimestampedValues};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use smallvec::SmallVec;
use std::marker::PhantomData;

/// A key's values per window, sorted by window: few windows are in flight per key
/// (one or two tumbling windows, `size / slide` sliding ones), so a sorted vector beats a
/// tree and serializes as a plain list of `(window, value)` pairs. The first two entries
/// live inline in the key's state slot: the window operator touches this map for every
/// element, and a pointer to a heap vector would cost a cache miss per element once the
/// keys' state outgrows the core's cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WindowMap<W, V> {
    // `None` only transiently, inside `update`.
    entries: SmallVec<[(W, Option<V>); 2]>,
}

impl<W, V> Default for WindowMap<W, V> {
    fn default() -> Self {
        WindowMap {
            entries: SmallVec::new(),
        }
    }
}

impl<W: Ord, V> WindowMap<W, V> {
    fn find(&self, window: &W) -> Result<usize, usize> {
        self.entries.binary_search_by(|(w, _)| w.cmp(window))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value slot of a window that has a value (always `Some` on return), for
    /// [`Contents::add`] to change in place.
    pub(crate) fn existing_mut(&mut self, window: &W) -> Option<&mut Option<V>> {
        match self.find(window) {
            Ok(i) => Some(&mut self.entries[i].1).filter(|v| v.is_some()),
            Err(_) => None,
        }
    }

    pub(crate) fn get(&self, window: &W) -> Option<&V> {
        self.find(window)
            .ok()
            .and_then(|i| self.entries[i].1.as_ref())
    }

    pub(crate) fn remove(&mut self, window: &W) -> Option<V> {
        let i = self.find(window).ok()?;
        let v = self.entries.remove(i).1;
        self.unspill();
        v
    }

    /// Moves the entries back inline once they fit: a map stays non-empty while windows
    /// follow each other, and a spilled one would cost a cache miss per element for good.
    fn unspill(&mut self) {
        if self.entries.spilled() && self.entries.len() <= self.entries.inline_size() {
            self.entries.shrink_to_fit();
        }
    }

    pub(crate) fn insert(&mut self, window: W, value: V) {
        match self.find(&window) {
            Ok(i) => self.entries[i].1 = Some(value),
            Err(i) => self.entries.insert(i, (window, Some(value))),
        }
    }

    /// Gives `f` the window's value slot (`None` when it has none); the entry is removed
    /// when `f` leaves it `None`.
    pub(crate) fn update<R>(&mut self, window: &W, f: impl FnOnce(&mut Option<V>) -> R) -> R
    where
        W: Clone,
    {
        let i = match self.find(window) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (window.clone(), None));
                i
            }
        };
        let r = f(&mut self.entries[i].1);
        if self.entries[i].1.is_none() {
            self.entries.remove(i);
            self.unspill();
        }
        r
    }

    /// The value of `window`, created by `make` when absent.
    pub(crate) fn get_or_insert_with(&mut self, window: &W, make: impl FnOnce() -> V) -> &mut V
    where
        W: Clone,
    {
        let i = match self.find(window) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (window.clone(), None));
                i
            }
        };
        self.entries[i].1.get_or_insert_with(make)
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&W, &V)> + '_ {
        self.entries
            .iter()
            .filter_map(|(w, v)| v.as_ref().map(|v| (w, v)))
    }
}

impl<W: Serialize, V: Serialize> Serialize for WindowMap<W, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.entries.iter().filter(|e| e.1.is_some()).count();
        let mut seq = s.serialize_seq(Some(n))?;
        for (w, v) in &self.entries {
            if let Some(v) = v {
                seq.serialize_element(&(w, v))?;
            }
        }
        seq.end()
    }
}

impl<'de, W: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for WindowMap<W, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut pairs = Vec::<(W, V)>::deserialize(d)?;
        // Written sorted; sorting again keeps lookups right whatever wrote the snapshot.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(WindowMap {
            entries: pairs.into_iter().map(|(w, v)| (w, Some(v))).collect(),
        })
    }
}

/// How a window accumulates its elements.
pub(crate) trait Contents<T>: Clone + Send + Sync + 'static {
    /// What is kept per key and window.
    type Acc: Data;
    /// Adds one element with its timestamp to the window's accumulator (`None`: the window
    /// has none yet).
    fn add(&mut self, acc: &mut Option<Self::Acc>, timestamp: i64, value: T);
    /// Merges the accumulator of a merged (session) window into `into`.
    fn merge(&mut self, into: &mut Option<Self::Acc>, other: Self::Acc);
}

/// `reduce`: the accumulator is the reduced element.
#[derive(Clone)]
pub(crate) struct ReduceContents<F>(pub F);

impl<T: Data, F> Contents<T> for ReduceContents<F>
where
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    type Acc = T;
    #[inline]
    fn add(&mut self, acc: &mut Option<T>, _timestamp: i64, value: T) {
        *acc = Some(match acc.take() {
            Some(a) => (self.0)(a, value),
            None => value,
        });
    }
    fn merge(&mut self, into: &mut Option<T>, other: T) {
        *into = Some(match into.take() {
            Some(a) => (self.0)(a, other),
            None => other,
        });
    }
}

/// `aggregate`: the accumulator of an [`AggregateFunction`].
pub(crate) struct AggregateContents<A, ACC, R> {
    pub agg: A,
    pub _p: PhantomData<fn() -> (ACC, R)>,
}

impl<A: Clone, ACC, R> Clone for AggregateContents<A, ACC, R> {
    fn clone(&self) -> Self {
        AggregateContents {
            agg: self.agg.clone(),
            _p: PhantomData,
        }
    }
}

impl<T, ACC: Data, R: 'static, A: AggregateFunction<T, ACC, R>> Contents<T>
    for AggregateContents<A, ACC, R>
{
    type Acc = ACC;
    #[inline]
    fn add(&mut self, acc: &mut Option<ACC>, _timestamp: i64, value: T) {
        let agg = &self.agg;
        let a = acc.get_or_insert_with(|| agg.create_accumulator());
        agg.add(value, a);
    }
    fn merge(&mut self, into: &mut Option<ACC>, other: ACC) {
        *into = Some(match into.take() {
            Some(a) => self.agg.merge(a, other),
            None => other,
        });
    }
}

/// `process` without an evictor: every element, in arrival order.
#[derive(Clone, Default)]
pub(crate) struct ListContents;

impl<T: Data> Contents<T> for ListContents {
    type Acc = Vec<T>;
    #[inline]
    fn add(&mut self, acc: &mut Option<Vec<T>>, _timestamp: i64, value: T) {
        acc.get_or_insert_with(Vec::new).push(value);
    }
    fn merge(&mut self, into: &mut Option<Vec<T>>, mut other: Vec<T>) {
        match into {
            Some(v) => v.append(&mut other),
            None => *into = Some(other),
        }
    }
}

/// Windows with an evictor: every element with its timestamp, since an evictor may remove
/// any of them.
#[derive(Clone, Default)]
pub(crate) struct TimestampedContents;

impl<T: Data> Contents<T> for TimestampedContents {
    type Acc = TimestampedValues<T>;
    #[inline]
    fn add(&mut self, acc: &mut Option<TimestampedValues<T>>, timestamp: i64, value: T) {
        acc.get_or_insert_with(TimestampedValues::default)
            .push(timestamp, value);
    }
    fn merge(&mut self, into: &mut Option<TimestampedValues<T>>, mut other: TimestampedValues<T>) {
        match into {
            Some(v) => v.append(&mut other),
            None => *into = Some(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::window::TimeWindow;

    fn tw(s: i64, e: i64) -> TimeWindow {
        TimeWindow::new(s, e)
    }

    #[test]
    fn window_map_keeps_windows_sorted_and_drops_empty_slots() {
        let mut m = WindowMap::<TimeWindow, i64>::default();
        m.insert(tw(10, 20), 1);
        m.insert(tw(0, 10), 2);
        m.update(&tw(5, 15), |v| *v = Some(3));
        assert_eq!(
            m.iter().map(|(w, v)| (*w, *v)).collect::<Vec<_>>(),
            vec![(tw(0, 10), 2), (tw(5, 15), 3), (tw(10, 20), 1)]
        );
        m.update(&tw(30, 40), |v| assert!(v.is_none()));
        assert_eq!(m.len(), 3);
        m.update(&tw(5, 15), |v| *v = None);
        assert_eq!(m.get(&tw(5, 15)), None);
        assert_eq!(m.remove(&tw(0, 10)), Some(2));
        *m.get_or_insert_with(&tw(10, 20), || 0) += 5;
        assert_eq!(m.get(&tw(10, 20)), Some(&6));
        assert_eq!(m.remove(&tw(10, 20)), Some(6));
        assert!(m.is_empty());
    }

    #[test]
    fn window_map_moves_back_inline_once_windows_fit() {
        let mut m = WindowMap::<TimeWindow, i64>::default();
        for s in 0..3 {
            m.insert(tw(s * 10, s * 10 + 10), s);
        }
        assert!(m.entries.spilled());
        assert_eq!(m.remove(&tw(0, 10)), Some(0));
        assert!(!m.entries.spilled());
        m.insert(tw(30, 40), 3);
        m.update(&tw(10, 20), |v| *v = None);
        assert!(!m.entries.spilled());
        assert_eq!(
            m.iter().map(|(w, v)| (*w, *v)).collect::<Vec<_>>(),
            vec![(tw(20, 30), 2), (tw(30, 40), 3)]
        );
        *m.existing_mut(&tw(20, 30)).unwrap().as_mut().unwrap() += 5;
        assert_eq!(m.get(&tw(20, 30)), Some(&7));
        assert!(m.existing_mut(&tw(0, 10)).is_none());
    }

    #[test]
    fn window_map_round_trips_through_state_encoding() {
        let mut m = WindowMap::<TimeWindow, String>::default();
        m.insert(tw(10, 20), "b".into());
        m.insert(tw(0, 10), "a".into());
        let mut bytes = Vec::new();
        crate::state::encode_value(&m, &mut bytes).unwrap();
        let back: WindowMap<TimeWindow, String> = crate::state::decode_value(&bytes).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn reduce_contents_fold_without_cloning_and_merge() {
        let mut c = ReduceContents(|a: String, b: String| format!("{a}{b}"));
        let mut acc = None;
        c.add(&mut acc, 0, "a".to_string());
        c.add(&mut acc, 0, "b".to_string());
        assert_eq!(acc.as_deref(), Some("ab"));
        c.merge(&mut acc, "c".to_string());
        assert_eq!(acc.as_deref(), Some("abc"));
        let mut empty = None;
        c.merge(&mut empty, "x".to_string());
        assert_eq!(empty.as_deref(), Some("x"));
    }

    #[derive(Clone)]
    struct Avg;
    impl AggregateFunction<i64, (i64, i64), f64> for Avg {
        fn create_accumulator(&self) -> (i64, i64) {
            (0, 0)
        }
        fn add(&self, v: i64, acc: &mut (i64, i64)) {
            acc.0 += v;
            acc.1 += 1;
        }
        fn get_result(&self, acc: &(i64, i64)) -> f64 {
            acc.0 as f64 / acc.1 as f64
        }
        fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
            (a.0 + b.0, a.1 + b.1)
        }
    }

    #[test]
    fn aggregate_contents_use_the_accumulator() {
        let mut c = AggregateContents {
            agg: Avg,
            _p: PhantomData,
        };
        let mut acc = None;
        c.add(&mut acc, 0, 2);
        c.add(&mut acc, 0, 4);
        assert_eq!(acc, Some((6, 2)));
        c.merge(&mut acc, (3, 1));
        assert_eq!(acc, Some((9, 3)));
    }

    #[test]
    fn list_contents_keep_arrival_order_across_merges() {
        let mut acc = None;
        Contents::<i32>::add(&mut ListContents, &mut acc, 0, 1);
        Contents::<i32>::add(&mut ListContents, &mut acc, 0, 2);
        Contents::<i32>::merge(&mut ListContents, &mut acc, vec![3]);
        assert_eq!(acc, Some(vec![1, 2, 3]));
        let mut t = None;
        Contents::<i32>::add(&mut TimestampedContents, &mut t, 5, 1);
        Contents::<i32>::add(&mut TimestampedContents, &mut t, 7, 2);
        let t = t.unwrap();
        assert_eq!(t.values(), &[1, 2]);
        assert_eq!(t.timestamps(), &[5, 7]);
    }
}
