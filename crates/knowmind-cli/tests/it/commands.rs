use token_core::Scope;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_rotate_self_revoke_and_status_exits_4() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());

    let created = e
        .run(
            &[
                "token",
                "create",
                "ci-reader",
                "--scope",
                "read",
                "--expires-in",
                "30d",
                "--for",
                "github-actions",
            ],
            None,
            &[],
        )
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let reader = stdout(&created).trim().to_owned();
    assert!(
        reader.parse::<token_core::Token>().is_ok(),
        "stdout is the token alone"
    );
    assert!(stderr(&created).contains("shown this once"));
    let as_json = e
        .run(
            &[
                "token", "create", "json-one", "--scope", "read", "--scope", "write", "--json",
            ],
            None,
            &[],
        )
        .await;
    let j = json(&as_json);
    assert!(j["token"].as_str().unwrap().starts_with("kmt_"));
    assert_eq!(j["scopes"], serde_json::json!(["read", "write"]));

    let list = e.run(&["token", "list", "--json"], None, &[]).await;
    let names: Vec<String> = json(&list)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"ci-reader".to_owned()) && names.contains(&"json-one".to_owned()),
        "{names:?}"
    );
    let table = e.run(&["token", "list"], None, &[("COLUMNS", "100")]).await;
    assert!(
        stdout(&table).contains("ci-reader") && stdout(&table).contains("in 30 days"),
        "{}",
        stdout(&table)
    );
    assert!(!stdout(&table).contains(&reader[20..52]));

    let view = e
        .run(&["token", "view", &reader[4..20], "--json"], None, &[])
        .await;
    assert_eq!(json(&view)["client"], "github-actions");

    // Rotating the token in use rewrites the saved credential.
    let before = std::fs::read_to_string(e.config_file()).unwrap();
    let rotated = e.run(&["token", "rotate", "self"], None, &[]).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let after = std::fs::read_to_string(e.config_file()).unwrap();
    assert_ne!(before, after);
    assert_eq!(mode(&e.config_file()), 0o600);
    let status = e.run(&["auth", "status", "--json"], None, &[]).await;
    assert!(
        status.status.success(),
        "the new saved token works: {}",
        stderr(&status)
    );
    assert_ne!(json(&status)["token_id"], &admin[4..20]);

    // Revoking without --yes off a terminal needs confirmation.
    let unconfirmed = e.run(&["token", "revoke", &reader[4..20]], None, &[]).await;
    assert_eq!(unconfirmed.status.code(), Some(3));
    let revoked = e
        .run(
            &[
                "token",
                "revoke",
                &reader[4..20],
                "--yes",
                "--reason",
                "no longer needed",
            ],
            None,
            &[],
        )
        .await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let view = e
        .run(&["token", "view", &reader[4..20], "--json"], None, &[])
        .await;
    assert_eq!(json(&view)["revoked_reason"], "no longer needed");

    let gone = e
        .run(&["token", "revoke", "self", "--yes"], None, &[])
        .await;
    assert!(gone.status.success());
    let status = e.run(&["auth", "status"], None, &[]).await;
    assert_eq!(status.status.code(), Some(4), "{}", stderr(&status));
    assert!(stderr(&status).contains("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_audit_and_usage_errors() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    e.run(&["token", "create", "x", "--scope", "read"], None, &[])
        .await;
    e.store.usage_writer().flush().await.unwrap();
    let usage = e
        .run(&["token", "usage", "self", "--json"], None, &[])
        .await;
    let u = json(&usage);
    assert!(u["total"].as_i64().unwrap() >= 1);
    assert_eq!(u["ips"][0]["ip"], "127.0.0.1");
    let usage_text = e.run(&["token", "usage", "self"], None, &[]).await;
    assert!(
        stdout(&usage_text).contains("POST /v1/tokens"),
        "{}",
        stdout(&usage_text)
    );

    let events = e
        .run(
            &[
                "audit",
                "list",
                "--action",
                "token.created",
                "--since",
                "1d",
                "--json",
            ],
            None,
            &[],
        )
        .await;
    let list = json(&events);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "token.created")
    );
    assert!(!list.as_array().unwrap().is_empty());
    let file = e.home.path().join("audit.jsonl");
    let export = e
        .run(
            &["audit", "export", "--output", &file.to_string_lossy()],
            None,
            &[],
        )
        .await;
    assert!(export.status.success());
    for line in std::fs::read_to_string(&file).unwrap().lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    let verify = e.run(&["audit", "verify"], None, &[]).await;
    assert!(
        verify.status.success() && stdout(&verify).starts_with("intact"),
        "{}",
        stdout(&verify)
    );

    let no_scope = e.run(&["token", "create", "x"], None, &[]).await;
    assert_eq!(no_scope.status.code(), Some(2));
    let bad_scope = e
        .run(&["token", "create", "x", "--scope", "root"], None, &[])
        .await;
    assert_eq!(
        bad_scope.status.code(),
        Some(2),
        "a usage error, found locally"
    );
    assert!(
        stderr(&bad_scope).contains("root"),
        "{}",
        stderr(&bad_scope)
    );
    let bad_id = e.run(&["token", "view", "not-an-id"], None, &[]).await;
    assert_eq!(bad_id.status.code(), Some(2));
    let completion = e.run(&["completion", "bash"], None, &[]).await;
    assert!(completion.status.success() && stdout(&completion).contains("knowmind"));
    let no_server = e
        .run(
            &["auth", "status"],
            None,
            &[("KNOWMIND_CONFIG_DIR", "/nonexistent-knowmind")],
        )
        .await;
    assert_ne!(no_server.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_warned_about() {
    let e = env().await;
    let new = token_store::NewToken {
        owner_id: e.fixture.owner.clone(),
        name: "short".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Admin.into(),
        expires_at: Some(e.store.now() + time::Duration::days(3)),
        allowed_networks: Default::default(),
    };
    let (_, token) = e
        .store
        .create_token(&e.fixture.workspace, new, &audit::Context::system())
        .await
        .unwrap();
    assert!(e.login(token.expose_secret()).await.status.success());
    let list = e.run(&["token", "list"], None, &[]).await;
    assert!(
        stderr(&list).contains("expires in 2 days") || stderr(&list).contains("expires in 3 days"),
        "{}",
        stderr(&list)
    );
    let quiet = e.run(&["token", "list", "--quiet"], None, &[]).await;
    assert!(!stderr(&quiet).contains("warning"));
    let doctor = e.run(&["doctor"], None, &[]).await;
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        stderr(&doctor).contains("the token expires"),
        "{}",
        stderr(&doctor)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_due_for_rotation_under_the_workspace_policy_are_warned_about() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let fresh = e.run(&["token", "list"], None, &[]).await;
    assert!(
        !stderr(&fresh).contains("due for rotation"),
        "{}",
        stderr(&fresh)
    );
    let backdated = e
        .store
        .get_token(&e.fixture.workspace, admin[4..20].parse().unwrap())
        .await
        .unwrap();
    let forty_days_ago = knowmind_db::to_micros(backdated.created_at - time::Duration::days(40));
    sqlx::query("UPDATE tokens SET created_at_us = $1 WHERE id = $2")
        .bind(forty_days_ago)
        .bind(&admin[4..20])
        .execute(e.store.db().pool())
        .await
        .unwrap();
    // 40 days old: not due under the default 90-day interval…
    let standard = e.run(&["token", "list"], None, &[]).await;
    assert!(standard.status.success());
    assert!(
        !stderr(&standard).contains("due for rotation"),
        "{}",
        stderr(&standard)
    );
    let status = e.run(&["--json", "auth", "status"], None, &[]).await;
    let due = json(&status)["rotation_due"].as_str().unwrap().to_owned();
    assert!(
        due.starts_with(
            &(backdated.created_at + time::Duration::days(50))
                .date()
                .to_string()
        ),
        "{due}"
    );
    // …and due under the regulated 30 days, as the server dates it.
    let regulated = e
        .run(&["policy", "set", "--rotation-interval", "30d"], None, &[])
        .await;
    assert!(regulated.status.success(), "{}", stderr(&regulated));
    let old = e.run(&["token", "list"], None, &[]).await;
    assert!(old.status.success());
    assert!(
        stderr(&old).contains("due for rotation"),
        "{}",
        stderr(&old)
    );
    assert!(
        !stderr(&e.run(&["token", "list", "--quiet"], None, &[]).await)
            .contains("due for rotation")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_tokens_in_env_files_git_would_commit() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    assert!(e.login(&token).await.status.success());
    let repo = e.home.path();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).status.success());
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    std::fs::write(
        repo.join("deploy/prod.env"),
        format!("KNOWMIND_TOKEN={token}\n"),
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "knowmind/\n").unwrap(); // the config dir is ignored
    let found = e.run(&["doctor"], None, &[]).await;
    assert_eq!(found.status.code(), Some(1));
    assert!(
        stderr(&found).contains("prod.env holds a knowmind token"),
        "{}",
        stderr(&found)
    );
    assert!(
        !stderr(&found).contains(&token[20..52]),
        "the finding does not print the token"
    );
    std::fs::write(repo.join(".gitignore"), "knowmind/\n*.env\n").unwrap();
    let clean = e.run(&["doctor"], None, &[]).await;
    assert!(!stderr(&clean).contains("prod.env"), "{}", stderr(&clean));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_takes_the_family_and_the_lineage_shows_who_rotated() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let stolen = e.issue(&[Scope::Read]).await;
    // The thief rotates the stolen token with its own credential.
    let rotated = e
        .run(
            &["token", "rotate", "self", "--grace", "1h", "--json"],
            None,
            &[("KNOWMIND_TOKEN", &stolen)],
        )
        .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let successor = json(&rotated)["id"].as_str().unwrap().to_owned();
    let list = e.run(&["token", "list"], None, &[("COLUMNS", "200")]).await;
    assert!(
        stdout(&list).contains("(self-rotated)"),
        "{}",
        stdout(&list)
    );
    let view = e.run(&["token", "view", &stolen[4..20]], None, &[]).await;
    let text = stdout(&view);
    assert!(
        text.contains("family") && text.contains(&successor) && text.contains("self-rotated"),
        "{text}"
    );
    let revoked = e
        .run(&["token", "revoke", &stolen[4..20], "--yes"], None, &[])
        .await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(
        stderr(&revoked).contains(&successor) && stderr(&revoked).contains("family"),
        "{}",
        stderr(&revoked)
    );
    let view = e
        .run(&["token", "view", &successor, "--json"], None, &[])
        .await;
    assert_eq!(json(&view)["state"], "revoked");

    // --only-this spares the successor.
    let spared = e.issue(&[Scope::Read]).await;
    let rotated = e
        .run(
            &["token", "rotate", "self", "--grace", "1h", "--json"],
            None,
            &[("KNOWMIND_TOKEN", &spared)],
        )
        .await;
    let next = json(&rotated)["id"].as_str().unwrap().to_owned();
    let only = e
        .run(
            &["token", "revoke", &spared[4..20], "--only-this", "--yes"],
            None,
            &[],
        )
        .await;
    assert!(only.status.success(), "{}", stderr(&only));
    let view = e.run(&["token", "view", &next, "--json"], None, &[]).await;
    assert_eq!(json(&view)["state"], "active");

    // The policy.
    let set = e
        .run(
            &["policy", "set", "--reuse-detection", "revoke-family"],
            None,
            &[],
        )
        .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let show = e.run(&["policy", "show", "--json"], None, &[]).await;
    assert_eq!(json(&show)["reuse_detection"], "revoke_family");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_follow_every_page_and_say_when_a_limit_cuts_them() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    for _ in 0..520 {
        e.issue(&[Scope::Read]).await;
    }
    let vars = [("KNOWMIND_TOKEN", admin.as_str())];
    let all = e
        .run(
            &["--json", "token", "list", "--server", &e.url],
            None,
            &vars,
        )
        .await;
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(
        json(&all).as_array().unwrap().len(),
        521,
        "past the server's page of 500"
    );
    let cut = e
        .run(
            &[
                "--json", "token", "list", "--limit", "7", "--server", &e.url,
            ],
            None,
            &vars,
        )
        .await;
    assert_eq!(json(&cut).as_array().unwrap().len(), 7);
    assert!(
        stderr(&cut).contains("514 more match"),
        "the count of what was left out: {}",
        stderr(&cut)
    );
    // 521 token.created events and more: 200 by default, with a word; --all for every one.
    let events = e
        .run(
            &["--json", "audit", "list", "--server", &e.url],
            None,
            &vars,
        )
        .await;
    assert_eq!(json(&events).as_array().unwrap().len(), 200);
    assert!(stderr(&events).contains("--all"), "{}", stderr(&events));
    let every = e
        .run(
            &["--json", "audit", "list", "--all", "--server", &e.url],
            None,
            &vars,
        )
        .await;
    assert!(json(&every).as_array().unwrap().len() >= 521);
    // Bad input is refused locally, naming the flag, exit 2.
    for (args, flag) in [
        (
            vec!["token", "create", "x", "--scope", "superuser"],
            "--scope",
        ),
        (
            vec![
                "token",
                "create",
                "x",
                "--scope",
                "read",
                "--expires-in",
                "soon",
            ],
            "--expires-in",
        ),
    ] {
        let mut args = args;
        args.extend(["--server", &e.url]);
        let out = e.run(&args, None, &vars).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
    // Revoking two at once in JSON is one document; the kmt_<id>… form is taken as an id.
    let a = e.issue(&[Scope::Read]).await;
    let b = e.issue(&[Scope::Read]).await;
    let masked_a = format!("kmt_{}…", &a[4..20]);
    let out = e
        .run(
            &[
                "--json",
                "token",
                "revoke",
                &masked_a,
                &b[4..20],
                "--yes",
                "--server",
                &e.url,
            ],
            None,
            &vars,
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), 2);
    // A whole token given where an id belongs is refused without being echoed.
    let out = e
        .run(&["token", "view", &a, "--server", &e.url], None, &vars)
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(&a[20..52]), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_and_rotate_say_how_long_a_rotated_token_really_lives() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    let target = e.issue(&[Scope::Read]).await;
    let vars = [("KNOWMIND_TOKEN", admin.as_str())];
    let id = &target[4..20];
    let fresh = e
        .run(&["token", "view", id, "--server", &e.url], None, &vars)
        .await;
    let text = stdout(&fresh);
    assert!(text.contains("last used  never\n"), "{text}");
    assert!(
        text.contains("expires    never (rotate it with an expiry"),
        "{text}"
    );
    let created = text.lines().find(|l| l.starts_with("created")).unwrap();
    assert!(
        created.contains("Z) by "),
        "an exact RFC 3339 time beside the relative one: {created}"
    );
    let rotated = e
        .run(
            &["token", "rotate", id, "--grace", "1h", "--server", &e.url],
            None,
            &vars,
        )
        .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).trim().parse::<token_core::Token>().is_ok(),
        "stdout is the token alone"
    );
    assert!(
        stderr(&rotated).contains(&format!(
            "the old one {id} keeps working for a grace period that ends in 1 hour"
        )),
        "{}",
        stderr(&rotated)
    );
    let old = e
        .run(
            &["token", "view", &format!("kmt_{id}…"), "--server", &e.url],
            None,
            &vars,
        )
        .await;
    let text = stdout(&old);
    assert!(
        text.contains("(rotated; its grace period ends in 1 hour"),
        "{text}"
    );
    assert!(text.contains("rotated to"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_fit_where_the_token_came_from() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    let vars = [("KNOWMIND_TOKEN", admin.as_str())];
    let created = e
        .run(
            &[
                "token", "create", "forever", "--scope", "read", "--server", &e.url,
            ],
            None,
            &vars,
        )
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stderr(&created).contains("never expires"),
        "{}",
        stderr(&created)
    );
    let token = stdout(&created).trim().to_owned();
    let revoked = e
        .run(
            &[
                "token",
                "revoke",
                &token[4..20],
                "--yes",
                "--server",
                &e.url,
            ],
            None,
            &vars,
        )
        .await;
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let refused = e
        .run(
            &["auth", "status", "--server", &e.url],
            None,
            &[("KNOWMIND_TOKEN", token.as_str())],
        )
        .await;
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        stderr(&refused).contains("KNOWMIND_TOKEN holds it"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !stderr(&refused).contains("auth login"),
        "login cannot help while the variable wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_actually_happened_and_speaks_json() {
    let e = env().await;
    let token = e.issue(&[Scope::Read]).await;
    assert!(e.login(&token).await.status.success());
    let report = e.run(&["--json", "doctor"], None, &[]).await;
    let value = json(&report);
    assert!(
        value["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["ok"] == true),
        "{value}"
    );
    assert!(
        stderr(&report).is_empty() || !stderr(&report).contains("✓"),
        "JSON mode prints no text findings"
    );
    // The server down: the token could not be checked — it was not refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let vars = [("KNOWMIND_TOKEN", token.as_str())];
    let out = e.run(&["doctor", "--server", &down], None, &vars).await;
    assert!(
        stderr(&out).contains("cannot reach the knowmind server")
            && stderr(&out).contains("connection refused"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("could not be checked"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("is refused"), "{}", stderr(&out));
    // A broken config file: doctor says what is wrong with it, not "no server configured".
    std::fs::write(e.config_file(), "{\"servers\": {}, \"colour\": 1}").unwrap();
    let out = e.run(&["doctor"], None, &[]).await;
    assert!(
        stderr(&out).contains("not a valid knowmind config"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("unknown field `colour`") && stderr(&out).contains("at line 1"),
        "names the field and where: {}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("no server configured"),
        "{}",
        stderr(&out)
    );
    let logout = e
        .run(&["--json", "auth", "logout", "--server", &e.url], None, &[])
        .await;
    assert_eq!(
        logout.status.code(),
        Some(1),
        "the broken file is refused: {}",
        stderr(&logout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_filters_are_checked_locally_and_self_means_the_token_in_use() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    let vars = [("KNOWMIND_TOKEN", admin.as_str())];
    for (args, flag) in [
        (["--action", "token.exploded"], "--action"),
        (["--since", "yesterday"], "--since"),
    ] {
        let mut all = vec!["audit", "list", "--server", &e.url];
        all.extend(args);
        let out = e.run(&all, None, &vars).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
    let mine = e
        .run(
            &[
                "--json", "audit", "list", "--token", "self", "--server", &e.url,
            ],
            None,
            &vars,
        )
        .await;
    assert!(mine.status.success(), "{}", stderr(&mine));
    let events = json(&mine);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|ev| ev["target_id"] == admin[4..20]),
        "{events}"
    );
}

#[tokio::test]
async fn oauth_clients_are_listed_flagged_shown_and_removed_with_their_tokens() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let ws = e.fixture.workspace.clone();
    // The owner approves the first one (a connection and a code), not the second.
    let known = connected_client(&e, "Known sync", true).await;
    let never = connected_client(&e, "Never approved", false).await;

    let list = e
        .run(&["oauth", "clients", "list", "--json"], None, &[])
        .await;
    assert!(list.status.success(), "{}", stderr(&list));
    let items = json(&list);
    assert_eq!(items.as_array().unwrap().len(), 2);
    let text = stdout(&e.run(&["oauth", "clients", "list"], None, &[]).await);
    let flagged = text.lines().find(|l| l.contains(&never.id)).unwrap();
    assert!(flagged.contains("never approved"), "{text}");
    let fine = text.lines().find(|l| l.contains(&known.id)).unwrap();
    assert!(!fine.contains('⚠'), "{text}");

    let shown = e
        .run(&["oauth", "clients", "show", &known.id], None, &[])
        .await;
    assert!(
        stdout(&shown).contains("1 member(s) connected"),
        "{}",
        stdout(&shown)
    );
    let connections = e
        .run(&["oauth", "connections", "list", "--json"], None, &[])
        .await;
    assert_eq!(json(&connections)[0]["client_id"], known.id.as_str());

    // Removal asks first (refused without a terminal), then with --yes goes through, audited.
    let refused = e
        .run(&["oauth", "clients", "remove", &known.id], None, &[])
        .await;
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let bad = e
        .run(
            &["oauth", "clients", "remove", "../tokens", "--yes"],
            None,
            &[],
        )
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let removed = e
        .run(
            &[
                "oauth",
                "clients",
                "remove",
                &known.id,
                "--yes",
                "--reason",
                "unknown connector",
            ],
            None,
            &[],
        )
        .await;
    assert!(removed.status.success(), "{}", stderr(&removed));
    let after = e.store.get_client(&ws, &known.id).await.unwrap();
    assert!(after.removed_at.is_some());
    assert_eq!(
        after.connected_members, 0,
        "its connection was revoked with it"
    );
}

#[tokio::test]
async fn every_command_speaks_one_json_document_with_json() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let client = connected_client(&e, "Sync", true).await;
    let connection = e
        .store
        .list_connections(&e.fixture.workspace, None, None, false)
        .await
        .unwrap()
        .remove(0)
        .id;
    let created = e
        .run(
            &["--json", "token", "create", "json-check", "--scope", "read"],
            None,
            &[],
        )
        .await;
    let id = json(&created)["id"].as_str().unwrap().to_owned();
    let rotated = e.run(&["--json", "token", "rotate", &id], None, &[]).await;
    let new_id = json(&rotated)["id"].as_str().unwrap().to_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["auth", "status"],
        vec!["token", "list"],
        vec!["token", "view", &new_id],
        vec!["token", "usage", "self"],
        vec!["token", "revoke", &new_id, "--yes"],
        vec!["audit", "list"],
        vec!["audit", "verify"],
        vec!["policy", "show"],
        vec!["policy", "set", "--reuse-detection", "alert"],
        vec!["oauth", "clients", "list"],
        vec!["oauth", "clients", "show", &client.id],
        vec!["oauth", "connections", "list"],
        vec!["oauth", "connections", "revoke", &connection, "--yes"],
        vec!["oauth", "clients", "remove", &client.id, "--yes"],
        vec!["doctor"],
        vec!["auth", "logout"],
    ];
    for args in commands {
        let mut all = vec!["--json"];
        all.extend(&args);
        let out = e.run(&all, None, &[]).await;
        let text = stdout(&out);
        let parsed: Result<Value, _> = serde_json::from_str(&text);
        assert!(
            parsed.is_ok(),
            "`knowmind --json {}` printed no single JSON document: {text:?} / {}",
            args.join(" "),
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_its_grace_period_says_when_it_really_stops() {
    let e = env().await;
    let token = e.issue(&[Scope::Admin]).await;
    let with = [
        ("KNOWMIND_TOKEN", token.as_str()),
        ("KNOWMIND_SERVER", e.url.as_str()),
    ];
    let rotated = e
        .run(&["token", "rotate", "self", "--grace", "1h"], None, &with)
        .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let status = e.run(&["--json", "auth", "status"], None, &with).await;
    let status = json(&status);
    assert!(status["grace_ends_at"].is_string(), "{status}");
    assert!(status["rotated_to"].is_string(), "{status}");
    let text = e.run(&["auth", "status"], None, &with).await;
    assert!(stdout(&text).contains("grace period"), "{}", stdout(&text));
    assert!(
        !stdout(&text).contains("+00:00:00"),
        "RFC 3339 times: {}",
        stdout(&text)
    );
    let doctor = e.run(&["--json", "doctor"], None, &with).await;
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        stdout(&doctor).contains("was rotated and stops working"),
        "{}",
        stdout(&doctor)
    );
    assert!(
        stderr(&doctor).is_empty(),
        "--json says it all on stdout: {}",
        stderr(&doctor)
    );
    let list = e.run(&["token", "list"], None, &with).await;
    assert!(stdout(&list).contains("grace"), "{}", stdout(&list));
    assert!(
        stderr(&list).contains("was rotated and stops working"),
        "every command warns: {}",
        stderr(&list)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_are_checked_before_sending_and_failures_say_what_happened() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    for args in [
        vec!["token", "rotate", "self", "--grace", "8d"],
        vec!["token", "rotate", "self", "--grace", "5x"],
        vec!["token", "rotate", "self", "--expires-in", "abc"],
        vec![
            "token",
            "create",
            "x",
            "--scope",
            "read",
            "--expires-in",
            "0d",
        ],
        vec![
            "token",
            "create",
            "x",
            "--scope",
            "read",
            "--expires-at",
            "2020-01-01T00:00:00Z",
        ],
    ] {
        let out = e.run(&args, None, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let flag = args.iter().rev().nth(1).unwrap();
        assert!(
            stderr(&out).contains(flag),
            "{args:?} names {flag}: {}",
            stderr(&out)
        );
    }
    // Nothing listens: said so.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = e
        .run(
            &["token", "list"],
            None,
            &[
                ("KNOWMIND_TOKEN", admin.as_str()),
                ("KNOWMIND_SERVER", &format!("http://127.0.0.1:{port}")),
            ],
        )
        .await;
    assert!(
        stderr(&refused).contains("connection refused"),
        "{}",
        stderr(&refused)
    );
    // https to a plain-http server: a TLS failure, named.
    let tls = e
        .run(
            &["token", "list"],
            None,
            &[
                ("KNOWMIND_TOKEN", admin.as_str()),
                ("KNOWMIND_SERVER", &e.url.replace("http://", "https://")),
            ],
        )
        .await;
    assert!(stderr(&tls).contains("TLS"), "{}", stderr(&tls));
    // Plain http to another machine: doctor says what every command would refuse.
    let doctor = e
        .run(
            &["doctor", "--server", "http://192.0.2.1:8080"],
            None,
            &[("KNOWMIND_TOKEN", admin.as_str())],
        )
        .await;
    assert_eq!(doctor.status.code(), Some(1), "{}", stdout(&doctor));
    let said = format!("{}{}", stdout(&doctor), stderr(&doctor));
    assert!(said.contains("plain http"), "{}", said);
    // Empty variables count as unset.
    let empty = e
        .run(
            &["auth", "status"],
            None,
            &[
                ("KNOWMIND_SERVER", ""),
                ("KNOWMIND_ALLOW_INSECURE_HTTP", ""),
            ],
        )
        .await;
    assert!(empty.status.success(), "{}", stderr(&empty));
    // KNOWMIND_ALLOW_INSECURE_HTTP takes 1 as well as true.
    let allowed = e
        .run(
            &["auth", "status", "--server", &e.url],
            None,
            &[
                ("KNOWMIND_ALLOW_INSECURE_HTTP", "1"),
                ("KNOWMIND_TOKEN", admin.as_str()),
            ],
        )
        .await;
    assert!(allowed.status.success(), "{}", stderr(&allowed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_lists_say_how_many_more_and_usage_pages() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    for i in 0..4 {
        e.fixture
            .issue(&format!("t{i}"), &[Scope::Read])
            .await
            .unwrap();
    }
    let cut = e.run(&["token", "list", "--limit", "2"], None, &[]).await;
    // Five tokens: the admin token and four.
    assert!(stderr(&cut).contains("3 more match"), "{}", stderr(&cut));
    for _ in 0..5 {
        e.run(&["auth", "status"], None, &[]).await;
    }
    e.store.usage_writer().flush().await.unwrap();
    let usage = e
        .run(
            &["--json", "token", "usage", "self", "--limit", "3"],
            None,
            &[],
        )
        .await;
    assert_eq!(json(&usage)["recent"].as_array().unwrap().len(), 3);
    assert!(
        stderr(&usage).contains("more were recorded"),
        "{}",
        stderr(&usage)
    );
    let text = e.run(&["token", "usage", "self", "--all"], None, &[]).await;
    assert!(
        stdout(&text).contains("GET /v1/tokens/self"),
        "{}",
        stdout(&text)
    );
    let switched = e
        .run(&["--json", "auth", "switch", "--server", &e.url], None, &[])
        .await;
    assert_eq!(json(&switched)["default"], e.url.trim_end_matches('/'));
    let login = e
        .run(
            &["--json", "auth", "login", "--server", &e.url],
            Some(&format!("{admin}\n")),
            &[],
        )
        .await;
    assert!(json(&login)["token_id"].is_string(), "{}", stdout(&login));
}

/// An OAuth client registered by the workspace's owner, who has approved it when `approved`.
async fn connected_client(e: &Env, name: &str, approved: bool) -> knowmind_api::OAuthClient {
    let ctx = audit::Context::system();
    let owner = e
        .store
        .get_member(&e.fixture.workspace, &e.fixture.owner)
        .await
        .unwrap();
    let new = knowmind_api::RegisterClient {
        name: name.into(),
        redirect_uris: vec!["https://connector.example/cb".into()],
        scopes: Scope::Read.into(),
        confidential: false,
        client_credentials: false,
    };
    let client = e
        .store
        .register_client(&e.fixture.workspace, &owner.id, new, &ctx)
        .await
        .unwrap()
        .client;
    if approved {
        let request = token_store::AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: "https://connector.example/cb".into(),
            scopes: Scope::Read.into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        };
        e.store
            .answer_authorization(&owner, &request, token_store::Consent::Approve, &ctx)
            .await
            .unwrap();
    }
    client
}

#[tokio::test]
async fn a_regulated_policy_is_set_shown_and_enforced() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let set = e
        .run(
            &["--json", "policy", "set", "--preset", "regulated"],
            None,
            &[],
        )
        .await;
    let policy = json(&set);
    assert_eq!(policy["rotation_interval"], "30d");
    assert_eq!(policy["max_lifetime"], "90d");
    assert_eq!(policy["require_expiry"], true);
    let refused = e
        .run(&["token", "create", "ci", "--scope", "read"], None, &[])
        .await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("workspace policy: max_lifetime"),
        "names the rule: {}",
        stderr(&refused)
    );
    let fine = e
        .run(
            &[
                "token",
                "create",
                "ci",
                "--scope",
                "read",
                "--expires-in",
                "30d",
            ],
            None,
            &[],
        )
        .await;
    assert!(fine.status.success(), "{}", stderr(&fine));
    let relaxed = e
        .run(
            &[
                "policy",
                "set",
                "--max-lifetime",
                "none",
                "--require-expiry",
                "off",
            ],
            None,
            &[],
        )
        .await;
    assert!(
        stdout(&relaxed).contains("maximum lifetime: none"),
        "{}",
        stdout(&relaxed)
    );
    assert!(
        stdout(&relaxed).contains("rotation interval: 30d"),
        "{}",
        stdout(&relaxed)
    );
    let bad = e
        .run(
            &["policy", "set", "--rotation-interval", "monthly"],
            None,
            &[],
        )
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[tokio::test]
async fn token_list_shows_what_is_due_or_expiring() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let soon = e
        .run(
            &[
                "--json",
                "token",
                "create",
                "soon",
                "--scope",
                "read",
                "--expires-in",
                "3d",
            ],
            None,
            &[],
        )
        .await;
    let soon = json(&soon)["id"].as_str().unwrap().to_owned();
    let expiring = e
        .run(
            &["--json", "token", "list", "--expiring-within", "7d"],
            None,
            &[],
        )
        .await;
    let listed: Vec<String> = json(&expiring)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, vec![soon.clone()]);
    let none_due = e
        .run(&["--json", "token", "list", "--due"], None, &[])
        .await;
    assert!(json(&none_due).as_array().unwrap().is_empty());
    // With a one-second interval, everything live is due a moment later.
    let set = e
        .run(&["policy", "set", "--rotation-interval", "1s"], None, &[])
        .await;
    assert!(set.status.success(), "{}", stderr(&set));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let due = e
        .run(&["--json", "token", "list", "--due"], None, &[])
        .await;
    assert!(
        json(&due).as_array().unwrap().len() >= 2,
        "{}",
        stdout(&due)
    );
    let bad = e
        .run(&["token", "list", "--expiring-within", "soon"], None, &[])
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[tokio::test]
async fn policy_check_lists_then_applies_and_allow_lists_are_checked_before_sending() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let bad = e
        .run(
            &[
                "token",
                "create",
                "x",
                "--scope",
                "read",
                "--allow-from",
                "10.0.0.1/8",
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("did you mean 10.0.0.0/8"),
        "{}",
        stderr(&bad)
    );
    let created = e
        .run(
            &[
                "--json",
                "token",
                "create",
                "office",
                "--scope",
                "read",
                "--allow-from",
                "192.0.2.0/24,2001:db8::/32",
            ],
            None,
            &[],
        )
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let id = json(&created)["id"].as_str().unwrap().to_owned();
    let view = e.run(&["token", "view", &id], None, &[]).await;
    assert!(
        stdout(&view).contains("192.0.2.0/24, 2001:db8::/32"),
        "{}",
        stdout(&view)
    );
    let set = e
        .run(&["policy", "set", "--max-lifetime", "30d"], None, &[])
        .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let dry = e.run(&["policy", "check"], None, &[]).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains(&id), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("max_lifetime"), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("Dry run"), "{}", stdout(&dry));
    // Applying changes tokens: not without a terminal to confirm on, or --yes.
    let unconfirmed = e.run(&["policy", "check", "--apply"], None, &[]).await;
    assert!(!unconfirmed.status.success(), "{}", stdout(&unconfirmed));
    let still = e.run(&["--json", "policy", "check"], None, &[]).await;
    assert!(!json(&still)["findings"].as_array().unwrap().is_empty());
    let applied = e
        .run(
            &["--json", "policy", "check", "--apply", "--yes"],
            None,
            &[],
        )
        .await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(json(&applied)["applied"], true);
    let clean = e.run(&["policy", "check"], None, &[]).await;
    assert!(
        stdout(&clean).contains("Every live token complies"),
        "{}",
        stdout(&clean)
    );
}

#[tokio::test]
async fn rotate_with_handover_says_when_the_old_token_stops_and_view_shows_it() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let reader = e.issue(&[Scope::Read]).await;
    let id = &reader[4..20];
    let lone = e
        .run(&["token", "rotate", id, "--overlap", "5m"], None, &[])
        .await;
    assert_eq!(lone.status.code(), Some(2), "{}", stderr(&lone));
    let rotated = e
        .run(&["token", "rotate", id, "--handover", "2d"], None, &[])
        .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stderr(&rotated).contains("keeps working until the new one has been used"),
        "{}",
        stderr(&rotated)
    );
    let view = e.run(&["token", "view", id], None, &[]).await;
    assert!(
        stdout(&view).contains("rotated with hand-over"),
        "{}",
        stdout(&view)
    );
}

#[tokio::test]
async fn webhooks_are_added_listed_logged_and_removed() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let added = e
        .run(
            &[
                "webhook",
                "add",
                "http://127.0.0.1:9/hook",
                "--event",
                "token.revoked",
            ],
            None,
            &[],
        )
        .await;
    assert!(added.status.success(), "{}", stderr(&added));
    let secret = stdout(&added).trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!stderr(&added).contains(&secret));
    let list = e.run(&["--json", "webhook", "list"], None, &[]).await;
    let hooks = json(&list);
    let id = hooks[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(hooks[0]["events"], serde_json::json!(["token.revoked"]));
    assert!(!stdout(&list).contains(&secret));
    let insecure = e
        .run(&["webhook", "add", "http://example.org/hook"], None, &[])
        .await;
    assert_eq!(insecure.status.code(), Some(1), "{}", stderr(&insecure));
    assert!(stderr(&insecure).contains("https"), "{}", stderr(&insecure));
    let log = e.run(&["webhook", "deliveries", &id], None, &[]).await;
    assert!(log.status.success(), "{}", stderr(&log));
    assert!(
        stdout(&log).contains("Nothing delivered"),
        "{}",
        stdout(&log)
    );
    let bad_id = e.run(&["webhook", "deliveries", "nope"], None, &[]).await;
    assert_eq!(bad_id.status.code(), Some(2));
    let removed = e.run(&["webhook", "remove", &id, "--yes"], None, &[]).await;
    assert!(removed.status.success(), "{}", stderr(&removed));
    let empty = e.run(&["webhook", "list"], None, &[]).await;
    assert!(
        stdout(&empty).contains("No webhook endpoints"),
        "{}",
        stdout(&empty)
    );
}

#[tokio::test]
async fn scan_checks_found_tokens_by_id_and_revokes_them_on_request() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let leaked = e.issue(&[Scope::Read]).await;
    let dir = e.home.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), format!("TOKEN={leaked}\n")).unwrap();
    let dir_text = dir.to_string_lossy().into_owned();
    let live = e
        .run(
            &["scan", "--check-live", "--format", "json", &dir_text],
            None,
            &[],
        )
        .await;
    assert_eq!(live.status.code(), Some(1), "{}", stderr(&live));
    assert_eq!(json(&live)[0]["state"], "active", "{}", stdout(&live));
    let revoked = e.run(&["scan", "--revoke", &dir_text], None, &[]).await;
    assert_eq!(revoked.status.code(), Some(1), "found, and sent");
    assert!(
        stderr(&revoked).contains("to be revoked"),
        "{}",
        stderr(&revoked)
    );
    let id: token_core::TokenId = leaked[4..20].parse().unwrap();
    let mut state = None;
    for _ in 0..100 {
        let record = e.store.get_token(&e.fixture.workspace, id).await.unwrap();
        if record.state == token_store::TokenState::Revoked {
            state = record.revoked_reason;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        state.as_deref(),
        Some("leaked: reported to the revocation endpoint")
    );
}

