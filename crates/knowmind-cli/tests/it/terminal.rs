//! The CLI on a real terminal: a pseudo-terminal from util-linux `script` (always on Debian),
//! sized as the test says, with prompts answered as a person would — after they appear. And a
//! fake server that records every request, to prove a saved token goes to its own server only.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use token_core::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::*;

/// `'…'` for a POSIX shell.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What a terminal session showed, and how the program ended.
struct Session {
    code: Option<i32>,
    shown: String,
}

impl Env {
    /// Runs `knowmind args…` on a `cols`-column pseudo-terminal; for each `(prompt, keys)`,
    /// waits until `prompt` has been shown, then types `keys`.
    async fn on_terminal(&self, args: &[&str], cols: u16, replies: &[(&str, &str)]) -> Session {
        let command = std::iter::once(env!("CARGO_BIN_EXE_knowmind"))
            .chain(args.iter().copied())
            .map(quoted)
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = tokio::process::Command::new("script")
            .args(["-q", "-e", "-c"])
            .arg(format!("stty cols {cols} rows 40; exec {command}"))
            .arg("/dev/null")
            .env("KNOWMIND_CONFIG_DIR", self.config_dir())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env_remove("COLUMNS")
            .env_remove("KNOWMIND_TOKEN")
            .env_remove("KNOWMIND_TOKEN_FILE")
            .env_remove("KNOWMIND_SERVER")
            .current_dir(self.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("util-linux script runs");
        let mut input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let shown = Arc::new(Mutex::new(String::new()));
        let reader = {
            let shown = shown.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = output.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    shown
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        for (prompt, keys) in replies {
            let mut waited = Duration::ZERO;
            while !shown.lock().unwrap().contains(prompt) {
                assert!(
                    waited < Duration::from_secs(15),
                    "no {prompt:?} on the terminal: {}",
                    shown.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            // Let the program finish turning echo off before the keys arrive.
            tokio::time::sleep(Duration::from_millis(100)).await;
            input.write_all(keys.as_bytes()).await.unwrap();
            input.flush().await.unwrap();
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the program ended")
            .unwrap();
        drop(input);
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        let shown = shown.lock().unwrap().clone();
        Session {
            code: status.code(),
            shown,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_a_terminal_hides_the_token_and_ctrl_d_cancels() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    let cancelled = e
        .on_terminal(
            &["auth", "login", "--server", &e.url],
            100,
            &[("input hidden", "\u{4}")],
        )
        .await;
    assert_eq!(
        cancelled.code,
        Some(3),
        "Ctrl-D cancels: {}",
        cancelled.shown
    );
    assert!(!e.config_file().exists());
    let session = e
        .on_terminal(
            &["auth", "login", "--server", &e.url],
            100,
            &[("input hidden", &format!("{token}\r"))],
        )
        .await;
    assert_eq!(session.code, Some(0), "{}", session.shown);
    assert!(
        !session.shown.contains(&token[20..52]),
        "the token was echoed: {}",
        session.shown
    );
    assert!(e.config_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_asks_with_names_and_says_when_it_is_the_token_in_use() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let (victim, _) = e
        .fixture
        .issue("nightly-backup", &[Scope::Read])
        .await
        .unwrap();
    let victim = victim.id.to_string();
    let prompt = "[y/N]";
    let no = e
        .on_terminal(
            &["token", "revoke", &victim, "self"],
            120,
            &[(prompt, "n\r")],
        )
        .await;
    assert_eq!(no.code, Some(3), "{}", no.shown);
    assert!(
        no.shown.contains(&format!("nightly-backup ({victim})")),
        "{}",
        no.shown
    );
    assert!(
        no.shown.contains("the token this command is using"),
        "{}",
        no.shown
    );
    let eof = e
        .on_terminal(&["token", "revoke", &victim], 120, &[(prompt, "\u{4}")])
        .await;
    assert_eq!(eof.code, Some(3), "Ctrl-D cancels: {}", eof.shown);
    assert!(!eof.shown.contains("the token this command is using"));
    let list = e.run(&["token", "list", "--json"], None, &[]).await;
    assert!(
        json(&list)
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "active"),
        "nothing was revoked"
    );
    let yes = e
        .on_terminal(&["token", "revoke", &victim], 120, &[(prompt, "y\r")])
        .await;
    assert_eq!(yes.code, Some(0), "{}", yes.shown);
    let gone = e
        .run(&["token", "view", &victim, "--json"], None, &[])
        .await;
    assert_eq!(json(&gone)["state"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_fit_the_terminal_they_are_shown_on() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let mut ids = Vec::new();
    for name in [
        "a-rather-long-token-name-for-the-nightly-database-backup-job",
        "deploy",
    ] {
        let (record, _) = e
            .fixture
            .issue(name, &[Scope::Read, Scope::Write])
            .await
            .unwrap();
        ids.push(record.id.to_string());
    }
    // Ids are what people copy: they stay whole while names wrap, and less useful columns go.
    let admin_id = admin[4..20].to_owned();
    let made = e
        .run(
            &[
                "token",
                "create",
                "made-by-the-admin-token",
                "--scope",
                "read",
            ],
            None,
            &[],
        )
        .await;
    assert!(made.status.success(), "{}", stderr(&made));
    let audit = e.on_terminal(&["audit", "list"], 80, &[]).await;
    assert!(
        audit.shown.contains(&format!("token:{admin_id}")),
        "the actor whole: {}",
        audit.shown
    );
    for args in [vec!["token", "list"], vec!["audit", "list"]] {
        let session = e.on_terminal(&args, 80, &[]).await;
        for id in &ids {
            assert!(
                session.shown.contains(id.as_str()),
                "{id} whole in {args:?}: {}",
                session.shown
            );
        }
    }
    for cols in [80, 100, 120] {
        let session = e.on_terminal(&["token", "list"], cols, &[]).await;
        assert_eq!(session.code, Some(0), "{}", session.shown);
        let lines: Vec<&str> = session.shown.lines().collect();
        assert!(lines.len() >= 4, "{}", session.shown);
        for line in lines {
            let width = unicode_width::UnicodeWidthStr::width(line.trim_end_matches('\r'));
            assert!(
                width <= usize::from(cols),
                "{width} > {cols} columns: {line:?}\n{}",
                session.shown
            );
        }
    }
}

/// A "server" that records every request it receives and answers 401.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn recorder() -> Recorder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let body = r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"no","code":"UNAUTHORIZED"}"#;
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    Recorder { url, seen }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_token_is_never_sent_to_another_server() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let other = recorder().await;
    // Named on the command line, or in the environment: the saved token stays home.
    let by_flag = e
        .run(&["--server", &other.url, "token", "list"], None, &[])
        .await;
    assert_ne!(by_flag.status.code(), Some(0), "{}", stderr(&by_flag));
    let by_env = e
        .run(&["token", "list"], None, &[("KNOWMIND_SERVER", &other.url)])
        .await;
    assert_ne!(by_env.status.code(), Some(0), "{}", stderr(&by_env));
    assert!(
        stderr(&by_env).contains("auth login"),
        "says how to get a token for it: {}",
        stderr(&by_env)
    );
    let secret = &admin[20..52];
    for request in other.seen.lock().unwrap().iter() {
        assert!(
            !request.contains(secret),
            "the token reached another server: {request}"
        );
        assert!(
            !request.to_ascii_lowercase().contains("authorization:"),
            "{request}"
        );
    }
    // Its own server still gets it.
    let home = e.run(&["token", "list", "--json"], None, &[]).await;
    assert!(home.status.success(), "{}", stderr(&home));
    // A token logged in for the other server goes there, and only that one.
    let second = e.issue(&[Scope::Read]).await;
    let login = e
        .run(
            &["auth", "login", "--server", &other.url],
            Some(&format!("{second}\n")),
            &[],
        )
        .await;
    // (The recorder refuses every token, so this login fails — after checking with it.)
    assert_ne!(login.status.code(), Some(0), "{}", stderr(&login));
    let sent: Vec<String> = other.seen.lock().unwrap().clone();
    assert!(
        sent.iter().any(|r| r.contains(&second[20..52])),
        "the second token was checked with its own server"
    );
    assert!(
        sent.iter().all(|r| !r.contains(secret)),
        "the first server's token never went to the second"
    );
}

/// `--allow-insecure-http` (or `KNOWMIND_ALLOW_INSECURE_HTTP`) is what lets a token go over plain
/// http to an address that is not loopback. `0.0.0.0` is such an address to the check, while Linux
/// delivers a connection to it locally: the recorder stands in for the remote server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_another_address_needs_the_users_consent() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    let other = recorder().await;
    let remote = other.url.replace("127.0.0.1", "0.0.0.0");
    let refused = e
        .run(
            &["auth", "status", "--server", &remote],
            None,
            &[("KNOWMIND_TOKEN", &token)],
        )
        .await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("plain http"));
    assert!(
        other.seen.lock().unwrap().is_empty(),
        "refused before connecting"
    );
    for consent in [
        vec!["--allow-insecure-http"],
        vec![], // the variable below
    ] {
        let mut args = vec!["auth", "status", "--server", &remote];
        let vars: Vec<(&str, &str)> = if consent.is_empty() {
            vec![
                ("KNOWMIND_TOKEN", &token),
                ("KNOWMIND_ALLOW_INSECURE_HTTP", "true"),
            ]
        } else {
            args.extend(consent);
            vec![("KNOWMIND_TOKEN", &token)]
        };
        let out = e.run(&args, None, &vars).await;
        // The recorder refuses every token: exit 4, after the request was sent.
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    }
    let seen = other.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "requests seen: {}", seen.len());
    assert!(
        seen.iter()
            .all(|r| r.to_ascii_lowercase().contains(&format!(
                "authorization: bearer {}",
                token.to_ascii_lowercase()
            ))),
        "the consented requests carried the token"
    );
}
