//! Running the real `knowmind-server` binary in tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_knowmind-server");

/// A running server. Its log goes to `server-<port>.log` beside the data directory, so that a
/// failed test leaves it to read.
pub struct Running {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
}

/// Starts `serve` on a port the system chooses, with data in `data`, JSON logs, and `env`;
/// returns once it listens, with the address it logged (no race for a "free" port with other
/// tests).
pub async fn start(data: &Path, env: &[(&str, &str)]) -> Running {
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = data
        .parent()
        .unwrap_or(data)
        .join(format!("server-{}-{n}.log", std::process::id()));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let log_file = std::fs::File::create(&log).unwrap();
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KNOWMIND_DATA_DIR", data)
        .env("KNOWMIND_LOG_FORMAT", "json")
        .env_remove("KNOWMIND_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    for _ in 0..800 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let listening = text.lines().find_map(|line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            (entry["fields"]["message"] == "listening").then(|| {
                entry["fields"]["address"]
                    .as_str()?
                    .parse::<SocketAddr>()
                    .ok()
            })?
        });
        if let Some(addr) = listening {
            return Running {
                child,
                addr,
                data: data.to_owned(),
                log,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the server exited ({status}) before listening: {text}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not start");
}

impl Running {
    /// SIGTERM, then waits; returns whether it exited 0, and its log.
    pub async fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let Ok(status) = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await
        else {
            panic!(
                "the server did not stop within 30 s; its log is {}",
                self.log.display()
            );
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status.unwrap().success(), log)
    }

    /// SIGKILL: no draining, no goodbye.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }

    /// The admin token written on first start.
    pub fn bootstrap_token(&self) -> String {
        std::fs::read_to_string(self.data.join("bootstrap-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// Runs a command of the binary on `data` with `env`; returns exit code, stdout and stderr.
pub fn command(data: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .env("KNOWMIND_DATA_DIR", data)
        .env_remove("KNOWMIND_DATABASE_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh PostgreSQL database (not just a schema: the binary takes a plain URL), dropped when
/// the guard is dropped. `None` when PostgreSQL is not configured for tests.
pub struct FreshDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    pub async fn create() -> Option<FreshDatabase> {
        let admin_url = knowmind_db::testing::postgres_url()?;
        let name = knowmind_db::testing::fresh_schema_name();
        let admin = knowmind_db::Db::connect(&admin_url, &Default::default())
            .await
            .unwrap();
        sqlx::Executor::execute(admin.pool(), format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Some(FreshDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::process::Command::new("psql")
            .args([self.admin_url.as_str(), "-q", "-c", sql.as_str()])
            .output();
    }
}
