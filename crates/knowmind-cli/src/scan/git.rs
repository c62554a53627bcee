//! Scanning a git repository: what is staged for the next commit, or every blob its history
//! still holds (every ref and the reflog, so deleted files and rewritten branches are included
//! as long as git keeps them). Each blob is read once, through one `git cat-file --batch`; the
//! commits that hold a blob with a token are looked up only for those blobs.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Finding, is_binary, scan_bytes};
use crate::error::CliError;

/// What a history scan saw.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub(crate) findings: Vec<Finding>,
    pub(crate) blobs: u64,
    pub(crate) bytes: u64,
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(repo);
    command
}

/// Runs a git command to completion, its standard output as bytes.
fn output(command: &mut Command) -> Result<Vec<u8>, CliError> {
    let out = command
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| CliError::new(format!("could not run git: {e}")).hint("install git"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::usage(format!(
            "git failed: {}",
            stderr.lines().next().unwrap_or("no message")
        ))
        .hint("run this inside a git repository (or pass --repo)"));
    }
    Ok(out.stdout)
}

/// Reads the blobs `oids` (each once) through `git cat-file --batch` and scans them; `path`
/// names each for the report.
fn scan_blobs(
    repo: &Path,
    blobs: &[(String, String)],
    binary: bool,
    scanned: &mut Scanned,
) -> Result<Vec<(String, Finding)>, CliError> {
    let mut child = git(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::new(format!("could not run git: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| CliError::new("git cat-file has no input"))?;
    let oids: Vec<String> = blobs.iter().map(|(oid, _)| oid.clone()).collect();
    // Written from another thread: git answers while we write, and both pipes must keep moving.
    let writer = std::thread::spawn(move || {
        for oid in oids {
            if writeln!(stdin, "{oid}").is_err() {
                break;
            }
        }
    });
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::new("git cat-file has no output"))?;
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut found = Vec::new();
    let mut header = String::new();
    let mut content = Vec::new();
    for (oid, path) in blobs {
        header.clear();
        let read = reader
            .read_line(&mut header)
            .map_err(|e| CliError::new(format!("reading git's output: {e}")))?;
        if read == 0 {
            return Err(CliError::new(
                "git cat-file stopped before every object was read (a corrupt repository, or a \
                 partial clone that cannot fetch?)",
            ));
        }
        let mut parts = header.split_whitespace();
        let (Some(_), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            continue; // "<oid> missing"
        };
        let size: usize = size
            .parse()
            .map_err(|_| CliError::new("git cat-file gave a malformed size"))?;
        content.resize(size + 1, 0); // and the newline after it
        reader
            .read_exact(&mut content)
            .map_err(|e| CliError::new(format!("reading git's output: {e}")))?;
        let body = &content[..size];
        if kind != "blob" || (!binary && is_binary(body)) {
            continue;
        }
        scanned.blobs += 1;
        scanned.bytes += size as u64;
        found.extend(scan_bytes(path, body).into_iter().map(|f| (oid.clone(), f)));
    }
    let _ = writer.join();
    let status = child
        .wait()
        .map_err(|e| CliError::new(format!("waiting for git: {e}")))?;
    if !status.success() {
        return Err(CliError::new(format!("git cat-file failed ({status})")));
    }
    Ok(found)
}

/// Tokens in what is staged for the next commit (the index, not the working tree), wherever
/// in the repository this runs: `git diff --cached --raw` names each added or changed file with
/// its staged blob and its path from the root.
pub(crate) fn scan_staged(repo: &Path, binary: bool) -> Result<Scanned, CliError> {
    let raw = output(git(repo).args([
        "diff",
        "--cached",
        "--raw",
        "-z",
        "--no-abbrev",
        "--diff-filter=ACMRT",
    ]))?;
    // ":<old mode> <new mode> <old blob> <new blob> <status>\0<path>\0" (two paths for a
    // rename or copy; the second is the new one).
    let mut blobs = Vec::new();
    let mut fields = raw.split(|&b| b == 0).filter(|f| !f.is_empty());
    while let Some(meta) = fields.next() {
        let meta = String::from_utf8_lossy(meta);
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let (Some(blob), Some(status)) = (parts.get(3), parts.get(4)) else {
            break;
        };
        let renamed = status.starts_with('R') || status.starts_with('C');
        let mut path = fields.next();
        if renamed {
            path = fields.next();
        }
        if let Some(path) = path {
            blobs.push((
                (*blob).to_owned(),
                String::from_utf8_lossy(path).into_owned(),
            ));
        }
    }
    let mut scanned = Scanned::default();
    let found = scan_blobs(repo, &blobs, binary, &mut scanned)?;
    scanned.findings = found.into_iter().map(|(_, f)| f).collect();
    Ok(scanned)
}

/// Tokens in every blob of the repository's history, each with the commits that hold it.
pub(crate) fn scan_history(repo: &Path, binary: bool) -> Result<Scanned, CliError> {
    let listed = output(git(repo).args([
        "rev-list",
        "--objects",
        "--all",
        "--reflog",
        "--filter=object:type=blob",
        "--filter-provided-objects",
    ]))?;
    let mut seen = std::collections::HashSet::new();
    let blobs: Vec<(String, String)> = String::from_utf8_lossy(&listed)
        .lines()
        .filter_map(|line| {
            let (oid, path) = line.split_once(' ').unwrap_or((line, ""));
            seen.insert(oid.to_owned())
                .then(|| (oid.to_owned(), path.to_owned()))
        })
        .collect();
    let mut scanned = Scanned::default();
    let found = scan_blobs(repo, &blobs, binary, &mut scanned)?;
    let mut commits_of: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (oid, mut finding) in found {
        if !commits_of.contains_key(&oid) {
            let log = output(git(repo).args([
                "log",
                "--all",
                "--reflog",
                "--format=%H",
                &format!("--find-object={oid}"),
            ]))?;
            let mut commits: Vec<String> = String::from_utf8_lossy(&log)
                .lines()
                .map(str::to_owned)
                .collect();
            commits.dedup();
            commits_of.insert(oid.clone(), commits);
        }
        finding.commits = commits_of[&oid].clone();
        scanned.findings.push(finding);
    }
    scanned
        .findings
        .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    Ok(scanned)
}
