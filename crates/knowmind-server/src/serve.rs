//! Running the server, and the other commands of the binary.
//!
//! This module is the binary's user interface, so it prints: results to stdout, messages to
//! stderr. Nothing else in the library does.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use audit::{AnomalyConfig, AuditKey, Checkpoint, SignedCheckpoint, UsageConfig};
use token_store::{Store, StoreOptions};
use tracing_subscriber::EnvFilter;

use crate::api::{AppState, router};
use crate::cli::{AuditCommand, Cli, Command, Common, InitArgs, LogFormat, ServeArgs, VerifyArgs};
use crate::connections::ConnectionLimits;
use crate::metrics::Metrics;
use crate::notes::Notes;
use knowmind_axum::Guard;

/// Sets up logging to stderr, written by a worker thread so that no request waits for it (lines
/// are dropped, not waited for, if the worker falls 128,000 lines behind). Keep the guard until
/// the process ends: dropping it writes what is still queued.
///
/// # Errors
/// An invalid filter.
pub fn init_tracing(
    common: &Common,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_new(&common.log)
        .with_context(|| format!("invalid log filter {:?} (--log / KNOWMIND_LOG)", common.log))?;
    let ansi = std::io::stderr().is_terminal();
    // The worker writes every line it finds queued, then flushes: buffered, a busy server's lines
    // leave in a few large writes instead of a system call each; a lone line still goes at once.
    let (writer, guard) = tracing_appender::non_blocking(std::io::BufWriter::with_capacity(
        64 * 1024,
        std::io::stderr(),
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match common.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(guard)
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command; the binary prints it and exits 1.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let common = &cli.common;
    match cli.command {
        Command::Serve(args) => serve(common, &args).await.map(|()| 0),
        Command::Init(args) => init(common, &args).await.map(|()| 0),
        Command::Migrate => {
            let (store, _) = open(common, StoreOptions::default(), Key::None).await?;
            store.close().await;
            eprintln!("the database schema is up to date");
            Ok(0)
        }
        Command::AdminToken(args) => {
            let (store, _) = open(common, StoreOptions::default(), Key::Create).await?;
            let (workspace, record, token) =
                crate::bootstrap::operator_admin_token(&store, &args.workspace).await?;
            store.close().await;
            eprintln!(
                "issued admin token {} for the owner of {} ({}); it follows, shown this once:",
                record.id, workspace.name, workspace.id
            );
            println!("{}", token.expose_secret()); // stdout, once, on purpose
            Ok(0)
        }
        Command::Invite(args) => {
            let (store, _) = open(common, StoreOptions::default(), Key::Create).await?;
            let result = crate::bootstrap::enrolment_link(
                &store,
                &args.workspace,
                &args.email,
                args.role.into(),
                &args.public_url,
            )
            .await;
            store.close().await;
            let (enrolment, link) = result?;
            eprintln!(
                "enrolment link for {} ({}) in {}, valid once until {}; it follows, shown this once:",
                enrolment.email,
                enrolment.role.as_str(),
                enrolment.workspace_name,
                enrolment.expires_at
            );
            println!("{}", *link); // stdout, once, on purpose
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(common, &args).await,
    }
}

/// Whether a command needs the audit key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// It writes events: use the key, creating it on first start, and check it matches the log.
    Create,
    /// It only reads: use the key if there is one.
    IfPresent,
    /// It writes no events.
    None,
}

/// Opens the store (running migrations) and the notes, with the audit key.
async fn open(common: &Common, options: StoreOptions, key: Key) -> anyhow::Result<(Store, Notes)> {
    common.ensure_data_dir()?;
    let audit_key = match key {
        Key::Create => Some(audit_key(common, true)?),
        Key::IfPresent => {
            let path = common.audit_key_path();
            path.exists()
                .then(|| audit_key(common, false))
                .transpose()?
        }
        Key::None => None,
    };
    let url = common.database_url()?;
    let store = Store::open(
        &url,
        StoreOptions {
            audit_key,
            ..options
        },
    )
    .await
    .context("cannot open the database (--database-url / KNOWMIND_DATABASE_URL)")?;
    if key == Key::Create {
        store.audit().check_key().await.with_context(|| {
            format!(
                "the audit key in {} is not the one this database's audit log was written with \
                 (--audit-key-file / KNOWMIND_AUDIT_KEY_FILE)",
                common.audit_key_path().display()
            )
        })?;
    }
    let notes = Notes::open(store.db().clone()).await?;
    Ok((store, notes))
}

/// Reads the audit key, or — with `create`, when its file does not exist — makes one and writes
/// it (0600, atomically; if another instance wrote one first, that one is used).
fn audit_key(common: &Common, create: bool) -> anyhow::Result<Arc<AuditKey>> {
    let path = common.audit_key_path();
    if create && !path.exists() {
        let key = AuditKey::generate()?;
        let hex = key.expose_hex();
        if crate::secret_file::write(&path, format!("{}\n", *hex).as_bytes(), false)? {
            tracing::info!(path = %path.display(), "created the audit key; keep a copy somewhere safe");
        }
    }
    let text = crate::secret_file::read(&path)
        .context("the audit key is needed (--audit-key-file / KNOWMIND_AUDIT_KEY_FILE)")?;
    let key = AuditKey::from_hex(&text)
        .with_context(|| format!("{} does not hold an audit key", path.display()))?;
    Ok(Arc::new(key))
}

async fn init(common: &Common, args: &InitArgs) -> anyhow::Result<()> {
    let (store, _) = open(common, StoreOptions::default(), Key::Create).await?;
    let (workspace, token) =
        crate::bootstrap::create_workspace(&store, &args.workspace, &args.owner_email, |_| Ok(()))
            .await?;
    store.close().await;
    eprintln!(
        "created workspace {} ({}); its admin token follows, shown this once:",
        workspace.name, workspace.id
    );
    println!("{}", token.expose_secret()); // stdout, once, on purpose
    Ok(())
}

async fn audit_verify(common: &Common, args: &VerifyArgs) -> anyhow::Result<i32> {
    let (store, _) = open(common, StoreOptions::default(), Key::IfPresent).await?;
    let paths = if args.checkpoints.is_empty() {
        let default = common.data_dir.join(CHECKPOINTS_DIR);
        if default.is_dir() {
            vec![default]
        } else {
            Vec::new()
        }
    } else {
        args.checkpoints.clone()
    };
    let signed = read_checkpoints(&paths)?;
    let key = (!signed.is_empty())
        .then(|| audit_key(common, false))
        .transpose()?;
    let forged: Vec<&SignedCheckpoint> = signed
        .iter()
        .filter(|c| key.as_ref().is_none_or(|k| !c.is_signed_by(k)))
        .collect();
    let checkpoints: Vec<Checkpoint> = signed.iter().map(SignedCheckpoint::checkpoint).collect();
    let report = store.audit().verify(&checkpoints).await?;
    store.close().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "events": report.events,
            "head": report.head,
            "broken": report.broken,
            "checkpoints": checkpoints.len(),
            "badly_signed_checkpoints": forged.iter().map(|c| c.seq).collect::<Vec<_>>(),
        }))?
    );
    Ok(if report.is_intact() && forged.is_empty() {
        0
    } else {
        1
    })
}