#[tokio::test]
async fn a_canary_is_created_without_scopes_and_shown_as_one() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let both = e
        .run(
            &["token", "create", "bait", "--canary", "--scope", "read"],
            None,
            &[],
        )
        .await;
    assert_eq!(
        both.status.code(),
        Some(2),
        "a canary has no scopes to give"
    );
    let created = e
        .run(
            &["--json", "token", "create", "bait", "--canary"],
            None,
            &[],
        )
        .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let id = json(&created)["id"].as_str().unwrap().to_owned();
    assert_eq!(json(&created)["canary"], true);
    let view = e.run(&["token", "view", &id], None, &[]).await;
    assert!(stdout(&view).contains("canary"), "{}", stdout(&view));
    // Used by whoever found it: its security log starts with the anomaly.
    let bait = json(&created)["token"].as_str().unwrap().to_owned();
    let call = token_store::Call {
        client_ip: Some("203.0.113.9".parse().unwrap()),
        ..token_store::Call::default()
    };
    assert!(
        e.store
            .verify(&bait, token_core::Scope::Read.into(), &call)
            .await
            .is_err()
    );
    let usage = e.run(&["token", "usage", &id], None, &[]).await;
    let out = stdout(&usage);
    let first = out.lines().nth(1).unwrap_or_default();
    assert!(
        out.trim_start().starts_with("WHEN")
            && first.contains("high")
            && first.contains("canary")
            && first.contains("203.0.113.0/24"),
        "{out}"
    );
}

