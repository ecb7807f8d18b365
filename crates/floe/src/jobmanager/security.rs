//! What every REST endpoint of Floe (a job's job manager and the session cluster) enforces
//! before a handler runs: who may call it, how large a request may be, and where a
//! savepoint requested over REST may be written.
//!
//! - **Loopback by default.** Binding anything but a loopback address needs
//!   `rest.auth.token`; without it the endpoint refuses to start, so a cluster that can run
//!   binaries is never open to the network by accident.
//! - **A token.** When `rest.auth.token` is set, every request must carry
//!   `Authorization: Bearer <token>`; others get `401 Unauthorized`. The comparison takes
//!   the same time whatever the guess.
//! - **Bounded bodies.** Requests are small JSON documents; bodies over [`MAX_BODY`] bytes
//!   get `413 Payload Too Large`.
//! - **Savepoint roots.** With `rest.savepoint.allowed-roots` set, a savepoint target given
//!   over REST must lie inside one of them; `..` is refused always.
//!
//! ```
//! use floe::config::Configuration;
//! use floe::jobmanager::security::RestSecurity;
//!
//! let mut conf = Configuration::new();
//! conf.set("rest.savepoint.allowed-roots", "/data/savepoints").unwrap();
//! let sec = RestSecurity::from_config(&conf).unwrap();
//! assert!(sec.check_target("/data/savepoints/nightly").is_ok());
//! assert!(sec.check_target("/etc").is_err());
//! assert!(sec.check_bind(&"0.0.0.0:8081".parse().unwrap()).is_err()); // no token
//! ```

use crate::config::{keys, Configuration};
use crate::Result;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Request bodies are small JSON documents; anything larger is refused.
pub const MAX_BODY: usize = 64 * 1024;

/// The REST security settings of one endpoint, read from the configuration.
#[derive(Clone, Debug, Default)]
pub struct RestSecurity {
    token: Option<Arc<str>>,
    roots: Vec<PathBuf>,
    /// Object-store roots (`s3://bucket/prefix`) savepoints may go under.
    object_roots: Vec<crate::storage::Location>,
}

impl RestSecurity {
    /// Reads `rest.auth.token` and `rest.savepoint.allowed-roots` (separated by `,` or `;`).
    /// Roots must be absolute paths (or `file:` URLs) or object-store URLs (`s3://bucket/prefix`).
    pub fn from_config(conf: &Configuration) -> Result<Self> {
        let token = conf
            .get(keys::REST_AUTH_TOKEN)?
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        let mut roots = Vec::new();
        let mut object_roots = Vec::new();
        if let Some(list) = conf.get(keys::REST_SAVEPOINT_ALLOWED_ROOTS)? {
            for r in list
                .split([',', ';'])
                .map(str::trim)
                .filter(|r| !r.is_empty())
            {
                let p = match crate::storage::Location::parse(r)? {
                    crate::storage::Location::Local(p) => p,
                    o => {
                        object_roots.push(o);
                        continue;
                    }
                };
                if !p.is_absolute() || has_parent_dir(&p) {
                    crate::bail!(
                        "{}: '{r}' must be an absolute path without '..'",
                        keys::REST_SAVEPOINT_ALLOWED_ROOTS
                    );
                }
                roots.push(p);
            }
        }
        Ok(RestSecurity {
            token,
            roots,
            object_roots,
        })
    }

    /// The token requests must carry, if one is configured.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Refuses to serve a non-loopback address without a token.
    pub fn check_bind(&self, addr: &SocketAddr) -> Result<()> {
        if !addr.ip().is_loopback() && self.token.is_none() {
            crate::bail!(
                "refusing to serve REST on {addr}: it is not a loopback address and rest.auth.token is not set"
            );
        }
        Ok(())
    }

    /// Checks a savepoint target directory given over REST; the error is the response text.
    pub fn check_target(&self, target: &str) -> std::result::Result<PathBuf, String> {
        let p = match crate::storage::Location::parse(target)
            .map_err(|e| format!("target directory: {e}"))?
        {
            crate::storage::Location::Local(p) => p,
            o => {
                let any_root = !self.roots.is_empty() || !self.object_roots.is_empty();
                if any_root && !self.object_roots.iter().any(|r| o.starts_with(r)) {
                    return Err(format!(
                        "target directory '{target}' is outside rest.savepoint.allowed-roots"
                    ));
                }
                // Handed on as its URL; the job manager parses it back into a location.
                return Ok(PathBuf::from(o.to_string()));
            }
        };
        // Relative to what? The job manager's working directory is not the caller's.
        if !p.is_absolute() {
            return Err(format!(
                "target directory '{target}' is a relative path: a savepoint target given over REST must be absolute (/path, file:/path or file:///path)"
            ));
        }
        if has_parent_dir(&p) {
            return Err(format!("target directory '{target}' must not contain '..'"));
        }
        if !self.roots.is_empty() || !self.object_roots.is_empty() {
            if !p.is_absolute() || !self.roots.iter().any(|r| p.starts_with(r)) {
                let roots: Vec<_> = self.roots.iter().map(|r| r.display().to_string()).collect();
                return Err(format!(
                    "target directory '{target}' is outside rest.savepoint.allowed-roots ({})",
                    roots.join(", ")
                ));
            }
            // A symlink inside a root may point anywhere: judge where the path really is.
            let real = resolve(&p);
            if !self.roots.iter().any(|r| real.starts_with(resolve(r))) {
                return Err(format!(
                    "target directory '{target}' resolves to {} outside rest.savepoint.allowed-roots",
                    real.display()
                ));
            }
        }
        Ok(p)
    }

