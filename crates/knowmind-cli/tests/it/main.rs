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

use audit::Context;
use knowmind_axum::Guard;
use knowmind_server::api::{AppState, router};
use knowmind_server::metrics::Metrics;
use knowmind_server::notes::Notes;
use serde_json::Value;
use token_core::{HashParams, Scope, Scopes};
use token_store::{NewMember, NewToken, Role, Store, StoreOptions};

mod commands;
mod credentials;

pub struct Env {
    pub home: tempfile::TempDir,
    pub url: String,
    pub store: Store,
    pub ws: String,
    pub owner: String,
    pub _db: knowmind_db::testing::TestDb,
}

pub async fn env() -> Env {
    let test_db = knowmind_db::testing::sqlite().await.unwrap();
    let options = StoreOptions {
        hash_params: HashParams::insecure_for_tests(),
        failures_per_minute: 0,
        ..StoreOptions::default()
    };
    let store = Store::with_db(test_db.db.clone(), options).await.unwrap();
    let owner = NewMember {
        name: "Ada".into(),
        email: "ada@example.org".into(),
        role: Role::Owner,
    };
    let (ws, owner) = store
        .create_workspace("cli", owner, &Context::system())
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        store: store.clone(),
        guard: Guard::with_options(store.clone(), None, Some(metrics.clone())),
        notes: Notes::open(store.db().clone()).await.unwrap(),
        metrics,
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
        ws: ws.id,
        owner: owner.id,
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
        let new = NewToken {
            owner_id: self.owner.clone(),
            name: format!("t-{}", Scopes::of(scopes)),
            description: String::new(),
            client: String::new(),
            scopes: Scopes::of(scopes),
            expires_at: None,
        };
        self.store
            .create_token(&self.ws, new, &Context::system())
            .await
            .unwrap()
            .1
            .expose_secret()
            .to_owned()
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
