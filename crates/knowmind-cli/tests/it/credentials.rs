use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use token_core::Scope;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_writes_a_private_file_under_any_umask() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    for umask in ["000", "022"] {
        let _ = std::fs::remove_dir_all(e.config_dir());
        let script = format!("umask {umask}; exec \"$0\" auth login --server {}", e.url);
        let out = tokio::process::Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_knowmind")])
            .env("KNOWMIND_CONFIG_DIR", e.config_dir())
            .env_remove("KNOWMIND_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = out;
        {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(format!("{token}\n").as_bytes())
                .await
                .unwrap();
        }
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "umask {umask}: {}", stderr(&out));
        assert_eq!(mode(&e.config_dir()), 0o700, "umask {umask}");
        assert_eq!(mode(&e.config_file()), 0o600, "umask {umask}");
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(e.config_file()).unwrap()).unwrap();
        assert_eq!(saved["servers"][e.url.as_str()]["token"], token.as_str());
        assert_eq!(saved["default"], e.url.as_str());
        assert!(
            !stderr(&out).contains(&token[20..52]),
            "the token is not echoed"
        );
        let leftovers: Vec<_> = std::fs::read_dir(e.config_dir())
            .unwrap()
            .map(|f| f.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_token_before_saving_it() {
    let e = env().await;
    let refused = e.login(&token_core::checksummed(&"A".repeat(48))).await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(!e.config_file().exists(), "nothing saved");
    let malformed = e.login("kmt_this-is-not-it").await;
    assert_eq!(malformed.status.code(), Some(2));
    assert!(
        !stderr(&malformed).contains("this-is-not-it"),
        "input not echoed: {}",
        stderr(&malformed)
    );
    assert!(!e.config_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_config_files_are_refused_and_nothing_is_sent() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    // A "server" that only counts connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let trap = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::fs::create_dir_all(e.config_dir()).unwrap();
    std::fs::set_permissions(e.config_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let write = |mode: u32| {
        std::fs::write(
            e.config_file(),
            serde_json::json!({"server": trap, "token": token}).to_string(),
        )
        .unwrap();
        std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    for mode in [0o644, 0o640, 0o660, 0o604, 0o602] {
        write(mode);
        let out = e.run(&["auth", "status"], None, &[]).await;
        assert_eq!(out.status.code(), Some(1), "mode {mode:o}");
        assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
        assert!(stderr(&out).contains("doctor --fix"));
    }
    // Another owner.
    write(0o600);
    std::os::unix::fs::chown(e.config_file(), Some(65534), None).unwrap();
    let out = e.run(&["auth", "status"], None, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("owned by uid 65534"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("not yours") && !stderr(&out).contains("chmod"),
        "a hint that can work: {}",
        stderr(&out)
    );
    let doctor = e.run(&["doctor"], None, &[]).await;
    assert_eq!(
        stderr(&doctor).matches("owned by uid 65534").count(),
        1,
        "said once, with a fix that can work: {}",
        stderr(&doctor)
    );
    assert!(
        !stderr(&doctor).contains("run `knowmind doctor --fix`"),
        "{}",
        stderr(&doctor)
    );
    std::fs::remove_file(e.config_file()).unwrap();
    // A symlink.
    let elsewhere = e.home.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        serde_json::json!({"server": trap, "token": token}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, e.config_file()).unwrap();
    let out = e.run(&["auth", "status"], None, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(listener.accept().is_err(), "nothing was sent to the server");

    // doctor --fix repairs what it can.
    std::fs::remove_file(e.config_file()).unwrap();
    std::fs::write(
        e.config_file(),
        serde_json::json!({"server": e.url, "token": token}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let fixed = e.run(&["doctor", "--fix"], None, &[]).await;
    assert!(stderr(&fixed).contains("fixed"), "{}", stderr(&fixed));
    assert_eq!(mode(&e.config_file()), 0o600);
    assert!(e.run(&["auth", "status"], None, &[]).await.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sources_follow_the_documented_precedence() {
    let e = env().await;
    let saved = e.issue(&[Scope::Read]).await;
    let from_env = e.issue(&[Scope::Write]).await;
    assert!(e.login(&saved).await.status.success());
    let status = |vars: Vec<(&'static str, String)>| {
        let e = &e;
        async move {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = e.run(&["auth", "status", "--json"], None, &vars).await;
            (out.status.code(), json(&out))
        }
    };
    let (code, s) = status(vec![]).await;
    assert_eq!(
        (code, s["source"].as_str()),
        (Some(0), Some("the config file"))
    );
    assert_eq!(s["token_id"], &saved[4..20]);
    let (_, s) = status(vec![("KNOWMIND_TOKEN", from_env.clone())]).await;
    assert_eq!(
        (s["source"].as_str(), s["token_id"].as_str()),
        (Some("KNOWMIND_TOKEN"), Some(&from_env[4..20]))
    );
    let file = e.home.path().join("mounted-secret");
    std::fs::write(&file, format!("{from_env}\n")).unwrap();
    let (_, s) = status(vec![(
        "KNOWMIND_TOKEN_FILE",
        file.to_string_lossy().into_owned(),
    )])
    .await;
    assert_eq!(s["source"], "KNOWMIND_TOKEN_FILE");
    let both = e
        .run(
            &["auth", "status"],
            None,
            &[
                ("KNOWMIND_TOKEN", &from_env),
                ("KNOWMIND_TOKEN_FILE", &file.to_string_lossy()),
            ],
        )
        .await;
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("both set"));
    // token_command instead of a stored token.
    let config =
        serde_json::json!({"server": e.url, "token_command": format!("printf %s {from_env}")});
    std::fs::write(e.config_file(), config.to_string()).unwrap();
    let (code, s) = status(vec![]).await;
    assert_eq!(
        (code, s["source"].as_str()),
        (Some(0), Some("token_command in the config file"))
    );
    let printed = e.run(&["auth", "token"], None, &[]).await;
    assert_eq!(
        stdout(&printed),
        format!("{from_env}\n"),
        "auth token prints the token and nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_appears_in_argv_or_help() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowmind"))
        .args(["auth", "login", "--server", &e.url])
        .env("KNOWMIND_CONFIG_DIR", e.config_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(token.as_bytes()).await.unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&token[20..52]));
    }
    assert!(child.wait_with_output().await.unwrap().status.success());
    for args in [
        &["--help"][..],
        &["auth", "login", "--help"],
        &["auth", "status", "--help"],
        &["token", "create", "--help"],
    ] {
        let out = e
            .run(
                args,
                None,
                &[
                    ("KNOWMIND_TOKEN", &token),
                    ("KNOWMIND_SERVER", "https://secret-server.example"),
                ],
            )
            .await;
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(
            !text.contains(&token[20..52]) && !text.contains("secret-server"),
            "{args:?}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fix_removes_a_symlinked_config_and_runs_nothing_from_it() {
    let e = env().await;
    std::fs::create_dir_all(e.config_dir()).unwrap();
    std::fs::set_permissions(e.config_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Someone else's file, with a command that would leave a mark if it ran.
    let marker = e.home.path().join("ran");
    let elsewhere = e.home.path().join("elsewhere.json");
    let config = serde_json::json!({
        "server": e.url,
        "token_command": format!("touch {}", marker.display()),
    });
    std::fs::write(&elsewhere, config.to_string()).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, e.config_file()).unwrap();
    let refused = e.run(&["auth", "status"], None, &[]).await;
    assert!(
        stderr(&refused).contains("remove the link"),
        "{}",
        stderr(&refused)
    );
    let fixed = e.run(&["doctor", "--fix"], None, &[]).await;
    assert!(
        stderr(&fixed).contains("removed the symbolic link"),
        "{}",
        stderr(&fixed)
    );
    assert!(
        !e.config_file().exists(),
        "the link is gone, and nothing took its place"
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        config.to_string(),
        "the target is untouched"
    );
    assert!(!marker.exists(), "its token_command never ran");
    // A loose file that doctor tightens: its token_command does not run in the same run.
    std::fs::write(e.config_file(), config.to_string()).unwrap();
    std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let fixed = e.run(&["doctor", "--fix"], None, &[]).await;
    assert_eq!(mode(&e.config_file()), 0o600);
    assert!(
        stderr(&fixed).contains("run `knowmind doctor` again"),
        "{}",
        stderr(&fixed)
    );
    assert!(
        !marker.exists(),
        "nothing from a file others could write ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_go_over_plain_http_only_to_this_machine_and_only_if_they_are_tokens() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let trap = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    // Plain http to another machine: refused before any connection (192.0.2.1 is TEST-NET).
    let out = e
        .run(
            &["auth", "status", "--server", "http://192.0.2.1:8080"],
            None,
            &[("KNOWMIND_TOKEN", &token)],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow-insecure-http"));
    // Something that is not a token is not sent.
    for (var, value) in [
        ("KNOWMIND_TOKEN", "garbage"),
        ("KNOWMIND_TOKEN", &token[..57]),
    ] {
        let out = e
            .run(
                &["auth", "status", "--server", &trap],
                None,
                &[(var, value)],
            )
            .await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("does not hold a knowmind token"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains(value), "the input is not echoed");
    }
    assert!(listener.accept().is_err(), "nothing was sent");
    // A token file with a CRLF ending works; one that others can read gets a warning.
    let file = e.home.path().join("token");
    std::fs::write(&file, format!("{token}\r\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = e
        .run(
            &["auth", "status", "--server", &e.url],
            None,
            &[("KNOWMIND_TOKEN_FILE", file.to_str().unwrap())],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // Inside a container (CI, this very machine maybe) mounted secrets are 0644 by default: no
    // warning there; anywhere else, one.
    let container = std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    assert_eq!(
        stderr(&out).contains("has mode 644"),
        !container,
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    let e = env().await;
    let token = e.issue(&[Scope::Admin]).await;
    for i in 0..60 {
        e.issue(&[Scope::Read]).await;
        let _ = i;
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowmind"))
        .args(["token", "list", "--server", &e.url])
        .env("KNOWMIND_CONFIG_DIR", e.config_dir())
        .env("KNOWMIND_TOKEN", &token)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_token_only_goes_to_its_own_server() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    assert!(e.login(&token).await.status.success());
    // A second "server" that only counts connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    for how in [vec![], vec![("KNOWMIND_SERVER", other.as_str())]] {
        let args: Vec<&str> = if how.is_empty() {
            vec!["token", "list", "--server", &other]
        } else {
            vec!["token", "list"]
        };
        let out = e.run(&args, None, &how).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("no token is saved for {other}")),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&e.url),
            "the hint names the saved server"
        );
    }
    assert!(
        listener.accept().is_err(),
        "the saved token never went to the other server"
    );
    // The saved server still works, switch needs a saved token, logout forgets one server.
    assert!(e.run(&["auth", "status"], None, &[]).await.status.success());
    let out = e
        .run(&["auth", "switch", "--server", &other], None, &[])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let out = e
        .run(
            &["auth", "switch", "--server", &format!("{}/", e.url)],
            None,
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = e.run(&["auth", "logout"], None, &[]).await;
    assert!(
        stderr(&out).contains("Forgot the token saved for"),
        "{}",
        stderr(&out)
    );
    let again = e.run(&["auth", "logout"], None, &[]).await;
    assert!(
        stderr(&again).contains("nothing to forget"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_config_is_read_and_migrated() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    std::fs::create_dir_all(e.config_dir()).unwrap();
    std::fs::set_permissions(e.config_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        e.config_file(),
        serde_json::json!({"server": format!("{}/", e.url), "token": token}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = e.run(&["auth", "status"], None, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The next write is in the new shape.
    let other = e.issue(&[Scope::Write]).await;
    assert!(e.login(&other).await.status.success());
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(e.config_file()).unwrap()).unwrap();
    assert!(
        saved.get("server").is_none() && saved.get("token").is_none(),
        "{saved}"
    );
    assert_eq!(saved["servers"][e.url.as_str()]["token"], other.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fix_replaces_a_loose_file_and_urls_cannot_smuggle_credentials() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    assert!(e.login(&token).await.status.success());
    std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    // Someone opened the loose file for writing before the fix.
    let mut held = std::fs::OpenOptions::new()
        .append(true)
        .open(e.config_file())
        .unwrap();
    let fixed = e.run(&["doctor", "--fix"], None, &[]).await;
    assert!(stderr(&fixed).contains("a new file"), "{}", stderr(&fixed));
    assert!(
        stderr(&fixed).contains("rotate the token"),
        "{}",
        stderr(&fixed)
    );
    use std::io::Write as _;
    held.write_all(b"{\"planted\": true}").unwrap();
    drop(held);
    let text = std::fs::read_to_string(e.config_file()).unwrap();
    assert!(
        !text.contains("planted"),
        "the held handle writes to the old file: {text}"
    );
    assert!(e.run(&["auth", "status"], None, &[]).await.status.success());
    // URLs with credentials, queries or fragments are refused.
    for url in [
        "https://good@evil.example",
        "https://km.example?x=1",
        "https://km.example#x",
    ] {
        let out = e
            .run(
                &["auth", "status", "--server", url],
                None,
                &[("KNOWMIND_TOKEN", &token)],
            )
            .await;
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
    }
    // Plain http to localhost goes straight there, not through a proxy.
    let out = e
        .run(
            &[
                "auth",
                "status",
                "--server",
                &e.url.replace("127.0.0.1", "localhost"),
            ],
            None,
            &[
                ("KNOWMIND_TOKEN", &token),
                ("HTTP_PROXY", "http://192.0.2.1:3128"),
                ("http_proxy", "http://192.0.2.1:3128"),
            ],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // A whole token where an id belongs, in capitals, is not echoed.
    let out = e
        .run(
            &["token", "view", &token.to_uppercase(), "--server", &e.url],
            None,
            &[("KNOWMIND_TOKEN", &token)],
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out)
            .to_lowercase()
            .contains(&token[20..52].to_lowercase())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revoke_revokes_the_saved_token_not_the_environments() {
    let e = env().await;
    let saved = e.issue(&[Scope::Read]).await;
    let ci = e.issue(&[Scope::Read]).await;
    assert!(e.login(&saved).await.status.success());
    let out = e
        .run(
            &["auth", "logout", "--revoke"],
            None,
            &[("KNOWMIND_TOKEN", &ci)],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ci_still = e
        .run(
            &["auth", "status", "--server", &e.url],
            None,
            &[("KNOWMIND_TOKEN", &ci)],
        )
        .await;
    assert!(
        ci_still.status.success(),
        "the environment's token is untouched: {}",
        stderr(&ci_still)
    );
    let saved_gone = e
        .run(
            &["auth", "status", "--server", &e.url],
            None,
            &[("KNOWMIND_TOKEN", &saved)],
        )
        .await;
    assert_eq!(
        saved_gone.status.code(),
        Some(4),
        "the saved token is revoked"
    );
}

/// Two servers saved side by side (the test server under two names): each name gets its own
/// token, the last login is the default, `--server` and `auth switch` choose, and `auth status`
/// lists both with the default marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_saved_servers_each_get_their_own_token() {
    let e = env().await;
    let first = e.issue(&[Scope::Read]).await;
    let second = e.issue(&[Scope::Write]).await;
    let id = |token: &str| token.parse::<token_core::Token>().unwrap().id().to_string();
    let a = e.url.clone();
    let b = e.url.replace("127.0.0.1", "localhost");
    for (server, token) in [(&a, &first), (&b, &second)] {
        let out = e
            .run(
                &["auth", "login", "--server", server],
                Some(&format!("{token}\n")),
                &[],
            )
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let status = |args: &'static [&'static str]| {
        let e = &e;
        async move {
            let out = e.run(args, None, &[]).await;
            assert!(out.status.success(), "{}", stderr(&out));
            json(&out)
        }
    };
    // The second login kept the first and became the default.
    let now = status(&["--json", "auth", "status"]).await;
    assert_eq!(now["default_server"], b.as_str(), "{now}");
    assert_eq!(now["token_id"], id(&second), "{now}");
    let mut saved: Vec<String> = serde_json::from_value(now["saved_servers"].clone()).unwrap();
    saved.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(saved, both);
    // --server picks the other one's own token.
    let out = e
        .run(&["--json", "auth", "status", "--server", &a], None, &[])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["token_id"], id(&first));
    // auth switch changes the default; the text lists both, the default marked.
    let out = e.run(&["auth", "switch", "--server", &a], None, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let now = status(&["--json", "auth", "status"]).await;
    assert_eq!(now["server"], a.as_str());
    assert_eq!(now["token_id"], id(&first));
    let out = e.run(&["auth", "status"], None, &[]).await;
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("saved for:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&format!("{a} (default)")), "{line}");
    assert!(
        line.contains(&b) && !line.contains(&format!("{b} (default)")),
        "{line}"
    );
    // Logging out of one leaves the other.
    let out = e.run(&["auth", "logout", "--server", &b], None, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let now = status(&["--json", "auth", "status"]).await;
    assert_eq!(now["saved_servers"], serde_json::json!([a]));
}
