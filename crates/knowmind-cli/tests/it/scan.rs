//! `knowmind scan` and `knowmind hook`, the real binary on real files and git repositories.
//! Every token here is generated at run time.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use token_core::Token;

const BIN: &str = env!("CARGO_BIN_EXE_knowmind");

fn token() -> String {
    Token::generate(&mut token_core::rand::rngs::SysRng)
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// The same text with its last character changed: the checksum no longer holds.
fn near_miss(token: &str) -> String {
    let mut near = token.to_owned();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    near
}

fn knowmind(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("KNOWMIND_CONFIG_DIR", dir.join(".no-config"))
        .output()
        .unwrap()
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.org"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn files_are_scanned_with_gitignore_binary_and_near_misses_respected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&git(d, &["init", "-q"]));
    let (env_token, ignored_token, binary_token) = (token(), token(), token());
    std::fs::write(
        d.join(".env"),
        format!("API=1\nKNOWMIND_TOKEN={env_token}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("notes.txt"),
        format!("not one: {}\n", near_miss(&env_token)),
    )
    .unwrap();
    std::fs::write(d.join(".gitignore"), "ignored/\n").unwrap();
    std::fs::create_dir(d.join("ignored")).unwrap();
    std::fs::write(d.join("ignored/secret.txt"), &ignored_token).unwrap();
    std::fs::write(
        d.join("blob.bin"),
        [b"\0\0".as_slice(), binary_token.as_bytes()].concat(),
    )
    .unwrap();

    let found = knowmind(d, &["scan"]);
    assert_eq!(found.status.code(), Some(1), "{}", text(&found.stderr));
    let out = text(&found.stdout);
    let id = &env_token[4..20];
    assert!(
        out.contains(".env") && out.contains("2:16") && out.contains(&format!("kmt_{id}…")),
        "{out}"
    );
    assert!(
        !out.contains("notes.txt"),
        "a near-miss is not a finding: {out}"
    );
    assert!(
        !out.contains("secret.txt") && !out.contains("blob.bin"),
        "{out}"
    );
    for secret in [&env_token, &ignored_token, &binary_token] {
        assert!(!out.contains(secret.as_str()) && !text(&found.stderr).contains(secret.as_str()));
    }
    let everything = knowmind(d, &["scan", "--no-ignore", "--binary", "--format", "json"]);
    let findings: Value = serde_json::from_slice(&everything.stdout).unwrap();
    let mut paths: Vec<String> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("./")
                .to_owned()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, [".env", "blob.bin", "ignored/secret.txt"]);
    assert!(!text(&everything.stdout).contains(&env_token));

    let sarif = knowmind(d, &["scan", "--format", "sarif"]);
    assert_eq!(sarif.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "knowmind/token");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert!(!text(&sarif.stdout).contains(&env_token));

    std::fs::remove_file(d.join(".env")).unwrap();
    let clean = knowmind(d, &["scan"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    assert!(text(&clean.stderr).contains("No knowmind tokens found"));
    let missing = knowmind(d, &["scan", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn staged_files_are_checked_as_the_index_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&git(d, &["init", "-q"]));
    let secret = token();
    std::fs::write(d.join("config.yml"), format!("a: 1\ntoken: {secret}\n")).unwrap();
    assert_eq!(
        knowmind(d, &["scan", "--staged"]).status.code(),
        Some(0),
        "not staged yet"
    );
    ok(&git(d, &["add", "config.yml"]));
    let blocked = knowmind(d, &["scan", "--staged"]);
    assert_eq!(blocked.status.code(), Some(1));
    assert!(
        text(&blocked.stderr).contains("commit blocked"),
        "{}",
        text(&blocked.stderr)
    );
    assert!(text(&blocked.stderr).contains("revoke"));
    assert!(text(&blocked.stdout).contains("config.yml") && text(&blocked.stdout).contains("2:8"));
    // Removed from the working tree but still staged: still blocked (the index is what commits).
    std::fs::write(d.join("config.yml"), "a: 1\n").unwrap();
    assert_eq!(knowmind(d, &["scan", "--staged"]).status.code(), Some(1));
    ok(&git(d, &["add", "config.yml"]));
    assert_eq!(knowmind(d, &["scan", "--staged"]).status.code(), Some(0));
    // From a subdirectory, the whole index still counts.
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/deep.env"), format!("T={secret}\n")).unwrap();
    std::fs::write(d.join("top.env"), format!("T={secret}\n")).unwrap();
    ok(&git(d, &["add", "."]));
    let from_sub = knowmind(&d.join("sub"), &["scan", "--staged"]);
    assert_eq!(from_sub.status.code(), Some(1));
    let said = text(&from_sub.stdout);
    assert!(
        said.contains("sub/deep.env") && said.contains("top.env"),
        "{said}"
    );
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(
        knowmind(outside.path(), &["scan", "--staged"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn history_is_scanned_deleted_files_and_dropped_branches_included() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&git(d, &["init", "-q"]));
    let (deleted, dropped) = (token(), token());
    std::fs::write(d.join("README"), "hello\n").unwrap();
    ok(&git(d, &["add", "."]));
    ok(&git(d, &["commit", "-qm", "first"]));
    std::fs::write(
        d.join("deploy.sh"),
        format!("#!/bin/sh\nexport T={deleted}\n"),
    )
    .unwrap();
    ok(&git(d, &["add", "."]));
    ok(&git(d, &["commit", "-qm", "oops"]));
    let oops = text(&ok(&git(d, &["rev-parse", "HEAD"])).stdout)
        .trim()
        .to_owned();
    ok(&git(d, &["rm", "-q", "deploy.sh"]));
    ok(&git(d, &["commit", "-qm", "remove the token"]));
    ok(&git(d, &["checkout", "-qb", "experiment"]));
    std::fs::write(d.join("try.txt"), &dropped).unwrap();
    ok(&git(d, &["add", "."]));
    ok(&git(d, &["commit", "-qm", "try"]));
    ok(&git(d, &["checkout", "-q", "main"]));
    ok(&git(d, &["branch", "-qD", "experiment"]));

    assert_eq!(
        knowmind(d, &["scan"]).status.code(),
        Some(0),
        "the working tree is clean"
    );
    let history = knowmind(d, &["scan", "--git-history", "--format", "json"]);
    assert_eq!(history.status.code(), Some(1), "{}", text(&history.stderr));
    let findings: Value = serde_json::from_slice(&history.stdout).unwrap();
    let findings = findings.as_array().unwrap();
    let of = |path: &str| {
        findings
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path}: {findings:?}"))
    };
    assert_eq!(of("deploy.sh")["token_id"], &deleted[4..20]);
    assert_eq!(of("deploy.sh")["line"], 2);
    let commits: Vec<&str> = of("deploy.sh")["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        commits.contains(&oops.as_str()),
        "{commits:?} should hold {oops}"
    );
    assert_eq!(
        of("try.txt")["token_id"],
        &dropped[4..20],
        "the reflog still holds it"
    );
    let human = knowmind(d, &["scan", "--git-history"]);
    assert!(
        text(&human.stdout).contains(&oops[..12]),
        "{}",
        text(&human.stdout)
    );
    assert!(!text(&human.stdout).contains(&deleted));
}

#[test]
fn the_hook_blocks_commits_chains_and_uninstalls_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&git(d, &["init", "-q"]));
    // A foreign hook is kept unless asked.
    let hooks = d.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("pre-commit"),
        "#!/bin/sh\ntouch \"$(git rev-parse --show-toplevel)/.ran\"\n",
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x"])
        .arg(hooks.join("pre-commit"))
        .status()
        .unwrap();
    let refused = knowmind(d, &["hook", "install"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--chain"));
    ok(&knowmind(d, &["hook", "install", "--chain"]));
    ok(&knowmind(d, &["hook", "install", "--chain"])); // twice is fine

    let secret = token();
    std::fs::write(d.join("app.env"), format!("TOKEN={secret}\n")).unwrap();
    ok(&git(d, &["add", "app.env"]));
    let blocked = git(d, &["commit", "-qm", "add config"]);
    assert!(!blocked.status.success(), "the commit went through");
    let said = text(&blocked.stderr);
    assert!(
        said.contains("commit blocked") && said.contains("app.env"),
        "{said}"
    );
    assert!(!said.contains(&secret), "{said}");
    assert!(
        !d.join(".ran").exists(),
        "the chained hook runs after the check passes"
    );

    std::fs::write(d.join("app.env"), "TOKEN=from-the-secret-manager\n").unwrap();
    ok(&git(d, &["add", "app.env"]));
    ok(&git(d, &["commit", "-qm", "add config"]));
    assert!(d.join(".ran").exists(), "the chained hook ran");

    // A hook edited since it was installed is not ours to remove.
    let ours = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    std::fs::write(hooks.join("pre-commit"), format!("{ours}echo mine\n")).unwrap();
    assert_eq!(knowmind(d, &["hook", "uninstall"]).status.code(), Some(2));
    std::fs::write(hooks.join("pre-commit"), ours).unwrap();
    ok(&knowmind(d, &["hook", "uninstall"]));
    let restored = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert!(
        restored.contains("touch"),
        "the chained hook is back: {restored}"
    );
    assert_eq!(
        knowmind(d, &["hook", "uninstall"]).status.code(),
        Some(2),
        "only removes its own"
    );
}

#[test]
fn the_hook_goes_where_core_hooks_path_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&git(d, &["init", "-q"]));
    ok(&git(d, &["config", "core.hooksPath", "githooks"]));
    ok(&knowmind(d, &["hook", "install"]));
    assert!(d.join("githooks/pre-commit").exists());
    assert!(!d.join(".git/hooks/pre-commit").exists());
}
