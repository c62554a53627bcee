//! Running the server, and the other commands of the binary.
//!
//! This module is the binary's user interface, so it prints: results to stdout, messages to
//! stderr. Nothing else in the library does.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use token_store::{Store, StoreOptions};
use tracing_subscriber::EnvFilter;

use crate::api::{AppState, router};
use crate::auth::Guard;
use crate::cli::{AuditCommand, Cli, Command, Common, InitArgs, LogFormat, ServeArgs};
use crate::metrics::Metrics;
use crate::notes::Notes;

/// Sets up logging to stderr.
///
/// # Errors
/// An invalid filter.
pub fn init_tracing(common: &Common) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&common.log)
        .with_context(|| format!("invalid log filter {:?} (--log / KNOWMIND_LOG)", common.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match common.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stops the command; the binary prints it and exits 1.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => serve(&cli.common, &args).await.map(|()| 0),
        Command::Init(args) => init(&cli.common, &args).await.map(|()| 0),
        Command::Migrate => {
            let (store, _) = open(&cli.common, StoreOptions::default()).await?;
            store.close().await;
            eprintln!("the database schema is up to date");
            Ok(0)
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            let (store, _) = open(&cli.common, StoreOptions::default()).await?;
            let checkpoint = match (args.checkpoint_seq, args.checkpoint_hash) {
                (Some(seq), Some(hash)) => Some(audit::Checkpoint { seq, hash }),
                _ => None,
            };
            let report = store.audit().verify(checkpoint.as_ref()).await?;
            store.close().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.is_intact() { 0 } else { 1 })
        }
    }
}

/// Opens the store (running migrations) and the notes.
async fn open(common: &Common, options: StoreOptions) -> anyhow::Result<(Store, Notes)> {
    let url = common.database_url()?;
    if !url.starts_with("postgres") {
        common.ensure_data_dir()?;
    }
    let store = Store::open(&url, options)
        .await
        .context("cannot open the database (--database-url / KNOWMIND_DATABASE_URL)")?;
    let notes = Notes::open(store.db().clone()).await?;
    Ok((store, notes))
}

async fn init(common: &Common, args: &InitArgs) -> anyhow::Result<()> {
    let (store, _) = open(common, StoreOptions::default()).await?;
    let (workspace, token) =
        crate::bootstrap::create_workspace(&store, &args.workspace, &args.owner_email).await?;
    store.close().await;
    eprintln!(
        "created workspace {} ({}); its admin token follows, shown this once:",
        workspace.name, workspace.id
    );
    println!("{}", token.expose_secret()); // stdout, once, on purpose

    Ok(())
}

async fn serve(common: &Common, args: &ServeArgs) -> anyhow::Result<()> {
    let defaults = StoreOptions::default();
    let options = StoreOptions {
        max_staleness: args.max_staleness,
        hash_threads: args.hash_threads.unwrap_or(defaults.hash_threads),
        hash_queue: 2 * args.hash_threads.unwrap_or(defaults.hash_threads),
        ..defaults
    };
    let (store, notes) = open(common, options).await?;
    crate::bootstrap::on_first_start(
        &store,
        &common.data_dir,
        &args.bootstrap_workspace,
        &args.bootstrap_owner_email,
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let guard = Guard::with_options(
        store.clone(),
        args.auth_failures_per_minute,
        args.trusted_proxy_header.clone(),
        Some(metrics.clone()),
    );
    let timeout = std::time::Duration::try_from(args.request_timeout)
        .context("--request-timeout must be positive")?;
    let app = router(
        AppState {
            store: store.clone(),
            guard,
            notes,
            metrics,
        },
        timeout,
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--listen / KNOWMIND_LISTEN)",
                args.listen
            )
        })?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let pruner = tokio::spawn(prune_usage_hourly(store.clone()));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the server failed")?;
    pruner.abort();
    tracing::info!("draining: committing usage records and closing the database");
    store.close().await;
    Ok(())
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
