//! REST shapes of a session cluster's task managers (`/taskmanagers`,
//! `/taskmanagers/:taskmanagerid`) and of where a job's subtasks run, as Flink's
//! `TaskManagersInfo`, `TaskManagerDetailsInfo` and the `host` / `taskmanager-id` of a
//! vertex's subtasks. Memory figures Floe does not manage are reported as 0.

use crate::cluster::protocol::Hardware;
use crate::cluster::resource_manager::TaskManagerStatus;
use crate::runtime::workers::Placement;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /taskmanagers`: Flink's `TaskManagersInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskManagersInfo {
    /// In registration order.
    pub taskmanagers: Vec<TaskManagerInfo>,
}

/// A resource profile (Flink's `ResourceProfileInfo`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceProfileInfo {
    /// CPU cores (Floe: one per slot).
    pub cpu_cores: f64,
    /// Bytes (not managed by Floe: 0).
    pub task_heap_memory: u64,
    /// Bytes (0).
    pub task_off_heap_memory: u64,
    /// Bytes (0).
    pub managed_memory: u64,
    /// Bytes (0).
    pub network_memory: u64,
    /// None.
    pub extended_resources: BTreeMap<String, f64>,
}

impl ResourceProfileInfo {
    fn slots(n: u32) -> Self {
        ResourceProfileInfo {
            cpu_cores: f64::from(n),
            ..Default::default()
        }
    }
}

/// A host's hardware (Flink's `HardwareDescription`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareDescription {
    /// CPU cores.
    pub cpu_cores: u32,
    /// Bytes.
    pub physical_memory: u64,
    /// Bytes available when the task manager registered.
    pub free_memory: u64,
    /// Bytes (0).
    pub managed_memory: u64,
}

/// Flink's `TaskExecutorMemoryConfiguration` (Floe does not split its memory: all 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct MemoryConfiguration {
    pub framework_heap: u64,
    pub task_heap: u64,
    pub framework_off_heap: u64,
    pub task_off_heap: u64,
    pub network_memory: u64,
    pub managed_memory: u64,
    pub jvm_metaspace: u64,
    pub jvm_overhead: u64,
    pub total_flink_memory: u64,
    pub total_process_memory: u64,
}

/// One task manager (Flink's `TaskManagerInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerInfo {
    /// Its id.
    pub id: String,
    /// Its RPC endpoint, `floe://host:port`.
    pub path: String,
    /// Its RPC port.
    pub data_port: u16,
    /// `-1`: no JMX.
    pub jmx_port: i32,
    /// When it last heartbeated, ms since the epoch (Flink's name, Flink's meaning).
    pub time_since_last_heartbeat: u64,
    /// Its task slots.
    pub slots_number: u32,
    /// Those not in use.
    pub free_slots: u32,
    /// All its slots.
    pub total_resource: ResourceProfileInfo,
    /// Its free slots.
    pub free_resource: ResourceProfileInfo,
    /// Its host's hardware.
    pub hardware: HardwareDescription,
    /// Its memory (not split by Floe).
    pub memory_configuration: MemoryConfiguration,
    /// Never blocked.
    pub blocked: bool,
    /// The host it advertises (Floe's addition).
    #[serde(default)]
    pub host: String,
}

/// A slot in use (Flink's `SlotInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    /// One slot.
    pub resource: ResourceProfileInfo,
    /// The job using it.
    pub job_id: String,
}

/// `GET /taskmanagers/:taskmanagerid`: Flink's `TaskManagerDetailsInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerDetailsInfo {
    /// What `/taskmanagers` shows of it.
    #[serde(flatten)]
    pub info: TaskManagerInfo,
    /// One entry per slot in use.
    pub allocated_slots: Vec<SlotInfo>,
    /// Worker processes it runs (Floe's addition).
    #[serde(default)]
    pub workers: Vec<WorkerInfo>,
}

/// A worker process a task manager runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// Its job.
    pub job_id: String,
    /// Its attempt.
    pub attempt: u32,
    /// Its process index.
    pub index: u32,
    /// Its slots (worker threads).
    pub slots: u32,
    /// Its pid on the task manager's host.
    pub pid: u32,
}

fn hardware(h: &Hardware) -> HardwareDescription {
    HardwareDescription {
        cpu_cores: h.cpu_cores,
        physical_memory: h.physical_memory,
        free_memory: h.free_memory,
        managed_memory: 0,
    }
}

