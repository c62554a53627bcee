//! Getting in: the first start creates a workspace, its owner and an admin token and hands the
//! token over in a 0600 file — in the same transaction, so a workspace is never committed whose
//! admin token nobody received — and an operator with shell access can always issue a new admin
//! token (`knowmind-server admin-token`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use audit::{Actor, Context};
use token_core::{Scope, Token};
use token_store::{NewMember, NewToken, Role, Store, TokenRecord, Workspace};

/// Name of the file the bootstrap token is written to, in the data directory.
pub(crate) const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";
/// Name of the file the owner's first enrolment link is written to, beside the token.
pub(crate) const OWNER_LINK_FILE: &str = "owner-enrolment-link";

fn owner(email: &str) -> NewMember {
    NewMember {
        name: "Owner".into(),
        email: email.into(),
        role: Role::Owner,
    }
}

fn admin_token(name: &str, description: &str) -> NewToken {
    NewToken {
        owner_id: String::new(), // the new owner
        name: name.into(),
        description: description.into(),
        client: String::new(),
        scopes: Scope::Admin.into(),
        expires_at: None,
        allowed_networks: Default::default(),
    }
}

/// Creates workspace `name` with an owner (`owner_email`) and an admin token for them; the
/// token is given to `hand_over` before anything is committed.
///
/// # Errors
/// If the name is taken or invalid, handing over fails, or the database fails.
pub(crate) async fn create_workspace(
    store: &Store,
    name: &str,
    owner_email: &str,
    hand_over: impl FnOnce(&Token) -> Result<(), String>,
) -> anyhow::Result<(Workspace, Token)> {
    let first = admin_token(
        "bootstrap",
        "created when the workspace was; replace it with your own admin token, then revoke it",
    );
    let (workspace, _, token) = store
        .create_workspace_with_token(
            name,
            owner(owner_email),
            first,
            &Context::system(),
            hand_over,
        )
        .await
        .with_context(|| format!("cannot create workspace {name:?}"))?;
    Ok((workspace, token))
}

/// On an empty database, creates the first workspace and writes its admin token to
/// `<data_dir>/bootstrap-token` (mode 0600) before committing; then the owner's one-time
/// enrolment link for the dashboard to `<data_dir>/owner-enrolment-link` (0600). Returns the
/// token file's path if it did.
///
/// # Errors
/// If the database or the file system fails; then nothing was committed.
pub(crate) async fn on_first_start(
    store: &Store,
    data_dir: &Path,
    name: &str,
    owner_email: &str,
    public_url: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if !store.list_workspaces().await?.is_empty() {
        return Ok(None);
    }
    let path = data_dir.join(BOOTSTRAP_TOKEN_FILE);
    let write = |token: &Token| {
        let contents = zeroize::Zeroizing::new(format!("{}\n", token.expose_secret()));
        crate::secret_file::write(&path, contents.as_bytes(), true)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let workspace = match create_workspace(store, name, owner_email, write).await {
        Ok((workspace, _)) => workspace,
        // Another instance bootstrapped the shared database a moment ago.
        Err(_) if !store.list_workspaces().await?.is_empty() => return Ok(None),
        Err(e) => return Err(e),
    };
    tracing::info!(workspace = %workspace.id, path = %path.display(), "created the first workspace; its admin token is in the file");
    // The link comes second: if writing it fails, the workspace stands and
    // `knowmind-server invite` makes another.
    let link_path = data_dir.join(OWNER_LINK_FILE);
    let (_, link) =
        enrolment_link(store, &workspace.name, owner_email, Role::Owner, public_url).await?;
    crate::secret_file::write(&link_path, format!("{}\n", *link).as_bytes(), true)?;
    tracing::info!(path = %link_path.display(), "the owner's dashboard enrolment link (one use, 24 hours) is in the file");
    Ok(Some(path))
}

/// A one-time enrolment link for `email` in workspace `name`, issued by the operator.
///
/// # Errors
/// An unknown workspace, a bad email, an email that can already sign in, a database failure.
pub(crate) async fn enrolment_link(
    store: &Store,
    name: &str,
    email: &str,
    role: Role,
    public_url: &str,
) -> anyhow::Result<(token_store::Enrolment, zeroize::Zeroizing<String>)> {
    let workspace = store
        .list_workspaces()
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .with_context(|| format!("no workspace is named {name:?}"))?;
    let (enrolment, secret) = store
        .invite(&workspace.id, email, role, &Context::of(Actor::Operator))
        .await
        .with_context(|| format!("cannot invite {email:?}"))?;
    let link = zeroize::Zeroizing::new(format!(
        "{}/dashboard/enrol/{}",
        public_url.trim_end_matches('/'),
        secret.expose_secret()
    ));
    Ok((enrolment, link))
}

/// Issues a new admin token for the owner of workspace `name`, as the local operator: the way
/// back in for someone with shell access when no admin token is left. Audited (actor
/// `operator`).
///
/// # Errors
/// An unknown workspace, one without an owner, or a database failure.
pub(crate) async fn operator_admin_token(
    store: &Store,
    name: &str,
) -> anyhow::Result<(Workspace, TokenRecord, Token)> {
    let workspace = store
        .list_workspaces()
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .with_context(|| format!("no workspace is named {name:?}"))?;
    let owner = store
        .list_members(&workspace.id)
        .await?
        .into_iter()
        .find(|m| m.role == Role::Owner)
        .with_context(|| format!("workspace {name:?} has no owner"))?;
    let new = NewToken {
        owner_id: owner.id,
        ..admin_token(
            "operator",
            "issued from the server's shell with `knowmind-server admin-token`",
        )
    };
    let (record, token) = store
        .create_token(&workspace.id, new, &Context::of(Actor::Operator))
        .await?;
    Ok((workspace, record, token))
}
