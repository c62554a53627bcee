//! The real `knowmind` binary against a real knowmind server started by each test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;

use knowmind_axum::Guard;
use knowmind_server::api::{AppState, router};
use knowmind_server::metrics::Metrics;
use knowmind_server::notes::Notes;
use serde_json::Value;
use token_core::{Scope, Scopes};
use token_store::testing::Fixture;
use token_store::{Store, StoreOptions};

mod commands;
mod credentials;
mod scan;
mod terminal;

pub struct Env {
    pub home: tempfile::TempDir,
    pub url: String,
    pub store: Store,
    pub fixture: Fixture,
    pub _db: knowmind_db::testing::TestDb,
}

pub async fn env() -> Env {
    let test_db = knowmind_db::testing::sqlite().await.unwrap();
    // The CLI compares times with the real clock, so the server runs on it too.
    let fixture = Fixture::on(test_db.db.clone(), |options| StoreOptions {
        clock: Arc::new(token_store::SystemClock),
        failures_per_minute: 0,
        ..options
    })
    .await
    .unwrap();
    let store = fixture.store.clone();
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        store: store.clone(),
        guard: Guard::with_options(store.clone(), None, Some(metrics.clone())),
        notes: Notes::open(store.db().clone()).await.unwrap(),
        metrics,
        public_url: None,
        github_keys: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state, std::time::Duration::from_secs(30));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Env {
        home: tempfile::tempdir().unwrap(),
        url: format!("http://{addr}"),
        store,
        fixture,
        _db: test_db,
    }
}

impl Env {
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("knowmind")
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("config.json")
    }

    pub async fn issue(&self, scopes: &[Scope]) -> String {
        let name = format!("t-{}", Scopes::of(scopes));
        let (_, token) = self.fixture.issue(&name, scopes).await.unwrap();
        token.expose_secret().to_owned()
    }

    /// Runs `knowmind args…` with this env's config directory, `stdin` piped in, extra variables.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>, vars: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowmind"));
        command
            .args(args)
            .env("KNOWMIND_CONFIG_DIR", self.config_dir())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("KNOWMIND_TOKEN")
            .env_remove("KNOWMIND_TOKEN_FILE")
            .env_remove("KNOWMIND_SERVER")
            .current_dir(self.home.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        child.wait_with_output().await.unwrap()
    }

    /// `auth login` with `token` on stdin.
    pub async fn login(&self, token: &str) -> Output {
        self.run(
            &["auth", "login", "--server", &self.url],
            Some(&format!("{token}\n")),
            &[],
        )
        .await
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / stderr: {}",
            stdout(output),
            stderr(output)
        )
    })
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
