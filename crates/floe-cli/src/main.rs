//! `floe`: operate Floe jobs with Flink's verbs and wording.
//!
//! `run` starts a job binary with Floe's options; `list`, `savepoint`, `stop`, `cancel` and
//! `checkpoints` talk to a job manager's REST API (`-m host:port`, else `rest.address` /
//! `rest.port` from `$FLOE_CONF_DIR/floe.yaml`, else 127.0.0.1:8081).

mod rest;

use clap::{Args, Parser, Subcommand};
use floe::checkpoint::metadata::{load_snapshot, SnapshotKind};
use rest::Rest;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Run and operate Floe stream processing jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Target {
    /// Address of the job manager's REST endpoint (host:port).
    #[arg(short = 'm', long = "jobmanager", value_name = "host:port")]
    jobmanager: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a job binary: `floe run [-s PATH] [-p N] [-n] [-D key=value]... <job-binary> [args...]`.
    Run {
        /// Restore from a checkpoint or savepoint directory, or its _metadata file.
        #[arg(short = 's', long = "fromSavepoint", value_name = "savepointPath")]
        from_savepoint: Option<String>,
        /// Skip snapshot state that cannot be mapped to the new program.
        #[arg(short = 'n', long = "allowNonRestoredState")]
        allow_non_restored_state: bool,
        /// Parallelism of the job.
        #[arg(short = 'p', long = "parallelism")]
        parallelism: Option<u32>,
        /// Configuration settings, e.g. -D execution.checkpointing.interval=1s.
        #[arg(short = 'D', value_name = "property=value")]
        dynamic: Vec<String>,
        /// The job binary.
        job: String,
        /// Arguments of the job.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Lists running and restarting jobs (with -a, all jobs).
    List {
        #[command(flatten)]
        target: Target,
        /// Show all jobs, including finished, cancelled and failed ones.
        #[arg(short = 'a', long = "all")]
        all: bool,
    },
    /// Triggers a savepoint for a job, or disposes one (`--dispose PATH`).
    Savepoint {
        #[command(flatten)]
        target: Target,
        /// Dispose (delete) the savepoint at this path instead.
        #[arg(short = 'd', long = "dispose", value_name = "savepointPath")]
        dispose: Option<PathBuf>,
        /// The job id.
        #[arg(required_unless_present = "dispose")]
        job_id: Option<String>,
        /// Directory the savepoint is written into (default: execution.checkpointing.savepoint-dir).
        target_directory: Option<String>,
    },
    /// Stops a job with a savepoint; it ends FINISHED.
    Stop {
        #[command(flatten)]
        target: Target,
        /// Directory the savepoint is written into (default: execution.checkpointing.savepoint-dir).
        #[arg(short = 'p', long = "savepointPath", value_name = "savepointPath")]
        savepoint_path: Option<String>,
        /// Flush everything pending as at end of input before the savepoint.
        #[arg(short = 'd', long = "drain")]
        drain: bool,
        /// The job id.
        job_id: String,
    },
    /// Cancels a job.
    Cancel {
        #[command(flatten)]
        target: Target,
        /// The job id.
        job_id: String,
    },
    /// Lists a job's recent checkpoints and savepoints.
    Checkpoints {
        #[command(flatten)]
        target: Target,
        /// The job id.
        job_id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run {
            from_savepoint,
            allow_non_restored_state,
            parallelism,
            dynamic,
            job,
            args,
        } => {
            let mut cmd = Command::new(&job);
            if let Some(s) = from_savepoint {
                cmd.arg("-s").arg(s);
            }
            if allow_non_restored_state {
                cmd.arg("-n");
            }
            if let Some(p) = parallelism {
                cmd.arg("-p").arg(p.to_string());
            }
            for d in dynamic {
                cmd.arg("-D").arg(d);
            }
            cmd.args(args);
            // The job binary embeds its job manager (per-job mode): become it, so signals
            // (Ctrl-C cancels) and the exit code are the job's own.
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt;
                let e = cmd.exec();
                Err(anyhow::anyhow!("cannot start job binary '{job}': {e}"))
            }
            #[cfg(not(unix))]
            {
                let status = cmd
                    .status()
                    .map_err(|e| anyhow::anyhow!("cannot start job binary '{job}': {e}"))?;
                Ok(ExitCode::from(
                    status.code().unwrap_or(1).clamp(0, 255) as u8
                ))
            }
        }
        Cmd::List { target, all } => {
            let rest = Rest::new(target.jobmanager.as_deref())?;
            println!("Waiting for response...");
            let v = rest.get("/jobs/overview")?;
            let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
            let line = |j: &Value| {
                format!(
                    "{} : {} : {} ({})",
                    rest::format_time(j["start-time"].as_u64().unwrap_or(0)),
                    j["jid"].as_str().unwrap_or(""),
                    j["name"].as_str().unwrap_or(""),
                    j["state"].as_str().unwrap_or("")
                )
            };
            let terminal = |j: &Value| {
                matches!(
                    j["state"].as_str(),
                    Some("FINISHED" | "CANCELED" | "FAILED")
                )
            };
            let running: Vec<&Value> = jobs.iter().filter(|j| !terminal(j)).collect();
            if running.is_empty() {
                println!("No running jobs.");
            } else {
                println!("------------------ Running/Restarting Jobs -------------------");
                for j in running {
                    println!("{}", line(j));
                }
                println!("--------------------------------------------------------------");
            }
            println!("No scheduled jobs.");
            if all {
                let done: Vec<&Value> = jobs.iter().filter(|j| terminal(j)).collect();
                if done.is_empty() {
                    println!("No terminated jobs.");
                } else {
                    println!("---------------------- Terminated Jobs -----------------------");
                    for j in done {
                        println!("{}", line(j));
                    }
                    println!("--------------------------------------------------------------");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Savepoint {
            target,
            dispose: Some(path),
            ..
        } => {
            let _ = target;
            let snap = load_snapshot(&path)?;
            if snap.metadata.kind != SnapshotKind::Savepoint {
                anyhow::bail!(
                    "'{}' is a checkpoint, not a savepoint: checkpoints are owned by their job; refusing to dispose it",
                    path.display()
                );
            }
            println!("Disposing savepoint '{}'.", path.display());
            std::fs::remove_dir_all(&snap.dir).map_err(|e| {
                anyhow::anyhow!("cannot dispose savepoint {}: {e}", snap.dir.display())
            })?;
            println!("Savepoint '{}' disposed.", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Savepoint {
            target,
            job_id,
            target_directory,
            ..
        } => {
            let job_id = job_id.expect("clap requires a job id without --dispose");
            let rest = Rest::new(target.jobmanager.as_deref())?;
            println!("Triggering savepoint for job {job_id}.");
            println!("Waiting for response...");
            let body =
                serde_json::json!({ "target-directory": target_directory, "cancel-job": false });
            let path = rest
                .savepoint(&format!("/jobs/{job_id}/savepoints"), &job_id, body)
                .map_err(|e| {
                    anyhow::anyhow!("Triggering a savepoint for the job {job_id} failed: {e}")
                })?;
            println!("Savepoint completed. Path: {path}");
            println!("You can resume your program from this savepoint with the run command.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stop {
            target,
            savepoint_path,
            drain,
            job_id,
        } => {
            let rest = Rest::new(target.jobmanager.as_deref())?;
            println!("Suspending job \"{job_id}\" with a savepoint.");
            let body = serde_json::json!({ "targetDirectory": savepoint_path, "drain": drain });
            let path = rest
                .savepoint(&format!("/jobs/{job_id}/stop"), &job_id, body)
                .map_err(|e| {
                    anyhow::anyhow!("Could not stop with a savepoint job \"{job_id}\": {e}")
                })?;
            println!("Savepoint completed. Path: {path}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cancel { target, job_id } => {
            let rest = Rest::new(target.jobmanager.as_deref())?;
            println!("Cancelling job {job_id}.");
            rest.patch(&format!("/jobs/{job_id}?mode=cancel"))?;
            println!("Cancelled job {job_id}.");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Checkpoints { target, job_id } => {
            let rest = Rest::new(target.jobmanager.as_deref())?;
            let v = rest.get(&format!("/jobs/{job_id}/checkpoints"))?;
            let c = &v["counts"];
            println!(
                "Checkpoints of job {job_id}: {} completed, {} failed, {} in progress, {} restored",
                c["completed"], c["failed"], c["in_progress"], c["restored"]
            );
            println!(
                "{:<6} {:<10} {:<11} {:<20} {:>9} {:>10}  path",
                "id", "type", "status", "trigger time", "duration", "bytes"
            );
            for h in v["history"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<6} {:<10} {:<11} {:<20} {:>7}ms {:>10}  {}",
                    h["id"],
                    if h["is_savepoint"].as_bool() == Some(true) {
                        "savepoint"
                    } else {
                        "checkpoint"
                    },
                    h["status"].as_str().unwrap_or(""),
                    rest::format_time(h["trigger_timestamp"].as_u64().unwrap_or(0)),
                    h["end_to_end_duration"],
                    h["state_size"],
                    h["external_path"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .or(h["failure_message"].as_str())
                        .unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
