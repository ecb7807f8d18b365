//! Timers of a keyed operator (Flink's `InternalTimerService`): event-time and
//! processing-time timers per key, namespace (`()` for process functions, the window for
//! windows) and timestamp.
//!
//! Timers are keyed state: every key's timers are one value of the hidden state
//! [`TIMERS_STATE`], so they are snapshotted with the key's other state (only keys whose
//! timers changed), restored with their key groups at any parallelism and listed by
//! `floe savepoint inspect`. Two ordered queues over all keys say which timer is due next;
//! they are rebuilt from the state on restore.

use crate::api::data::Data;
use crate::api::functions::RuntimeContext;
use crate::api::time::TimeDomain;
use crate::state::backend::StateRegistry;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub(crate) use crate::state::file::TIMERS_STATE;

/// A timer that fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Timer<N> {
    pub domain: TimeDomain,
    pub timestamp: i64,
    pub namespace: N,
}

/// One key's timers, as stored in snapshots.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(bound(serialize = "N: Serialize", deserialize = "N: Deserialize<'de> + Ord"))]
pub(crate) struct KeyTimers<N> {
    /// Event-time timers: (timestamp, namespace).
    pub event: BTreeSet<(i64, N)>,
    /// Processing-time timers: (timestamp, namespace).
    pub processing: BTreeSet<(i64, N)>,
}

impl<N: Ord> Default for KeyTimers<N> {
    fn default() -> Self {
        KeyTimers {
            event: BTreeSet::new(),
            processing: BTreeSet::new(),
        }
    }
}

impl<N: Ord> KeyTimers<N> {
    fn set(&mut self, domain: TimeDomain) -> &mut BTreeSet<(i64, N)> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }
    fn is_empty(&self) -> bool {
        self.event.is_empty() && self.processing.is_empty()
    }
}

/// The timers of one keyed operator subtask.
pub(crate) struct TimerService<N> {
    state: u32,
    event: BTreeSet<(i64, u32, N)>,
    processing: BTreeSet<(i64, u32, N)>,
    /// The last timer registered per key slot, per domain, while it is registered. A
    /// window registers its trigger and cleanup timers for every element; answering the
    /// repeat from this dense array spares a cache miss on the key's timer set per record.
    last: [Vec<Option<(i64, N)>>; 2],
}

impl<N: Data + Ord> TimerService<N> {
    /// Registers the timer state with the operator's keyed state.
    pub fn open(ctx: &mut RuntimeContext<'_>) -> Result<Self> {
        let state = ctx
            .registry()?
            .register::<KeyTimers<N>>(TIMERS_STATE, "timers", None, None)?;
        Ok(TimerService {
            state,
            event: BTreeSet::new(),
            processing: BTreeSet::new(),
            last: [Vec::new(), Vec::new()],
        })
    }

    /// Rebuilds the queues from the restored timer state.
    pub fn restored(&mut self, registry: &StateRegistry) -> Result<()> {
        let table = registry.table::<KeyTimers<N>>(self.state)?;
        for (slot, timers) in table.iter() {
            for (ts, ns) in &timers.event {
                self.event.insert((*ts, slot, ns.clone()));
            }
            for (ts, ns) in &timers.processing {
                self.processing.insert((*ts, slot, ns.clone()));
            }
        }
        Ok(())
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut BTreeSet<(i64, u32, N)> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer of key `slot`; a timer with the same key, namespace and timestamp
    /// exists at most once.
    pub fn register(
        &mut self,
        registry: &mut StateRegistry,
        slot: u32,
        domain: TimeDomain,
        ts: i64,
        ns: N,
    ) -> Result<()> {
        let last = &mut self.last[domain as usize];
        if let Some(Some((t, n))) = last.get(slot as usize) {
            if *t == ts && *n == ns {
                return Ok(());
            }
        }
        if last.len() <= slot as usize {
            last.resize_with(slot as usize + 1, || None);
        }
        last[slot as usize] = Some((ts, ns.clone()));
        let table = registry.table_mut::<KeyTimers<N>>(self.state, slot)?;
        if table
            .get_or_insert_with(slot, KeyTimers::default)
            .set(domain)
            .insert((ts, ns.clone()))
        {
            self.queue(domain).insert((ts, slot, ns));
        }
        Ok(())
    }

    /// Deletes a timer of key `slot` (nothing when there is none).
    pub fn delete(
        &mut self,
        registry: &mut StateRegistry,
        slot: u32,
        domain: TimeDomain,
        ts: i64,
        ns: &N,
    ) -> Result<()> {
        self.forget(domain, slot, ts, ns);
        let key = (ts, ns.clone());
        let table = registry.table_mut::<KeyTimers<N>>(self.state, slot)?;
        let (removed, empty) = match table.get_mut(slot) {
            Some(t) => (t.set(domain).remove(&key), t.is_empty()),
            None => (false, false),
        };
        if empty {
            table.set(slot, None);
        }
        if removed {
            self.queue(domain).remove(&(ts, slot, key.1));
        }
        Ok(())
    }

    /// The earliest timer of `domain` due at `time` (timestamp `<= time`), removed from
    /// the service. Timers registered while firing are due in the same pass.
    pub fn pop_due(
        &mut self,
        registry: &mut StateRegistry,
        domain: TimeDomain,
        time: i64,
    ) -> Result<Option<(u32, Timer<N>)>> {
        let queue = self.queue(domain);
        match queue.first() {
            Some((ts, _, _)) if *ts <= time => {}
            _ => return Ok(None),
        }
        let (ts, slot, ns) = queue.pop_first().expect("checked");
        self.forget(domain, slot, ts, &ns);
        let table = registry.table_mut::<KeyTimers<N>>(self.state, slot)?;
        let empty = match table.get_mut(slot) {
            Some(t) => {
                t.set(domain).remove(&(ts, ns.clone()));
                t.is_empty()
            }
            None => false,
        };
        if empty {
            table.set(slot, None);
        }
        Ok(Some((
            slot,
            Timer {
                domain,
                timestamp: ts,
                namespace: ns,
            },
        )))
    }

    /// The timer is no longer registered: it is not the slot's last one any more.
    fn forget(&mut self, domain: TimeDomain, slot: u32, ts: i64, ns: &N) {
        if let Some(l) = self.last[domain as usize].get_mut(slot as usize) {
            if matches!(l, Some((t, n)) if *t == ts && n == ns) {
                *l = None;
            }
        }
    }

    /// The earliest processing-time timer, if any.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.processing.first().map(|(ts, _, _)| *ts)
    }

