//! The `knowmind-server` command line. Every flag has a `KNOWMIND_*` variable; the database URL
//! (which may hold a password) can also come from a file (`KNOWMIND_DATABASE_URL_FILE`), and its
//! value is never shown in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use axum::http::HeaderName;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// knowmind's API server.
#[derive(Debug, Parser)]
#[command(name = "knowmind-server", version, about)]
pub struct Cli {
    /// Settings every command shares.
    #[command(flatten)]
    pub common: Common,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct Common {
    /// Directory for the SQLite database and the bootstrap token (created 0700 if missing).
    #[arg(
        long,
        env = "KNOWMIND_DATA_DIR",
        default_value = "./knowmind-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `postgres://…` to share one PostgreSQL among several instances; default: SQLite in the
    /// data directory. Also `KNOWMIND_DATABASE_URL_FILE`.
    #[arg(
        long,
        env = "KNOWMIND_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "KNOWMIND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `knowmind_server=debug,info`.
    #[arg(long, env = "KNOWMIND_LOG", default_value = "info", global = true)]
    pub log: String,
    /// A file holding the audit key (64 hex digits) that keys the audit log's hash chain.
    /// Default: `<data-dir>/audit-key`, created on first start. Every instance sharing one
    /// database must use the same key.
    #[arg(long, env = "KNOWMIND_AUDIT_KEY_FILE", global = true)]
    pub audit_key_file: Option<PathBuf>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Readable text.
    Text,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (creates the first workspace on an empty database).
    Serve(Box<ServeArgs>),
    /// Create a workspace and print its admin token, once, on stdout.
    Init(InitArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Issue a new admin token for a workspace's owner and print it, once, on stdout: the way
    /// back in for an operator with shell access. Audited as an operator action.
    AdminToken(AdminTokenArgs),
    /// Print a one-time enrolment link (valid 24 hours) with which someone sets their password
    /// and joins a workspace's dashboard — or, for a member who has none yet (the owner created
    /// on first start), sets theirs. Audited as an operator action.
    Invite(InviteArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `invite` settings.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The workspace's name.
    #[arg(long, env = "KNOWMIND_WORKSPACE")]
    pub workspace: String,
    /// Their email.
    #[arg(long)]
    pub email: String,
    /// Their role.
    #[arg(long, value_enum, default_value_t = RoleArg::Member)]
    pub role: RoleArg,
    /// The dashboard's address as people reach it, for the link.
    #[arg(
        long,
        env = "KNOWMIND_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything, including members and settings.
    Owner,
    /// All tokens, the audit log, OAuth clients and incidents.
    Admin,
    /// Their own tokens and their usage.
    Member,
}

impl From<RoleArg> for token_store::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Owner => token_store::Role::Owner,
            RoleArg::Admin => token_store::Role::Admin,
            RoleArg::Member => token_store::Role::Member,
        }
    }
}

/// `admin-token` settings.
#[derive(Debug, Args)]
pub struct AdminTokenArgs {
    /// The workspace's name.
    #[arg(long, env = "KNOWMIND_WORKSPACE")]
    pub workspace: String,
}