impl TaskManagerInfo {
    /// The REST view of a registered task manager.
    pub fn of(t: &TaskManagerStatus) -> Self {
        let r = &t.registration;
        let port = r
            .rpc
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0);
        TaskManagerInfo {
            id: r.id.0.clone(),
            path: format!("floe://{}", r.rpc),
            data_port: port,
            jmx_port: -1,
            time_since_last_heartbeat: t.last_heartbeat_ms,
            slots_number: r.slots,
            free_slots: t.free_slots,
            total_resource: ResourceProfileInfo::slots(r.slots),
            free_resource: ResourceProfileInfo::slots(t.free_slots),
            hardware: hardware(&r.hardware),
            memory_configuration: MemoryConfiguration::default(),
            blocked: false,
            host: r.host.clone(),
        }
    }
}

impl TaskManagerDetailsInfo {
    /// The REST view of a registered task manager with its slots and workers.
    pub fn of(t: &TaskManagerStatus) -> Self {
        TaskManagerDetailsInfo {
            info: TaskManagerInfo::of(t),
            allocated_slots: t
                .allocated
                .iter()
                .flat_map(|(job, n)| {
                    (0..*n).map(move |_| SlotInfo {
                        resource: ResourceProfileInfo::slots(1),
                        job_id: job.to_string(),
                    })
                })
                .collect(),
            workers: t
                .registration
                .running
                .iter()
                .map(|w| WorkerInfo {
                    job_id: w.job.to_string(),
                    attempt: w.attempt,
                    index: w.index,
                    slots: w.slots,
                    pid: w.pid,
                })
                .collect(),
        }
    }
}

/// Where one subtask runs: the `host` and `taskmanager-id` of a subtask in Flink's
/// `/jobs/:jobid/vertices/:vertexid` (`SubtaskExecutionAttemptDetailsInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskLocation {
    /// The subtask index (the same for every operator: slot sharing).
    pub subtask: u32,
    /// The host it runs on.
    pub host: String,
    /// Its task manager (`"localhost"` for a job binary run directly, Flink's mini
    /// cluster).
    #[serde(rename = "taskmanager-id")]
    pub taskmanager_id: String,
}

/// Where every subtask of an attempt placed as `placement` runs, by subtask index:
/// process `i` runs subtasks `i * threads .. (i + 1) * threads`.
pub fn subtask_locations(placement: &Placement) -> Vec<SubtaskLocation> {
    let mut out = Vec::new();
    for p in &placement.processes {
        for t in 0..p.threads {
            out.push(SubtaskLocation {
                subtask: p.index * p.threads + t,
                host: p.host.clone(),
                taskmanager_id: p.task_manager.clone().unwrap_or_else(|| "localhost".into()),
            });
        }
    }
    out.sort_by_key(|s| s.subtask);
    out
}

/// Where the subtasks of `job`'s latest attempt run, from the workers the task managers
/// report (as of their last heartbeat): what `floe list` shows for a job of a session
/// cluster.
pub fn job_locations(task_managers: &[TaskManagerDetailsInfo], job: &str) -> Vec<SubtaskLocation> {
    let workers = || {
        task_managers
            .iter()
            .flat_map(|t| t.workers.iter().map(move |w| (t, w)))
            .filter(|(_, w)| w.job_id == job)
    };
    let Some(latest) = workers().map(|(_, w)| w.attempt).max() else {
        return Vec::new();
    };
    let mut out: Vec<SubtaskLocation> = workers()
        .filter(|(_, w)| w.attempt == latest)
        .flat_map(|(t, w)| {
            (0..w.slots).map(move |i| SubtaskLocation {
                subtask: w.index * w.slots + i,
                host: t.info.host.clone(),
                taskmanager_id: t.info.id.clone(),
            })
        })
        .collect();
    out.sort_by_key(|s| s.subtask);
    out
}

