//! A small client of the job manager's REST API.

use anyhow::{anyhow, bail, Result};
use floe::config::keys;
use floe::jobmanager::rest::model::{
    AsyncOperation, CheckpointInfo, CheckpointTriggerRequest, CheckpointType, ErrorResponse,
    QueueStatus, SavepointInfo, TriggerResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// A request the job manager answered with an error status: its HTTP status and the
/// message of Flink's `{"errors": [...]}` body. Callers decide on the status, never on the
/// message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The HTTP status, e.g. 400 for a request the job manager cannot carry out as given.
    pub status: u16,
    /// What the job manager said.
    pub message: String,
}

/// A job manager's (or the session cluster's) REST endpoint.
pub struct Rest {
    base: String,
    agent: ureq::Agent,
    /// `Bearer <rest.auth.token>` when the configuration has a token, else empty.
    auth: String,
}

impl Rest {
    /// The endpoint from `-m`, else `rest.address`/`rest.port` of the configuration file, else
    /// 127.0.0.1:8081.
    pub fn new(jobmanager: Option<&str>) -> Result<Self> {
        let conf = floe::config::file::load_from_env()?;
        let auth = conf
            .get(keys::REST_AUTH_TOKEN)?
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default();
        let addr = match jobmanager {
            Some(a) => a
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            None => {
                let host = conf
                    .get(keys::REST_ADDRESS)?
                    .unwrap_or_else(|| "127.0.0.1".into());
                let port = conf.get(keys::REST_PORT)?.unwrap_or(8081);
                format!("{host}:{port}")
            }
        };
        if !addr.contains(':') {
            bail!("invalid job manager address '{addr}': expected host:port");
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Rest {
            base: format!("http://{addr}"),
            agent,
            auth,
        })
    }

    /// The answer of `resp` as a `T`, or the job manager's error message.
    fn check<T: DeserializeOwned>(
        &self,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut resp =
            resp.map_err(|e| anyhow!("cannot reach the job manager at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .read_to_vec()
            .map_err(|e| anyhow!("cannot read the answer of {path} from {}: {e}", self.base))?;
        if status >= 400 {
            let message = serde_json::from_slice::<ErrorResponse>(&bytes)
                .ok()
                .map(|e| e.errors.join("; "))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("HTTP {status} from {path}"));
            return Err(Refused { status, message }.into());
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| anyhow!("unexpected answer of {path} from {}: {e}", self.base))
    }

    /// True when a Floe session cluster answers at this address. An endpoint refusing our
    /// token counts as one: the next request then fails with its "Unauthorized" message
    /// instead of `floe run` quietly starting a job of its own.
    pub fn is_cluster(&self) -> bool {
        let resp = self
            .agent
            .get(&format!("{}/floe/cluster", self.base))
            .header("Authorization", &self.auth)
            .call();
        matches!(resp, Ok(r) if r.status().is_success() || r.status().as_u16() == 401)
    }

    /// `GET path` as a `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.check(
            path,
            self.agent
                .get(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .call(),
        )
    }

    /// `PATCH path` as a `T`.
    pub fn patch<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.check(
            path,
            self.agent
                .patch(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .send_empty(),
        )
    }

    /// `POST body` to `path`, the answer as a `T`.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.check(
            path,
            self.agent
                .post(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .send_json(body),
        )
    }

    /// Polls `status_path` until the operation it names completes; returns the operation.
    fn poll<T: DeserializeOwned>(&self, status_path: &str, what: &str) -> Result<T> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let s: AsyncOperation<T> = self.get(status_path)?;
            if s.status.id == QueueStatus::Completed {
                return s
                    .operation
                    .ok_or_else(|| anyhow!("the {what} completed without a result"));
            }
            if Instant::now() > deadline {
                bail!("the {what} did not complete within an hour");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Triggers a savepoint (or a stop) and polls it to the end; returns its location.
    pub fn savepoint<B: Serialize>(&self, path: &str, job_id: &str, body: &B) -> Result<String> {
        let t: TriggerResponse = self.post(path, body)?;
        let info: SavepointInfo = self.poll(
            &format!("/jobs/{job_id}/savepoints/{}", t.request_id),
            "savepoint",
        )?;
        match (info.location, info.failure_cause) {
            (Some(loc), _) => Ok(loc),
            (None, Some(cause)) => bail!("{}", cause.stack_trace),
            (None, None) => bail!("unknown failure"),
        }
    }

    /// Triggers a checkpoint of `job_id` and polls it to the end; returns its id.
    pub fn checkpoint(&self, job_id: &str, full: bool) -> Result<u64> {
        let body = CheckpointTriggerRequest {
            checkpoint_type: if full {
                CheckpointType::Full
            } else {
                CheckpointType::Configured
            },
            trigger_id: None,
        };
        let t: TriggerResponse = self.post(&format!("/jobs/{job_id}/checkpoints"), &body)?;
        let info: CheckpointInfo = self.poll(
            &format!("/jobs/{job_id}/checkpoints/{}", t.request_id),
            "checkpoint",
        )?;
        match (info.checkpoint_id, info.failure_cause) {
            (Some(id), _) => Ok(id),
            (None, Some(cause)) => bail!("{}", cause.stack_trace),
            (None, None) => bail!("unknown failure"),
        }
    }
}

/// Flink's CLI date format, `dd.MM.yyyy HH:mm:ss` (UTC).
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{d:02}.{m:02}.{y} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn flink_date_format() {
        assert_eq!(super::format_time(0), "01.01.1970 00:00:00");
        assert_eq!(super::format_time(1_795_299_547_499), "21.11.2026 22:19:07");
    }
}