/// `serve` settings.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KNOWMIND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Header in which a trusted reverse proxy puts the client address (e.g. X-Forwarded-For;
    /// its rightmost address is used). Without it, the client address is the peer address.
    #[arg(long, env = "KNOWMIND_TRUSTED_PROXY_HEADER", value_parser = header_name)]
    pub trusted_proxy_header: Option<HeaderName>,
    /// How long a verified token is trusted before its state is re-read (`0s` = every request).
    #[arg(long, env = "KNOWMIND_MAX_STALENESS", default_value = "1s", value_parser = duration)]
    pub max_staleness: time::Duration,
    /// Requests taking longer are answered 408.
    #[arg(long, env = "KNOWMIND_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub request_timeout: time::Duration,
    /// Failed authentications allowed per client address (IPv6: per /64) per minute before
    /// lookups and scrypt for the address are refused with 429 (0 = no limit). Tokens the server
    /// has already verified are always served.
    #[arg(long, env = "KNOWMIND_AUTH_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub auth_failures_per_minute: u32,
    /// Failed verifications allowed per minute per introspect token (a resource server using
    /// `/v1/tokens/verify`), over all its clients; each client it reports also has the
    /// per-address budget (0 = no limit).
    #[arg(
        long,
        env = "KNOWMIND_INTROSPECT_FAILURES_PER_MINUTE",
        default_value_t = 300
    )]
    pub introspect_failures_per_minute: u32,
    /// Time a client has to send a request's headers, from opening the connection or from the
    /// previous response: also the keep-alive idle timeout.
    #[arg(long, env = "KNOWMIND_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_read_timeout: time::Duration,
    /// Connections served at once; beyond that the server stops accepting until one closes.
    #[arg(long, env = "KNOWMIND_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections served at once from one peer address (IPv6: one /64); more are closed at
    /// once. 0 = no limit; ignored with --trusted-proxy-header (every peer is the proxy then).
    #[arg(
        long,
        env = "KNOWMIND_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 64
    )]
    pub max_connections_per_address: usize,
    /// How often a signed audit checkpoint is written to `<data-dir>/checkpoints/` (when the log
    /// has grown).
    #[arg(long, env = "KNOWMIND_CHECKPOINT_INTERVAL", default_value = "10m", value_parser = duration)]
    pub checkpoint_interval: time::Duration,
    /// How often this instance looks for webhook deliveries to send (new events, retries that
    /// are due). Every instance sends; a delivery is leased to one at a time.
    #[arg(long, env = "KNOWMIND_WEBHOOK_INTERVAL", default_value = "2s", value_parser = duration)]
    pub webhook_interval: time::Duration,
    /// Let webhook endpoints be internal addresses (loopback, private networks; plain http to
    /// loopback): for development and single-tenant deployments. Off, only public https
    /// endpoints are accepted, so a workspace admin cannot make the server call its neighbours.
    #[arg(long, env = "KNOWMIND_WEBHOOK_ALLOW_INTERNAL")]
    pub webhook_allow_internal: bool,
    /// GitHub's secret-scanning public keys (its key-list JSON, from
    /// api.github.com/meta/public_keys/secret_scanning): turns on POST
    /// /v1/secret-scanning/github for GitHub's partner alerts.
    #[arg(
        long,
        env = "KNOWMIND_GITHUB_SECRET_SCANNING_KEYS",
        value_name = "FILE"
    )]
    pub github_secret_scanning_keys: Option<std::path::PathBuf>,
    /// A token learns its baseline (networks, endpoints, clients) until it has made this many
    /// calls or the learning period has passed, whichever comes first; after that, each new
    /// value raises a `token.anomaly` once.
    #[arg(long, env = "KNOWMIND_ANOMALY_LEARNING_CALLS", default_value_t = 100)]
    pub anomaly_learning_calls: u32,
    /// Time from a token's first call after which its learning period is over.
    #[arg(long, env = "KNOWMIND_ANOMALY_LEARNING_PERIOD", default_value = "7d", value_parser = duration)]
    pub anomaly_learning_period: time::Duration,
    /// One token used from two networks within this long raises a `token.anomaly`.
    #[arg(long, env = "KNOWMIND_ANOMALY_WINDOW", default_value = "5m", value_parser = duration)]
    pub anomaly_window: time::Duration,
    /// How long an OAuth access token lives, from 5 minutes to 1 hour. Connectors refresh it, and
    /// each refresh checks the grant again, so shorter means a revoked connection's last token
    /// dies sooner (removal and revocation reach live tokens at once anyway). Never longer than an
    /// hour: a workspace's maximum lifetime may be as short as that.
    #[arg(long, env = "KNOWMIND_OAUTH_ACCESS_TOKEN_LIFETIME", default_value = "1h", value_parser = oauth_access_lifetime)]
    pub oauth_access_token_lifetime: time::Duration,
    /// Turn anomaly detection off (canary tokens still raise theirs).
    #[arg(long, env = "KNOWMIND_NO_ANOMALY_DETECTION")]
    pub no_anomaly_detection: bool,
    /// Which requests get an access-log line (at `info`): `all`, `errors` (status 400 and
    /// above), `1/N` (one request in N, and every error) or `off`. Lines are written by a
    /// background thread; metrics count every request either way.
    #[arg(long, env = "KNOWMIND_ACCESS_LOG", default_value = "all", value_parser = access_log)]
    pub access_log: String,
    /// Threads for scrypt (default: the number of CPUs).
    #[arg(long, env = "KNOWMIND_HASH_THREADS")]
    pub hash_threads: Option<usize>,
    /// The dashboard's address as people reach it (for links it prints and shows); by default
    /// `http://` and the listen address.
    #[arg(long, env = "KNOWMIND_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Name of the workspace created on first start.
    #[arg(long, env = "KNOWMIND_BOOTSTRAP_WORKSPACE", default_value = "default")]
    pub bootstrap_workspace: String,
    /// Email of that workspace's owner.
    #[arg(
        long,
        env = "KNOWMIND_BOOTSTRAP_OWNER_EMAIL",
        default_value = "owner@localhost"
    )]
    pub bootstrap_owner_email: String,
}

