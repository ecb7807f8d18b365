//! `floe`: the command line. For now it runs a job binary in the foreground (the per-job
//! mode of `flink run`), passing Floe's options through; the session cluster, REST API and
//! the other verbs build on the job manager next.

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
            match cmd.status() {
                Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("error: cannot start job binary '{job}': {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
