//! Files that hold secrets (the bootstrap token, the audit key): written to a temporary file in
//! the same directory — mode 0600 from its creation — synced, renamed into place and the directory
//! synced, so that a crash leaves the old file or the new one, never a torn or loose one.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

/// Writes `contents` to `path` atomically with mode 0600. With `replace == false` an existing
/// file is kept and `Ok(false)` returned (another process got there first).
///
/// # Errors
/// If the directory is missing or not writable, or the disk fails.
pub(crate) fn write(path: &Path, contents: &[u8], replace: bool) -> anyhow::Result<bool> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    let written = if replace {
        file.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        true
    } else {
        match file.persist_noclobber(path) {
            Ok(_) => true,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(e.error).with_context(|| format!("cannot write {}", path.display()));
            }
        }
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(written)
}

/// Reads a secret file (one trailing newline stripped). The contents are wiped when dropped.
///
/// # Errors
/// If it cannot be read or is not UTF-8 (the message names the file, never its contents).
pub(crate) fn read(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not text", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    Ok(Zeroizing::new(
        text.strip_suffix('\r').unwrap_or(text).to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_atomically_and_keeps_an_existing_file_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert!(write(&path, b"one\n", false).unwrap());
        assert!(!write(&path, b"two\n", false).unwrap(), "kept the first");
        assert_eq!(read(&path).unwrap().as_str(), "one");
        assert!(write(&path, b"three", true).unwrap());
        assert_eq!(read(&path).unwrap().as_str(), "three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }
}