/// Where signed checkpoints are written, under the data directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Every signed checkpoint in `paths` (files, or directories of `*.json` files).
fn read_checkpoints(paths: &[PathBuf]) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            for entry in std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                let file = entry?.path();
                if file.extension().is_some_and(|e| e == "json") {
                    files.push(file);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a signed checkpoint", file.display()))
        })
        .collect()
}

async fn serve(common: &Common, args: &ServeArgs) -> anyhow::Result<()> {
    let defaults = StoreOptions::default();
    let options = StoreOptions {
        max_staleness: args.max_staleness,
        hash_threads: args.hash_threads.unwrap_or(defaults.hash_threads),
        hash_queue: 2 * args.hash_threads.unwrap_or(defaults.hash_threads),
        failures_per_minute: args.auth_failures_per_minute,
        reported_failures_per_minute: args.introspect_failures_per_minute,
        webhook_allow_internal: args.webhook_allow_internal,
        oauth_access_lifetime: args.oauth_access_token_lifetime,
        usage: UsageConfig {
            anomalies: AnomalyConfig {
                enabled: !args.no_anomaly_detection,
                learning_calls: i64::from(args.anomaly_learning_calls),
                learning_period: args.anomaly_learning_period,
                concurrent_window: args.anomaly_window,
            },
            ..defaults.usage.clone()
        },
        ..defaults
    };
    let (store, notes) = open(common, options, Key::Create).await?;
    check_newest_checkpoint(common, &store).await?;
    // Listen before the first start's link is written, so that it names the real port.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--listen / KNOWMIND_LISTEN)",
                args.listen
            )
        })?;
    let bound = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    crate::bootstrap::on_first_start(
        &store,
        &common.data_dir,
        &args.bootstrap_workspace,
        &args.bootstrap_owner_email,
        &public_url,
    )
    .await?;
    let metrics = Arc::new(
        Metrics::default().with_access_log(
            args.access_log
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--access-log / KNOWMIND_ACCESS_LOG: {e}"))?,
        ),
    );
    let guard = Guard::with_options(
        store.clone(),
        args.trusted_proxy_header.clone(),
        Some(metrics.clone()),
    );
    let positive = |d: time::Duration, flag: &str| {
        std::time::Duration::try_from(d)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("{flag} must be positive"))
    };
    let timeout = positive(args.request_timeout, "--request-timeout")?;
    let limits = ConnectionLimits {
        header_read_timeout: positive(args.header_read_timeout, "--header-read-timeout")?,
        max_connections: args.max_connections.max(1),
        max_per_address: if args.trusted_proxy_header.is_some() {
            0
        } else {
            args.max_connections_per_address
        },
        shutdown_grace: timeout,
    };
    let every = positive(args.checkpoint_interval, "--checkpoint-interval")?;
    let webhook_every = positive(args.webhook_interval, "--webhook-interval")?;
    let github_keys = args
        .github_secret_scanning_keys
        .as_deref()
        .map(|path| {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read {} (--github-secret-scanning-keys)",
                    path.display()
                )
            })?;
            crate::secret_scanning::GithubKeys::from_json(&text)
                .map(Arc::new)
                .map_err(|e| {
                    anyhow::anyhow!("{} (--github-secret-scanning-keys): {e}", path.display())
                })
        })
        .transpose()?;
    let webhook_http = crate::webhooks::client(args.webhook_allow_internal)
        .context("setting up the webhook HTTP client")?;
    let app = router(
        AppState {
            store: store.clone(),
            guard,
            notes,
            metrics: metrics.clone(),
            public_url: args.public_url.as_deref().map(Into::into),
            github_keys,
        },
        timeout,
    );
    tracing::info!(address = %bound, "listening");
    let checkpoints = common.data_dir.join(CHECKPOINTS_DIR);
    let background = [
        tokio::spawn(count_tokens(store.clone(), metrics.clone())),
        tokio::spawn(sweep_handovers(store.clone())),
        tokio::spawn(crate::webhooks::run(
            store.clone(),
            webhook_http,
            webhook_every,
        )),
        tokio::spawn(prune_usage_hourly(store.clone())),
        tokio::spawn(write_checkpoints(store.clone(), checkpoints.clone(), every)),
    ];
    crate::connections::serve(listener, app, limits, shutdown_signal()).await;
    for task in background {
        task.abort();
    }
    tracing::info!("draining: committing usage records and closing the database");
    write_checkpoint(&store, &checkpoints).await;
    store.close().await;
    Ok(())
}

