//! `knowmind hook install|uninstall`: the git pre-commit hook that runs `knowmind scan --staged`.
//! It goes where git looks for hooks (`core.hooksPath`, worktrees), never replaces a hook it did
//! not write unless told (`--force`), can run an existing one after its check (`--chain`), and
//! `uninstall` removes only what `install` wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::HookCommand;
use crate::error::CliError;
use crate::output::Style;

/// The line that marks a hook as ours.
const MARKER: &str = "# installed by `knowmind hook install`";
/// Where a chained hook is kept.
const CHAINED: &str = "pre-commit.before-knowmind";

pub(crate) fn run(style: Style, command: &HookCommand) -> Result<(), CliError> {
    let hooks = hooks_dir()?;
    let hook = hooks.join("pre-commit");
    match command {
        HookCommand::Install { force, chain } => {
            // A link, or a file that is not valid UTF-8, is still someone's hook.
            let exists = std::fs::symlink_metadata(&hook).is_ok();
            if exists && installed(&hook).is_some() {
                if !style.quiet {
                    eprintln!(
                        "The knowmind pre-commit hook is already installed ({}).",
                        hook.display()
                    );
                }
                return Ok(());
            }
            let chained = match (exists, *force, *chain) {
                (false, _, _) => false,
                (true, true, _) => {
                    // The hook itself, never what a link points at.
                    std::fs::remove_file(&hook).map_err(|e| io("removing the old hook", &e))?;
                    false
                }
                (true, false, true) => {
                    let keep = hooks.join(CHAINED);
                    if keep.exists() {
                        return Err(CliError::usage(format!(
                            "{} already exists; move it away first",
                            keep.display()
                        )));
                    }
                    std::fs::rename(&hook, &keep)
                        .map_err(|e| io("moving the existing hook", &e))?;
                    true
                }
                (true, false, false) => {
                    return Err(CliError::usage(format!(
                        "{} is a pre-commit hook knowmind did not install",
                        hook.display()
                    ))
                    .hint("`knowmind hook install --chain` runs it after knowmind's check; `--force` replaces it"));
                }
            };
            std::fs::create_dir_all(&hooks).map_err(|e| io("creating the hooks directory", &e))?;
            std::fs::write(&hook, script(chained)).map_err(|e| io("writing the hook", &e))?;
            make_executable(&hook)?;
            if !style.quiet {
                eprintln!(
                    "Installed the knowmind pre-commit hook ({}){}: a commit that adds a knowmind token is stopped.",
                    hook.display(),
                    if chained {
                        ", running the existing hook after it"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        HookCommand::Uninstall => {
            let Some(chained) = installed(&hook) else {
                return Err(CliError::usage(format!(
                    "no knowmind pre-commit hook at {} (or it was changed since it was \
                     installed: remove it yourself)",
                    hook.display()
                )));
            };
            std::fs::remove_file(&hook).map_err(|e| io("removing the hook", &e))?;
            let keep = hooks.join(CHAINED);
            if chained && std::fs::symlink_metadata(&keep).is_ok() {
                std::fs::rename(&keep, &hook).map_err(|e| io("restoring the chained hook", &e))?;
            }
            if !style.quiet {
                eprintln!("Removed the knowmind pre-commit hook.");
            }
            Ok(())
        }
    }
}

/// Whether `hook` is exactly what `install` writes (whatever binary it names), and whether it
/// chains: `None` for anything else, a link included.
fn installed(hook: &Path) -> Option<bool> {
    if !std::fs::symlink_metadata(hook).ok()?.is_file() {
        return None;
    }
    let text = String::from_utf8(std::fs::read(hook).ok()?).ok()?;
    let shape = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with("knowmind='"))
            .map(str::to_owned)
            .collect()
    };
    [false, true]
        .into_iter()
        .find(|chained| shape(&script(*chained)) == shape(&text))
}

/// Where git looks for this repository's hooks (`core.hooksPath` respected).
fn hooks_dir() -> Result<PathBuf, CliError> {
    let out = Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .map_err(|e| CliError::new(format!("could not run git: {e}")).hint("install git"))?;
    if !out.status.success() {
        return Err(CliError::usage("not inside a git repository"));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(PathBuf::from(text))
}

/// The hook: the check with this very binary (or `knowmind` on the PATH if it moved), then the
/// chained hook, if any.
fn script(chained: bool) -> String {
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .filter(|p| !p.contains('\''))
        .unwrap_or_else(|| "knowmind".to_owned());
    let mut text = format!(
        "#!/bin/sh\n{MARKER}; `knowmind hook uninstall` removes it.\n\
         # Stops a commit that adds a knowmind token (`knowmind scan --staged`).\n\
         knowmind='{exe}'\n\
         [ -x \"$knowmind\" ] || knowmind=knowmind\n\
         \"$knowmind\" scan --staged || exit 1\n"
    );
    if chained {
        text.push_str(&format!("exec \"$(dirname \"$0\")/{CHAINED}\" \"$@\"\n"));
    }
    text
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("making the hook executable", &e))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<(), CliError> {
    Ok(())
}

fn io(doing: &str, e: &std::io::Error) -> CliError {
    CliError::new(format!("{doing}: {e}"))
}
