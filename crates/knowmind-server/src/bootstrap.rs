//! The first start: a workspace, its owner and an admin token, so the server is usable at once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use audit::Context;
use token_core::{Scope, Token};
use token_store::{NewMember, NewToken, Role, Store, Workspace};

/// Name of the file the bootstrap token is written to, in the data directory.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";

/// Creates workspace `name` with an owner (`owner_email`) and an admin token for them.
///
/// # Errors
/// If the name is taken or invalid, or the database fails.
pub async fn create_workspace(
    store: &Store,
    name: &str,
    owner_email: &str,
) -> anyhow::Result<(Workspace, Token)> {
    let owner = NewMember {
        name: "Owner".into(),
        email: owner_email.into(),
        role: Role::Owner,
    };
    let (workspace, owner) = store
        .create_workspace(name, owner, &Context::system())
        .await
        .with_context(|| format!("cannot create workspace {name:?}"))?;
    let new = NewToken {
        owner_id: owner.id,
        name: "bootstrap".into(),
        description:
            "created when the workspace was; replace it with your own admin token, then revoke it"
                .into(),
        client: String::new(),
        scopes: Scope::Admin.into(),
        expires_at: None,
    };
    let (_, token) = store
        .create_token(&workspace.id, new, &Context::system())
        .await?;
    Ok((workspace, token))
}

/// On an empty database, creates the first workspace and writes its admin token to
/// `<data_dir>/bootstrap-token` with mode 0600. Returns the file's path if it did.
///
/// # Errors
/// If the database or the file system fails.
pub async fn on_first_start(
    store: &Store,
    data_dir: &Path,
    name: &str,
    owner_email: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if !store.list_workspaces().await?.is_empty() {
        return Ok(None);
    }
    let (workspace, token) = match create_workspace(store, name, owner_email).await {
        Ok(created) => created,
        // Another instance bootstrapped the shared database a moment ago.
        Err(_) if !store.list_workspaces().await?.is_empty() => return Ok(None),
        Err(e) => return Err(e),
    };
    let path = data_dir.join(BOOTSTRAP_TOKEN_FILE);
    write_secret_file(&path, token.expose_secret())?;
    tracing::info!(workspace = %workspace.id, path = %path.display(), "created the first workspace; its admin token is in the file");
    Ok(Some(path))
}

/// Writes `secret` to a new file readable by its owner only (any old file is replaced).
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}