    /// Wraps `router` with the body limit and, when a token is configured, the token check.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let router = router.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
        match &self.token {
            Some(t) => router.layer(axum::middleware::from_fn_with_state(
                Arc::clone(t),
                require_token,
            )),
            None => router,
        }
    }
}

/// `p` with its deepest existing ancestor replaced by its canonical form (symlinks
/// followed); the part that does not exist yet is kept as written.
fn resolve(p: &Path) -> PathBuf {
    let mut existing = p;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

fn has_parent_dir(p: &Path) -> bool {
    p.components().any(|c| matches!(c, Component::ParentDir))
}

async fn require_token(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "errors": [
                "Unauthorized: this endpoint requires 'Authorization: Bearer <rest.auth.token>'"
            ] })),
        )
            .into_response()
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(!y) ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf_of(key: &str, value: &str) -> Configuration {
        let mut c = Configuration::new();
        c.set(key, value).unwrap();
        c
    }

    fn sec(roots: &str) -> RestSecurity {
        RestSecurity::from_config(&conf_of("rest.savepoint.allowed-roots", roots)).unwrap()
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secrets", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn bind_needs_a_token_off_loopback() {
        let open = RestSecurity::default();
        assert!(open.check_bind(&"127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(open.check_bind(&"[::1]:0".parse().unwrap()).is_ok());
        let e = open
            .check_bind(&"0.0.0.0:8081".parse().unwrap())
            .unwrap_err();
        assert_eq!(e.to_string(), "refusing to serve REST on 0.0.0.0:8081: it is not a loopback address and rest.auth.token is not set");
        let tok = RestSecurity::from_config(&conf_of("rest.auth.token", "t")).unwrap();
        assert!(tok.check_bind(&"0.0.0.0:8081".parse().unwrap()).is_ok());
    }

    #[test]
    fn targets_inside_roots_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sp");
        std::fs::create_dir(&root).unwrap();
        let s = sec(&format!("/nonexistent-root; {}", root.display()));
        assert!(s
            .check_target(&root.join("a/b").display().to_string())
            .is_ok());
        assert!(s
            .check_target(&format!("file://{}", root.join("x").display()))
            .is_ok());
        let e = s
            .check_target(&dir.path().join("other").display().to_string())
            .unwrap_err();
        assert!(e.contains("is outside rest.savepoint.allowed-roots"), "{e}");
        assert!(s.check_target("relative/dir").is_err());
        let e = s
            .check_target(&format!("{}/../escape", root.display()))
            .unwrap_err();
        assert!(e.ends_with("must not contain '..'"), "{e}");
        // A symlink inside the root pointing out of it is judged by where it points.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path(), root.join("link")).unwrap();
            let e = s
                .check_target(&root.join("link/x").display().to_string())
                .unwrap_err();
            assert!(e.contains("resolves to"), "{e}");
        }
        // Without roots any path without '..' is accepted.
        assert!(RestSecurity::default()
            .check_target("/tmp/anything")
            .is_ok());
        assert!(RestSecurity::default().check_target("/tmp/../etc").is_err());
        // The form a savepoint path is printed in and object-store URLs; relative targets and
        // unknown schemes are refused.
        assert_eq!(
            RestSecurity::default().check_target("file:/tmp/sp"),
            Ok(PathBuf::from("/tmp/sp"))
        );
        let e = RestSecurity::default().check_target("sp").unwrap_err();
        assert!(e.contains("'sp' is a relative path"), "{e}");
        assert_eq!(
            RestSecurity::default().check_target("s3://b/sp/"),
            Ok(PathBuf::from("s3://b/sp"))
        );
        let e = RestSecurity::default()
            .check_target("gs://b/sp")
            .unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        // Object-store roots: only targets under them, and no local path then.
        let s3 = sec("s3://b/sp");
        assert_eq!(
            s3.check_target("s3://b/sp/x"),
            Ok(PathBuf::from("s3://b/sp/x"))
        );
        assert!(s3
            .check_target("s3://b/spx")
            .unwrap_err()
            .contains("outside"));
        assert!(s3
            .check_target("s3://c/sp")
            .unwrap_err()
            .contains("outside"));
        assert!(s3.check_target("/tmp/sp").unwrap_err().contains("outside"));
        // Bad roots are configuration errors.
        let bad = conf_of("rest.savepoint.allowed-roots", "rel");
        assert!(RestSecurity::from_config(&bad).is_err());
    }

    /// One HTTP/1.1 request over a real socket; returns the status code and the body.
    fn http(
        addr: SocketAddr,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // A refused body may be cut off mid-write: the status line is what counts.
        let _ = c.write_all(body.as_bytes());
        let mut resp = String::new();
        let _ = c.read_to_string(&mut resp);
        let code = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (code, body)
    }

    fn server(
        bind: &str,
        conf: Configuration,
    ) -> crate::Result<crate::jobmanager::rest::RestServer> {
        let registry = crate::jobmanager::rest::Registry::new(conf)?;
        crate::jobmanager::rest::RestServer::start(bind.parse().unwrap(), registry)
    }

    #[test]
    fn every_request_needs_the_token() {
        let conf = conf_of("rest.auth.token", "s3cret");
        let s = server("127.0.0.1:0", conf).unwrap();
        let a = s.local_addr();
        for path in [
            "/overview",
            "/v1/overview",
            "/jobs",
            "/config",
            "/jobs/0123/savepoints",
        ] {
            assert_eq!(http(a, "GET", path, None, "").0, 401, "{path}");
            assert_eq!(http(a, "GET", path, Some("wrong"), "").0, 401, "{path}");
        }
        assert_eq!(http(a, "POST", "/jobs/abc/stop", None, "{}").0, 401);
        let (code, body) = http(a, "GET", "/overview", Some("s3cret"), "");
        assert_eq!(code, 200, "{body}");
        // The token is never served back.
        let (code, body) = http(a, "GET", "/config", Some("s3cret"), "");
        assert_eq!(code, 200);
        assert!(
            !body.contains("s3cret") && body.contains("******"),
            "{body}"
        );
    }

    #[test]
    fn a_non_loopback_endpoint_needs_a_token() {
        let e = server("0.0.0.0:0", Configuration::new()).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("refusing to serve REST on 0.0.0.0:0"),
            "{e}"
        );
        let conf = conf_of("rest.auth.token", "t0k");
        let s = server("0.0.0.0:0", conf).unwrap();
        let a: SocketAddr = format!("127.0.0.1:{}", s.local_addr().port())
            .parse()
            .unwrap();
        assert_eq!(http(a, "GET", "/jobs", None, "").0, 401);
        assert_eq!(http(a, "GET", "/jobs", Some("t0k"), "").0, 200);
    }

    #[test]
    fn bodies_are_bounded_and_targets_checked() {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf_of(
            "rest.savepoint.allowed-roots",
            &dir.path().display().to_string(),
        );
        let s = server("127.0.0.1:0", conf).unwrap();
        let a = s.local_addr();
        let big = format!("{{\"target-directory\":\"{}\"}}", "x".repeat(MAX_BODY));
        assert_eq!(http(a, "POST", "/jobs/abc/savepoints", None, &big).0, 413);
        let (code, body) = http(
            a,
            "POST",
            "/jobs/abc/savepoints",
            None,
            r#"{"target-directory":"/etc/floe"}"#,
        );
        assert_eq!(code, 400);
        assert!(
            body.contains("is outside rest.savepoint.allowed-roots"),
            "{body}"
        );
        let (code, body) = http(
            a,
            "POST",
            "/v1/jobs/abc/stop",
            None,
            r#"{"targetDirectory":"/etc/floe"}"#,
        );
        assert_eq!(code, 400, "{body}");
        let inside = format!(r#"{{"target-directory":"{}/../x"}}"#, dir.path().display());
        let (code, body) = http(a, "POST", "/jobs/abc/savepoints", None, &inside);
        assert_eq!(code, 400);
        assert!(body.contains("must not contain '..'"), "{body}");
        // A target inside a root passes the check; this registry has no such job (and
        // `abc` is not even a job id).
        let inside = format!(r#"{{"target-directory":"{}/sp"}}"#, dir.path().display());
        let unknown = "/jobs/0123456789abcdef0123456789abcdef/savepoints";
        assert_eq!(http(a, "POST", unknown, None, &inside).0, 404);
        assert_eq!(
            http(a, "POST", "/jobs/abc/savepoints", None, &inside).0,
            400
        );
    }
}