#[tokio::test]
async fn an_incident_is_opened_reported_and_amended_from_the_cli() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());
    let leaked = e.issue(&[Scope::Read]).await;
    let id = &leaked[4..20];
    let opened = e
        .run(
            &[
                "incident",
                "open",
                id,
                "--replace",
                "--summary",
                "in a screenshot",
            ],
            None,
            &[],
        )
        .await;
    assert!(opened.status.success(), "{}", stderr(&opened));
    let replacement = stdout(&opened).trim().to_owned();
    assert!(replacement.starts_with("kmt_"), "{replacement}");
    assert!(
        stderr(&opened).contains("GDPR Art. 33 deadline"),
        "{}",
        stderr(&opened)
    );
    let list = e.run(&["--json", "incident", "list"], None, &[]).await;
    let incident = json(&list)[0]["id"].as_str().unwrap().to_owned();
    let report = e.run(&["incident", "report", &incident], None, &[]).await;
    assert!(
        stdout(&report).contains("# Security incident"),
        "{}",
        stdout(&report)
    );
    assert!(!stdout(&report).contains(&replacement));
    let amended = e
        .run(
            &[
                "incident",
                "amend",
                &incident,
                "--status",
                "not-notifiable",
                "--decision-reason",
                "no data read",
            ],
            None,
            &[],
        )
        .await;
    assert!(amended.status.success(), "{}", stderr(&amended));
    let nothing = e.run(&["incident", "amend", &incident], None, &[]).await;
    assert_eq!(nothing.status.code(), Some(2));
}

