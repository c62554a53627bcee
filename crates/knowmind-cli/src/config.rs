//! `~/.knowmind/config.json`: where the CLI keeps its server and credential.
//!
//! Written atomically (a 0600 temporary file in the same directory, written, synced, renamed over
//! the old one, then the directory synced), so a crash leaves the old file or the new one, and at
//! no moment is the file readable by others, whatever the umask. Read like OpenSSH and `.pgpass`
//! read theirs: a file readable or writable by group or others, owned by someone else, or a
//! symlink is refused — before anything is sent anywhere. The file is opened without following
//! links and checked on the open file. `knowmind doctor --fix` tightens it, or removes a link.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The file's content: a credential per server, as `gh` keeps one per host, and the server
/// used when none is named. A token is only ever sent to the server it was saved for. Unknown
/// fields are refused, so a typo is an error, not a silent default. A file of the earlier
/// single-server shape (`server`, `token`, `token_command`) is read as one entry and written in
/// this shape on the next save.
#[derive(Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server commands use when none is named (`--server`, `KNOWMIND_SERVER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Credentials by server URL (without a trailing slash).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, ServerEntry>,
    #[serde(default, skip_serializing)]
    server: Option<String>,
    #[serde(default, skip_serializing)]
    token: Option<String>,
    #[serde(default, skip_serializing)]
    token_command: Option<String>,
}

/// The credential saved for one server.
#[derive(Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The token itself (set by `auth login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A command whose standard output is the token (a secret manager); it wins over `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_command: Option<String>,
}

impl std::fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEntry")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("token_command", &self.token_command)
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("default", &self.default)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