/// One line for `floe list`: the hosts of subtasks 0, 1, … (`0,1@tm-a 2@tm-b`).
pub fn placement_summary(locations: &[SubtaskLocation]) -> String {
    let mut groups: Vec<(String, String, Vec<u32>)> = Vec::new();
    for l in locations {
        match groups.last_mut() {
            Some((tm, _, subtasks)) if *tm == l.taskmanager_id => subtasks.push(l.subtask),
            _ => groups.push((l.taskmanager_id.clone(), l.host.clone(), vec![l.subtask])),
        }
    }
    groups
        .iter()
        .map(|(tm, host, s)| {
            let s: Vec<String> = s.iter().map(u32::to_string).collect();
            format!("{} on {tm} ({host})", s.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protocol::{Registration, RunningWorker, TaskManagerId};
    use crate::runtime::workers::ProcessSlot;

    #[test]
    fn task_managers_have_flinks_shape() {
        let job = crate::JobId::random();
        let t = TaskManagerStatus {
            registration: Registration {
                id: TaskManagerId("tm-1".into()),
                host: "10.0.0.2".into(),
                bind_host: "10.0.0.2".into(),
                rpc: "10.0.0.2:4100".into(),
                slots: 4,
                running: vec![RunningWorker {
                    job,
                    attempt: 1,
                    index: 0,
                    slots: 2,
                    pid: 9,
                }],
                hardware: Hardware {
                    cpu_cores: 2,
                    physical_memory: 100,
                    free_memory: 50,
                },
                dir: None,
            },
            last_heartbeat_ms: 1_700_000_000_000,
            free_slots: 2,
            allocated: vec![(job, 2)],
        };
        let v = serde_json::to_value(TaskManagersInfo {
            taskmanagers: vec![TaskManagerInfo::of(&t)],
        })
        .unwrap();
        let tm = &v["taskmanagers"][0];
        for key in [
            "id",
            "path",
            "dataPort",
            "jmxPort",
            "timeSinceLastHeartbeat",
            "slotsNumber",
            "freeSlots",
            "totalResource",
            "freeResource",
            "hardware",
            "memoryConfiguration",
        ] {
            assert!(tm.get(key).is_some(), "{key} missing in {tm}");
        }
        assert_eq!(tm["id"], "tm-1");
        assert_eq!(tm["dataPort"], 4100);
        assert_eq!(
            (tm["slotsNumber"].as_u64(), tm["freeSlots"].as_u64()),
            (Some(4), Some(2))
        );
        assert_eq!(tm["hardware"]["cpuCores"], 2);
        assert_eq!(tm["totalResource"]["cpuCores"], 4.0);
        let d = serde_json::to_value(TaskManagerDetailsInfo::of(&t)).unwrap();
        assert_eq!(d["allocatedSlots"].as_array().unwrap().len(), 2);
        assert_eq!(d["allocatedSlots"][0]["jobId"], job.to_string());
        assert_eq!(d["workers"][0]["pid"], 9);
        assert_eq!(d["slotsNumber"], 4);
        let back: TaskManagerDetailsInfo = serde_json::from_value(d).unwrap();
        assert_eq!(back.info.host, "10.0.0.2");
        // Its worker runs subtasks 0 and 1 of attempt 1; an older attempt is not shown.
        let mut details = TaskManagerDetailsInfo::of(&t);
        let mut older = details.workers[0].clone();
        older.attempt = 0;
        older.index = 5;
        details.workers.push(older);
        let l = job_locations(&[details], &job.to_string());
        assert_eq!(placement_summary(&l), "0,1 on tm-1 (10.0.0.2)");
        assert!(job_locations(&[], &job.to_string()).is_empty());
    }

    #[test]
    fn subtasks_are_located_by_process() {
        let slot = |index, host: &str, tm: Option<&str>| ProcessSlot {
            index,
            threads: 2,
            host: host.into(),
            bind: host.into(),
            task_manager: tm.map(str::to_string),
        };
        let p = Placement {
            processes: vec![slot(0, "h1", Some("tm-a")), slot(1, "h2", Some("tm-b"))],
        };
        let l = subtask_locations(&p);
        let hosts: Vec<(u32, &str, &str)> = l
            .iter()
            .map(|s| (s.subtask, s.host.as_str(), s.taskmanager_id.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                (0, "h1", "tm-a"),
                (1, "h1", "tm-a"),
                (2, "h2", "tm-b"),
                (3, "h2", "tm-b")
            ]
        );
        assert_eq!(placement_summary(&l), "0,1 on tm-a (h1), 2,3 on tm-b (h2)");
        let v = serde_json::to_value(&l[0]).unwrap();
        assert_eq!(v["taskmanager-id"], "tm-a");
        let local = subtask_locations(&Placement {
            processes: vec![slot(0, "127.0.0.1", None)],
        });
        assert_eq!(local[1].taskmanager_id, "localhost");
    }
}