/// `init` settings.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The workspace's name.
    #[arg(long, env = "KNOWMIND_WORKSPACE")]
    pub workspace: String,
    /// Its owner's email.
    #[arg(long, env = "KNOWMIND_OWNER_EMAIL", default_value = "owner@localhost")]
    pub owner_email: String,
}

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 1 if it is broken.
    Verify(VerifyArgs),
}

/// `audit verify` settings.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Signed checkpoints to verify the chain against: files, or directories of them. Default:
    /// `<data-dir>/checkpoints`, where the server writes them.
    #[arg(long = "checkpoint", value_name = "PATH")]
    pub checkpoints: Vec<PathBuf>,
}

fn duration(text: &str) -> Result<time::Duration, String> {
    token_core::parse_duration(text).map_err(|e| e.to_string())
}

fn oauth_access_lifetime(text: &str) -> Result<time::Duration, String> {
    let lifetime = duration(text)?;
    if (time::Duration::minutes(5)..=token_store::ACCESS_LIFETIME).contains(&lifetime) {
        Ok(lifetime)
    } else {
        Err(format!("{text:?} is outside 5m..1h"))
    }
}

fn access_log(text: &str) -> Result<String, String> {
    text.parse::<crate::observe::AccessLog>()?;
    Ok(text.to_owned())
}

fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(text).map_err(|_| format!("{text:?} is not a valid header name"))
}

impl Common {
    /// The database URL: `--database-url`/`KNOWMIND_DATABASE_URL`, or the content of the file
    /// named by `KNOWMIND_DATABASE_URL_FILE` (one trailing newline stripped), or SQLite in the
    /// data directory.
    ///
    /// # Errors
    /// Both the URL and the file given; an unreadable file.
    pub fn database_url(&self) -> anyhow::Result<String> {
        let file = std::env::var_os("KNOWMIND_DATABASE_URL_FILE");
        match (&self.database_url, file) {
            (Some(_), Some(_)) => bail!(
                "set KNOWMIND_DATABASE_URL (--database-url) or KNOWMIND_DATABASE_URL_FILE, not both"
            ),
            (Some(url), None) => Ok(url.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "cannot read KNOWMIND_DATABASE_URL_FILE ({})",
                        PathBuf::from(&path).display()
                    )
                })?;
                let url = text.strip_suffix('\n').unwrap_or(&text);
                let url = url.strip_suffix('\r').unwrap_or(url);
                if url.is_empty() {
                    bail!("KNOWMIND_DATABASE_URL_FILE is empty");
                }
                Ok(url.to_owned())
            }
            (None, None) => Ok(self
                .data_dir
                .join("knowmind.db")
                .to_string_lossy()
                .into_owned()),
        }
    }

    /// The audit key's file: `--audit-key-file`, or `<data-dir>/audit-key`.
    pub fn audit_key_path(&self) -> PathBuf {
        self.audit_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-key"))
    }

    /// Creates the data directory (0700) if it is missing.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn ensure_data_dir(&self) -> anyhow::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {} (--data-dir / KNOWMIND_DATA_DIR)",
                self.data_dir.display()
            )
        })
    }
}