/// A server URL as a key: without trailing slashes.
pub fn normalize(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

impl Config {
    /// Moves an earlier single-server file's fields into `servers`.
    fn migrate(mut self) -> Self {
        if let Some(server) = self.server.take() {
            let server = normalize(&server);
            let entry = ServerEntry {
                token: self.token.take(),
                token_command: self.token_command.take(),
            };
            if entry != ServerEntry::default() {
                self.servers.insert(server.clone(), entry);
            }
            self.default.get_or_insert(server);
        }
        // A token without a server was never bound to one: it is not kept.
        self.token = None;
        self.token_command = None;
        self
    }

    /// The credential saved for `server`.
    pub fn entry(&self, server: &str) -> Option<&ServerEntry> {
        self.servers.get(&normalize(server))
    }

    /// The credential for `server`, created empty if there is none.
    pub fn entry_mut(&mut self, server: &str) -> &mut ServerEntry {
        self.servers.entry(normalize(server)).or_default()
    }

    /// Forgets `server`'s credential; if it was the default, another saved server (if any)
    /// becomes the default. Returns whether there was one.
    pub fn forget(&mut self, server: &str) -> bool {
        let key = normalize(server);
        let had = self.servers.remove(&key).is_some();
        if self.default.as_deref() == Some(key.as_str()) {
            self.default = self.servers.keys().next().cloned();
        }
        had
    }
}

/// The configuration directory: `KNOWMIND_CONFIG_DIR`, else `~/.knowmind`.
///
/// # Errors
/// No home directory.
pub fn dir() -> Result<PathBuf, CliError> {
    if let Some(dir) = std::env::var_os("KNOWMIND_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| CliError::usage("HOME is not set; set KNOWMIND_CONFIG_DIR"))?;
    Ok(PathBuf::from(home).join(".knowmind"))
}

/// `config.json` in [`dir`].
///
/// # Errors
/// As [`dir`].
pub fn path() -> Result<PathBuf, CliError> {
    Ok(dir()?.join("config.json"))
}

/// What is wrong with the file's permissions, if anything.
pub fn insecurity(path: &Path) -> Result<Option<String>, CliError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot inspect {}: {e}",
                path.display()
            )));
        }
    };
    if meta.file_type().is_symlink() {
        return Ok(Some(format!("{} is a symbolic link", path.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = current_uid();
        if meta.uid() != uid {
            return Ok(Some(format!(
                "{} is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Ok(Some(format!(
                "{} has mode {:o}: group or others can access it",
                path.display(),
                meta.mode() & 0o777
            )));
        }
    }
    Ok(None)
}

/// The current user's id.
#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Opens `path` for reading without following a symbolic link (`ELOOP` for one).
#[cfg(unix)]
fn open_nofollow(path: &Path) -> rustix::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

/// Opens the file without following a symbolic link, and checks owner and mode on the open
/// file — not by path before opening, which a swap between the two could defeat.
fn open_private(path: &Path) -> std::io::Result<Result<File, String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let file = match open_nofollow(path) {
            Ok(file) => file,
            Err(rustix::io::Errno::LOOP) => {
                return Ok(Err(format!("{} is a symbolic link", path.display())));
            }
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        let uid = current_uid();
        if meta.uid() != uid {
            return Ok(Err(format!(
                "{} is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Ok(Err(format!(
                "{} has mode {:o}: group or others can access it",
                path.display(),
                meta.mode() & 0o777
            )));
        }
        Ok(Ok(file))
    }
    #[cfg(not(unix))]
    {
        File::open(path).map(Ok)
    }
}

/// Reads the configuration, refusing an unsafe file. A missing file is an empty configuration.
///
/// # Errors
/// An unsafe or malformed file, with the fix.
pub fn load() -> Result<Config, CliError> {
    let path = path()?;
    let text = match open_private(&path) {
        Ok(Ok(mut file)) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text)
                .map(|_| text)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
        }
        Ok(Err(problem)) => {
            let hint = if problem.contains("symbolic link") {
                "remove the link (a config someone else controls could point you at their server \
                 or run their command) and run `knowmind auth login` again; `knowmind doctor --fix` \
                 removes it"
            } else if problem.contains("owned by") {
                "it is not yours, so neither you nor `doctor --fix` can make it safe: move it \
                 away (or ask its owner) and run `knowmind auth login` again"
            } else {
                "run `knowmind doctor --fix`, or `chmod 600` it yourself"
            };
            return Err(
                CliError::new(format!("refusing to use the config file: {problem}")).hint(hint),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => Err(CliError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }?;
    serde_json::from_str::<Config>(&text)
        .map(Config::migrate)
        .map_err(|e| {
            CliError::new(format!(
                "{} is not a valid knowmind config: {e}",
                path.display()
            ))
            .hint("fix the file or remove it and run `knowmind auth login` again")
        })
}

/// Writes the configuration atomically with mode 0600, in a 0700 directory.
///
/// # Errors
/// If the directory or file cannot be written.
pub fn save(config: &Config) -> Result<(), CliError> {
    let dir = dir()?;
    create_private_dir(&dir)?;
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(config).map_err(|e| CliError::new(e.to_string()))?;
    write_private(&dir, &path, format!("{text}\n").as_bytes())
}

/// A temporary file in `dir` — created 0600 — written, synced, renamed over `path`, and the
/// directory synced: a crash leaves the old file or the new one, and the new one is a new inode
/// that nobody else holds open.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let result = (|| -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

/// Removes the configuration file.
///
/// # Errors
/// If it exists and cannot be removed.
pub fn remove() -> Result<(), CliError> {
    let path = path()?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::new(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

/// Creates `dir` with mode 0700 (and tightens an existing one).
fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| CliError::new(format!("cannot restrict {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Tightens the directory to 0700 and the file to 0600; removes a symlink (never adopting what
/// it points to). Returns what was changed.
///
/// # Errors
/// If a change fails, or the file belongs to someone else (only its owner or root can fix that).
pub fn fix() -> Result<Vec<String>, CliError> {
    let dir = dir()?;
    let path = dir.join("config.json");
    let mut done = Vec::new();
    if dir.exists() {
        create_private_dir(&dir)?;
        done.push(format!("{} is 0700", dir.display()));
    }
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return Ok(done);
    };
    if meta.file_type().is_symlink() {
        // Never adopt what the link points to: someone else may control it (its server, its
        // token_command). Remove the link; the user logs in again.
        fs::remove_file(&path).map_err(|e| CliError::new(e.to_string()))?;
        done.push(format!(
            "removed the symbolic link {}; run `knowmind auth login` to save your own credential",
            path.display()
        ));
        return Ok(done);
    }
    #[cfg(unix)]
    {
        use std::io::Read as _;
        use std::os::unix::fs::MetadataExt;
        // Read through a handle that cannot be a link swapped in since the check above, and
        // judge the owner on that handle.
        let cannot =
            |e: std::io::Error| CliError::new(format!("cannot read {}: {e}", path.display()));
        let mut file = open_nofollow(&path).map_err(|e| cannot(e.into()))?;
        let owner = file.metadata().map_err(cannot)?.uid();
        if owner != current_uid() {
            return Err(CliError::new(format!(
                "{} is owned by uid {owner}; only its owner can fix it",
                path.display(),
            )));
        }
        // Not a chmod: whoever opened the loose file for writing could keep writing to it. A
        // fresh private copy takes its place; the old inode goes with its last open handle.
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(cannot)?;
        write_private(&dir, &path, &bytes)?;
        done.push(format!(
            "{} was replaced by a private copy (0600, a new file); if others could read it, \
             rotate the token it holds: `knowmind token rotate self`",
            path.display()
        ));
    }
    Ok(done)
}