    /// Timers registered, per domain: (event time, processing time).
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.event.len(), self.processing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::functions::TaskInfo;

    fn service(reg: &mut StateRegistry) -> TimerService<u8> {
        let info = TaskInfo::single("t");
        TimerService::open(&mut RuntimeContext {
            info: &info,
            registry: Some(reg),
        })
        .unwrap()
    }

    #[test]
    fn timers_are_deduplicated_fire_in_order_and_can_be_deleted() {
        let mut reg = StateRegistry::default();
        let mut t = service(&mut reg);
        let ev = TimeDomain::EventTime;
        t.register(&mut reg, 0, ev, 20, 0).unwrap();
        t.register(&mut reg, 0, ev, 20, 0).unwrap();
        t.register(&mut reg, 1, ev, 10, 0).unwrap();
        t.register(&mut reg, 1, ev, 30, 0).unwrap();
        t.register(&mut reg, 0, TimeDomain::ProcessingTime, 5, 1)
            .unwrap();
        assert_eq!(t.len(), (3, 1));
        t.delete(&mut reg, 1, ev, 30, &0).unwrap();
        t.delete(&mut reg, 1, ev, 99, &0).unwrap();
        let mut fired = Vec::new();
        while let Some((slot, timer)) = t.pop_due(&mut reg, ev, 25).unwrap() {
            fired.push((slot, timer.timestamp));
        }
        assert_eq!(fired, vec![(1, 10), (0, 20)]);
        // A fired timer can be registered again (the repeat shortcut forgot it).
        t.register(&mut reg, 0, ev, 20, 0).unwrap();
        assert_eq!(
            t.pop_due(&mut reg, ev, 25)
                .unwrap()
                .map(|(s, x)| (s, x.timestamp)),
            Some((0, 20))
        );
        // So can a deleted one.
        t.register(&mut reg, 1, ev, 40, 0).unwrap();
        t.delete(&mut reg, 1, ev, 40, &0).unwrap();
        t.register(&mut reg, 1, ev, 40, 0).unwrap();
        assert_eq!(
            t.pop_due(&mut reg, ev, 45)
                .unwrap()
                .map(|(s, x)| (s, x.timestamp)),
            Some((1, 40))
        );
        assert_eq!(t.next_processing_time(), Some(5));
        // Key 1 has no timers left: its state is gone, key 0 keeps its processing timer.
        let table = reg.table::<KeyTimers<u8>>(t.state).unwrap();
        assert!(table.get(1).is_none());
        assert_eq!(table.get(0).unwrap().processing.len(), 1);
    }

    #[test]
    fn queues_are_rebuilt_from_restored_state() {
        let mut reg = StateRegistry::default();
        let mut t = service(&mut reg);
        t.register(&mut reg, 3, TimeDomain::EventTime, 7, 2)
            .unwrap();
        let mut fresh = TimerService::<u8> {
            state: t.state,
            event: BTreeSet::new(),
            processing: BTreeSet::new(),
            last: [Vec::new(), Vec::new()],
        };
        fresh.restored(&reg).unwrap();
        let (slot, timer) = fresh
            .pop_due(&mut reg, TimeDomain::EventTime, i64::MAX)
            .unwrap()
            .unwrap();
        assert_eq!((slot, timer.timestamp, timer.namespace), (3, 7, 2));
    }
}
