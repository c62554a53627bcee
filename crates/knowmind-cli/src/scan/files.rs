//! Scanning files and directories: walked in parallel, `.gitignore`d files skipped unless asked
//! (hidden files such as `.env` are scanned: that is where tokens hide), `.git` never entered,
//! binary files skipped unless asked.

use std::path::PathBuf;
use std::sync::Mutex;

use super::{Finding, is_binary, scan_bytes};

/// How to walk.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Scan what `.gitignore`, `.ignore` and git's excludes would skip.
    pub(crate) no_ignore: bool,
    /// Scan binary files too.
    pub(crate) binary: bool,
}

/// What a scan saw.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub(crate) findings: Vec<Finding>,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// Paths that could not be read, with why.
    pub(crate) unreadable: Vec<(String, String)>,
}

/// Scans `paths` (files or directories).
pub(crate) fn scan(paths: &[PathBuf], options: Options) -> Scanned {
    let Some((first, rest)) = paths.split_first() else {
        return Scanned::default();
    };
    let mut walk = ignore::WalkBuilder::new(first);
    for path in rest {
        walk.add(path);
    }
    walk.hidden(false)
        .ignore(!options.no_ignore)
        .git_ignore(!options.no_ignore)
        .git_global(!options.no_ignore)
        .git_exclude(!options.no_ignore)
        .parents(!options.no_ignore)
        .filter_entry(|entry| entry.file_name() != ".git")
        .threads(
            std::thread::available_parallelism()
                .map(std::num::NonZero::get)
                .unwrap_or(1),
        );
    let scanned = Mutex::new(Scanned::default());
    walk.build_parallel().run(|| {
        let scanned = &scanned;
        Box::new(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    lock(scanned)
                        .unreadable
                        .push((String::new(), e.to_string()));
                    return ignore::WalkState::Continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            let path = entry.path().display().to_string();
            match std::fs::read(entry.path()) {
                Ok(content) if !options.binary && is_binary(&content) => {}
                Ok(content) => {
                    let found = scan_bytes(&path, &content);
                    let mut scanned = lock(scanned);
                    scanned.files += 1;
                    scanned.bytes += content.len() as u64;
                    scanned.findings.extend(found);
                }
                Err(e) => lock(scanned).unreadable.push((path, e.to_string())),
            }
            ignore::WalkState::Continue
        })
    });
    let mut scanned = scanned.into_inner().unwrap_or_else(|e| e.into_inner());
    scanned
        .findings
        .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    scanned
}

fn lock(m: &Mutex<Scanned>) -> std::sync::MutexGuard<'_, Scanned> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