/// Refuses to start on an audit log that no longer holds the newest signed checkpoint in the
/// data directory: someone rewrote or truncated it. The operator decides what happens next.
async fn check_newest_checkpoint(common: &Common, store: &Store) -> anyhow::Result<()> {
    let dir = common.data_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    let key = audit_key(common, false)?;
    let newest = read_checkpoints(std::slice::from_ref(&dir))?
        .into_iter()
        .filter(|c| c.is_signed_by(&key))
        .max_by_key(|c| c.seq);
    if let Some(newest) = newest
        && !store.audit().holds(&newest.checkpoint()).await?
    {
        anyhow::bail!(
            "the audit log no longer holds checkpoint #{} ({}): events were rewritten or \
             removed. Run `knowmind-server audit verify` to see where; to start anyway, move \
             the checkpoints directory aside (keep it as evidence)",
            newest.seq,
            dir.display()
        );
    }
    Ok(())
}

/// Moves rotations' hand-overs on (overlap ended, deadline passed) every 15 seconds, on every
/// instance: each hand-over moves once, whichever instance gets there first.
async fn sweep_handovers(store: Store) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        ticker.tick().await;
        match store.sweep_handovers().await {
            Ok(sweep) if sweep == token_store::HandoverSweep::default() => {}
            Ok(sweep) => tracing::info!(
                done = sweep.done,
                timed_out = sweep.timed_out,
                "rotation hand-overs moved on"
            ),
            Err(e) => tracing::warn!(error = %e, "hand-over sweep failed"),
        }
    }
}

/// Keeps the token and incident gauges current: two aggregate queries a minute.
async fn count_tokens(store: Store, metrics: Arc<Metrics>) {
    let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        match store.token_counts().await {
            Ok(counts) => metrics.token_counts(counts),
            Err(e) => tracing::warn!(error = %e, "counting tokens for the metrics failed"),
        }
        match store.overdue_incidents().await {
            Ok(count) => metrics.incidents_overdue(count),
            Err(e) => tracing::warn!(error = %e, "counting overdue incidents failed"),
        }
    }
}

async fn prune_usage_hourly(store: Store) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3_600));
    loop {
        every_hour.tick().await;
        match store.prune_usage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "pruned usage records past retention"),
            Err(e) => tracing::warn!(error = %e, "usage pruning failed"),
        }
        match store.prune_oauth().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned expired OAuth codes and refresh tokens"),
            Err(e) => tracing::warn!(error = %e, "OAuth pruning failed"),
        }
    }
}

/// Writes a signed checkpoint now and then `every` (when the log has grown).
async fn write_checkpoints(store: Store, dir: PathBuf, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        write_checkpoint(&store, &dir).await;
    }
}

/// Writes the current head, signed, as `<dir>/<seq>.json` unless that file exists, and logs it
/// (a log shipper keeps another copy).
async fn write_checkpoint(store: &Store, dir: &Path) {
    let result: anyhow::Result<()> = async {
        let signed = store.audit().signed_checkpoint(store.now()).await?;
        if signed.seq == 0 {
            return Ok(());
        }
        let path = dir.join(format!("{:020}.json", signed.seq));
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = serde_json::to_string_pretty(&signed)?;
        if crate::secret_file::write(&path, text.as_bytes(), false)? {
            tracing::info!(seq = signed.seq, hash = %signed.hash, "audit checkpoint");
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = format!("{e:#}"), "audit checkpoint not written");
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