/// The trial's small findings, each through the binary: what `rotate` of another token and `token
/// view` say, a date without a time, `auth login` beside a `token_command`, an empty
/// `KNOWMIND_CONFIG_DIR`, and `doctor` on a loose config without `--fix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_small_edges_found_in_the_trial() {
    let e = env().await;
    let admin = e.issue(&[Scope::Admin]).await;
    assert!(e.login(&admin).await.status.success());

    // A token with a description; rotating it names the new id and when the old one stops.
    let out = e
        .run(
            &[
                "token",
                "create",
                "nightly",
                "--scope",
                "read",
                "--expires-in",
                "30d",
                "--description",
                "for the nightly export",
            ],
            None,
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let old: token_core::Token = stdout(&out).trim().parse().unwrap();
    let old_id = old.id().to_string();
    let out = e
        .run(&["token", "rotate", &old_id, "--grace", "1h"], None, &[])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let new: token_core::Token = stdout(&out).trim().parse().unwrap();
    let said = stderr(&out);
    assert!(said.contains(&new.id().to_string()), "{said}");
    assert!(
        said.contains(&old_id) && said.contains("grace period"),
        "{said}"
    );
    // token view: the description, and a revocation with its reason.
    let out = e
        .run(
            &[
                "token",
                "revoke",
                &new.id().to_string(),
                "--yes",
                "--reason",
                "left the team",
            ],
            None,
            &[],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = e
        .run(&["token", "view", &new.id().to_string()], None, &[])
        .await;
    let view = stdout(&out);
    assert!(view.contains("for the nightly export"), "{view}");
    assert!(view.contains("left the team"), "{view}");

    // A date without a time is refused before sending, naming the flag.
    let out = e
        .run(
            &[
                "token",
                "create",
                "x",
                "--scope",
                "read",
                "--expires-at",
                "2027-01-01",
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--expires-at"), "{}", stderr(&out));

    // auth login keeps a configured token_command, and says it wins.
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e.config_file()).unwrap()).unwrap();
    config["servers"][e.url.as_str()]["token_command"] = "printenv MY_TOKEN".into();
    std::fs::write(e.config_file(), config.to_string()).unwrap();
    let other = e.issue(&[Scope::Read]).await;
    let out = e.login(&other).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token_command is configured"),
        "{}",
        stderr(&out)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(e.config_file()).unwrap()).unwrap();
    assert_eq!(
        config["servers"][e.url.as_str()]["token_command"],
        "printenv MY_TOKEN"
    );

    // An empty KNOWMIND_CONFIG_DIR counts as unset: the config goes under $HOME.
    let out = e
        .run(
            &["auth", "login", "--server", &e.url],
            Some(&format!("{other}\n")),
            &[("KNOWMIND_CONFIG_DIR", "")],
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(e.home.path().join(".knowmind/config.json").exists());

    // doctor on a config others can read: the problem and the fix, without changing anything.
    std::fs::set_permissions(e.config_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = e.run(&["doctor"], None, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("644") && said.contains("doctor --fix"),
        "{said}"
    );
    assert_eq!(
        crate::mode(&e.config_file()),
        0o644,
        "doctor without --fix changes nothing"
    );
}
