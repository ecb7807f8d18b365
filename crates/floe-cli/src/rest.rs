//! A small client of the job manager's REST API.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

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
            .get_string("rest.auth.token")?
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
                    .get_string("rest.address")?
                    .unwrap_or_else(|| "127.0.0.1".into());
                let port = conf.get_u32("rest.port")?.unwrap_or(8081);
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

    fn check(
        &self,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut resp =
            resp.map_err(|e| anyhow!("cannot reach the job manager at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        if status >= 400 {
            let msg = v["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("HTTP {status} from {path}"));
            bail!("{msg}");
        }
        Ok(v)
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

    pub fn get(&self, path: &str) -> Result<Value> {
        self.check(
            path,
            self.agent
                .get(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .call(),
        )
    }

    pub fn patch(&self, path: &str) -> Result<Value> {
        self.check(
            path,
            self.agent
                .patch(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .send_empty(),
        )
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.check(
            path,
            self.agent
                .post(&format!("{}{path}", self.base))
                .header("Authorization", &self.auth)
                .send_json(body),
        )
    }

    /// Triggers a savepoint (or a stop) and polls it to the end; returns its location.
    pub fn savepoint(&self, path: &str, job_id: &str, body: Value) -> Result<String> {
        let v = self.post(path, body)?;
        let trigger = v["request-id"]
            .as_str()
            .ok_or_else(|| anyhow!("no request-id in the response"))?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let s = self.get(&format!("/jobs/{job_id}/savepoints/{trigger}"))?;
            if s["status"]["id"] == "COMPLETED" {
                if let Some(loc) = s["operation"]["location"].as_str() {
                    return Ok(loc.to_string());
                }
                let cause = s["operation"]["failure-cause"]["stack-trace"]
                    .as_str()
                    .unwrap_or("unknown failure");
                bail!("{cause}");
            }
            if Instant::now() > deadline {
                bail!("the savepoint did not complete within an hour");
            }
            std::thread::sleep(Duration::from_millis(100));
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
