//! Slot placement, pure: which task managers an attempt's subtasks go to, and how they
//! split into worker processes.
//!
//! Task managers are packed in registration order (Flink's default,
//! `cluster.evenly-spread-out-slots: false`). Timely needs the same number of worker
//! threads in every process of a cluster, so an attempt's processes each run
//! `gcd(per-task-manager counts)` threads, and a task manager granted `c` slots runs
//! `c / threads` of them; process indices follow the task managers' order.

use super::protocol::SlotGrant;
use crate::runtime::workers::{Placement, ProcessSlot};

/// Takes `wanted` slots from task managers with `free` slots each (in registration order),
/// filling each before the next; `None` when they hold fewer than `wanted` in all.
/// Returns `(position in free, slots taken)` for every task manager used.
pub fn pack(free: &[u32], wanted: u32) -> Option<Vec<(usize, u32)>> {
    let total: u64 = free.iter().map(|&f| u64::from(f)).sum();
    if wanted == 0 || total < u64::from(wanted) {
        return None;
    }
    let mut left = wanted;
    let mut out = Vec::new();
    for (i, &f) in free.iter().enumerate() {
        if left == 0 {
            break;
        }
        let take = f.min(left);
        if take > 0 {
            out.push((i, take));
            left -= take;
        }
    }
    Some(out)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The worker processes of an attempt granted `grants`: threads per process = gcd of the
/// counts; indices in grant order.
pub fn processes(grants: &[SlotGrant]) -> Placement {
    let threads = grants.iter().fold(0, |g, s| gcd(g, s.slots)).max(1);
    let mut processes = Vec::new();
    for g in grants {
        for _ in 0..g.slots / threads {
            processes.push(ProcessSlot {
                index: processes.len() as u32,
                threads,
                host: g.host.clone(),
                bind: g.bind_host.clone(),
                task_manager: Some(g.task_manager.0.clone()),
            });
        }
    }
    Placement { processes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protocol::TaskManagerId;

    fn grant(tm: &str, slots: u32) -> SlotGrant {
        SlotGrant {
            task_manager: TaskManagerId(tm.into()),
            host: format!("{tm}.host"),
            bind_host: "0.0.0.0".into(),
            rpc: format!("{tm}.host:1"),
            slots,
        }
    }

    #[test]
    fn packs_in_registration_order() {
        assert_eq!(pack(&[2, 2], 2), Some(vec![(0, 2)]));
        assert_eq!(pack(&[2, 2], 3), Some(vec![(0, 2), (1, 1)]));
        assert_eq!(pack(&[0, 4, 1], 5), Some(vec![(1, 4), (2, 1)]));
        assert_eq!(pack(&[2, 2], 4), Some(vec![(0, 2), (1, 2)]));
        assert_eq!(pack(&[2, 2], 5), None);
        assert_eq!(pack(&[], 1), None);
        assert_eq!(pack(&[3], 0), None);
    }

    #[test]
    fn processes_have_gcd_threads_in_task_manager_order() {
        let p = processes(&[grant("a", 2), grant("b", 2)]);
        let summary: Vec<(u32, u32, Option<&str>)> = p
            .processes
            .iter()
            .map(|s| (s.index, s.threads, s.task_manager.as_deref()))
            .collect();
        assert_eq!(summary, [(0, 2, Some("a")), (1, 2, Some("b"))]);

        let p = processes(&[grant("a", 4), grant("b", 2)]);
        let summary: Vec<(u32, u32, Option<&str>)> = p
            .processes
            .iter()
            .map(|s| (s.index, s.threads, s.task_manager.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [(0, 2, Some("a")), (1, 2, Some("a")), (2, 2, Some("b"))]
        );

        let p = processes(&[grant("a", 3), grant("b", 1)]);
        assert_eq!(p.processes.len(), 4);
        assert!(p.processes.iter().all(|s| s.threads == 1));
        assert_eq!(p.processes[3].host, "b.host");
        assert_eq!(p.processes[0].bind, "0.0.0.0");

        let p = processes(&[grant("a", 3)]);
        assert_eq!((p.processes.len(), p.processes[0].threads), (1, 3));
    }
}
