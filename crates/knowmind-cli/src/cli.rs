//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// knowmind: manage API tokens and read the security log from the terminal or CI.
#[derive(Debug, Parser)]
#[command(name = "knowmind", version, about, after_help = TOKEN_SOURCES)]
pub struct Cli {
    /// The knowmind server (default: the one saved by `auth login`).
    #[arg(long, env = "KNOWMIND_SERVER", global = true, hide_env_values = true)]
    pub server: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No warnings, only results and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// No colours (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Send the token over plain http:// to a server that is not on this machine (anyone on
    /// the path can read it). Without it, only loopback addresses may use http://.
    #[arg(
        long,
        env = "KNOWMIND_ALLOW_INSECURE_HTTP",
        global = true,
        value_parser = boolish,
        action = clap::ArgAction::SetTrue
    )]
    pub allow_insecure_http: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const TOKEN_SOURCES: &str = "The token is taken, in this order, from KNOWMIND_TOKEN, the file named by \
KNOWMIND_TOKEN_FILE, token_command in ~/.knowmind/config.json, or the token saved there by \
`knowmind auth login`. It is never accepted as an argument.";

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in, check and manage the credential on this machine.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Issue, list, inspect, rotate and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read, export and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show or change the workspace's policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// OAuth connectors: the clients registered in the workspace and members' connections.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Webhook endpoints: where knowmind tells you about expiring, rotated and revoked tokens.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Compromise response: revoke, replace, see what was unusual, keep the GDPR Art. 33 record.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Find knowmind tokens in files, in what is staged for a commit, or in a repository's
    /// whole history. Exit 0 when clean, 1 when tokens were found, 2 on usage errors.
    Scan(ScanArgs),
    /// The git pre-commit hook that stops tokens at commit time.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Check this machine's knowmind setup and say how to fix what is wrong.
    Doctor {
        /// Fix what can be fixed safely (file permissions).
        #[arg(long)]
        fix: bool,
    },
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `auth` commands.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Save a token for this machine, after checking it with the server. The token is read from
    /// standard input when it is not a terminal, otherwise prompted for without echo.
    Login {
        /// Read the token from standard input even on a terminal.
        #[arg(long)]
        with_token: bool,
    },
    /// Show the server, where the token comes from, and what the token is allowed (exit 4 if the
    /// server refuses it).
    Status,
    /// Print the token in use, and nothing else (for scripts).
    Token,
    /// Make `--server URL` the server commands use by default (a token must be saved for it).
    Switch,
    /// Forget the token saved for the server in use.
    Logout {
        /// Revoke it on the server first.
        #[arg(long)]
        revoke: bool,
    },
}

/// `token` commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; the token goes to standard output once, everything else to standard error.
    Create(CreateArgs),
    /// List the workspace's tokens.
    List {
        /// Which tokens.
        #[arg(long, value_enum, default_value_t = StateArg::Active)]
        state: StateArg,
        /// Show at most this many (the newest); without it, all of them.
        #[arg(long)]
        limit: Option<usize>,
        /// Only tokens due for rotation (older than the workspace's rotation interval).
        #[arg(long)]
        due: bool,
        /// Only tokens that expire within this long (`14d`).
        #[arg(long)]
        expiring_within: Option<String>,
    },
    /// Show one token (an id, or `self`).
    View {
        /// Token id or `self`.
        id: String,
    },
    /// Where and how a token was used (an id, or `self`).
    Usage {
        /// Token id or `self`.
        id: String,
        /// Show at most this many recent calls (default 20).
        #[arg(long, conflicts_with = "all")]
        limit: Option<usize>,
        /// Show every recorded call.
        #[arg(long)]
        all: bool,
    },
    /// Replace a token by a new one (an id, or `self`: the saved credential is updated).
    Rotate {
        /// Token id or `self`.
        id: String,
        /// Keep the old token working this long, e.g. `1h`.
        #[arg(long)]
        grace: Option<String>,
        /// Lifetime of the new token, e.g. `90d` (default: as long as the old one's).
        #[arg(long)]
        expires_in: Option<String>,
        /// The new token may be used only from these networks (CIDR, IPv4 or IPv6; repeat or
        /// separate with commas). Default: the old token's list.
        #[arg(long = "allow-from", value_name = "CIDR")]
        allow_from: Vec<String>,
        /// Verified hand-over: keep the old token working until the new one has been used (then
        /// for --overlap), and at the latest for this long (e.g. `7d`).
        #[arg(long, value_name = "DEADLINE", conflicts_with = "grace")]
        handover: Option<String>,
        /// With --handover: how long the old token keeps working after the new one's first use
        /// (default `5m`, at most `1h`).
        #[arg(long, requires = "handover")]
        overlap: Option<String>,
    },
    /// Revoke tokens (ids, or `self`).
    Revoke {
        /// Token ids or `self`.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
        /// Why (kept in the token's record and the audit log). `compromised` and `leaked`
        /// always revoke every token rotated from it, too.
        #[arg(long)]
        reason: Option<String>,
        /// Revoke only the named token, not the tokens rotated from it (its family). Ignored
        /// for the reasons `compromised` and `leaked`.
        #[arg(long)]
        only_this: bool,
    },
}

/// `policy` commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the workspace's policy.
    Show,
    /// Change the workspace's policy (audited); what is not named stays as it is.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Set {
        /// What presenting a rotated token after its grace period does: only alert (a security
        /// event), or also revoke every token of its family.
        #[arg(long, value_enum, group = "change")]
        reuse_detection: Option<ReuseDetectionArg>,
        /// Whether OAuth connectors may register themselves into this workspace (RFC 7591, as
        /// MCP clients do); they show up as unverified and still need a member's consent.
        #[arg(long, value_enum, group = "change")]
        oauth_registration: Option<Switch>,
        /// A preset of the lifetime rules: `standard` (rotate every 90 days) or `regulated`
        /// (finance, health: rotate every 30 days, expiry required, at most 90 days); the other
        /// flags given with it win.
        #[arg(long, value_enum, group = "change")]
        preset: Option<PolicyPreset>,
        /// The longest a new or rotated token may live (`90d`), or `none`.
        #[arg(long, group = "change")]
        max_lifetime: Option<String>,
        /// Whether every new or rotated token must expire.
        #[arg(long, value_enum, group = "change")]
        require_expiry: Option<Switch>,
        /// After how long a token is due for rotation (`30d`).
        #[arg(long, group = "change")]
        rotation_interval: Option<String>,
        /// The scopes an owner's tokens may carry (`read,write,admin,introspect`).
        #[arg(long, value_name = "SCOPES", group = "change")]
        owner_scopes: Option<String>,
        /// The scopes an admin's tokens may carry.
        #[arg(long, value_name = "SCOPES", group = "change")]
        admin_scopes: Option<String>,
        /// The scopes a member's tokens may carry (never `admin`).
        #[arg(long, value_name = "SCOPES", group = "change")]
        member_scopes: Option<String>,
        /// Whether a token with the `write` scope must carry an address allow-list.
        #[arg(long, value_enum, group = "change")]
        write_requires_allowlist: Option<Switch>,
        /// Revoke tokens unused for this long when the policy is applied (`90d`), or `none`.
        #[arg(long, group = "change")]
        revoke_unused_after: Option<String>,
    },
    /// List the live tokens that break the policy and what applying it would do (a dry run);
    /// with `--apply`, do it (audited).
    Check {
        /// Set expiries, narrow scopes and revoke as listed.
        #[arg(long)]
        apply: bool,
        /// Do not ask for confirmation before applying (required when not on a terminal).
        #[arg(long, requires = "apply")]
        yes: bool,
    },
}

/// `policy set --preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyPreset {
    /// Rotate every 90 days; no maximum lifetime.
    Standard,
    /// Rotate every 30 days; every token expires, within 90 days.
    Regulated,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// `policy set --reuse-detection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReuseDetectionArg {
    /// A security event; the successor keeps working.
    Alert,
    /// The event, and the token's family is revoked.
    RevokeFamily,
}

/// `token create` arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name, e.g. `ci-deploy`.
    pub name: String,
    /// A scope: read, write, admin, introspect (repeat for several).
    #[arg(long = "scope", required_unless_present = "canary")]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. `90d`.
    #[arg(long, conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Expiry as an RFC 3339 time, e.g. `2027-01-01T00:00:00Z`.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// What it is for.
    #[arg(long)]
    pub description: Option<String>,
    /// The device or application it is for.
    #[arg(long = "for")]
    pub client: Option<String>,
    /// Use only from these networks (CIDR, IPv4 or IPv6, e.g. `203.0.113.0/24`; repeat or
    /// separate with commas). Default: anywhere.
    #[arg(long = "allow-from", value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// A canary: it authorizes nothing, never expires, and any use of it raises a security
    /// event (and a webhook). Plant it where a leak would be found first.
    #[arg(long, conflicts_with_all = ["scopes", "expires_in", "expires_at", "allow_from"])]
    pub canary: bool,
}

/// Token states for `token list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Usable tokens.
    Active,
    /// Past their expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// All of them.
    All,
}

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    List {
        /// Events by or about this token id.
        #[arg(long)]
        token: Option<String>,
        /// Events of this kind, e.g. `token.revoked`.
        #[arg(long)]
        action: Option<String>,
        /// Events of the last period, e.g. `7d`.
        #[arg(long)]
        since: Option<String>,
        /// Show at most this many (the newest); default 200; `--all` for every one.
        #[arg(long, conflicts_with = "all")]
        limit: Option<usize>,
        /// Show every matching event.
        #[arg(long)]
        all: bool,
    },
    /// Export all events as JSON Lines.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Verify the audit log's hash chain (exit 1 if broken).
    Verify,
}

/// `knowmind oauth`.
#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// OAuth clients (connectors).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Members' connections (remembered consents) to clients.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
}

/// `knowmind scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files or directories to scan (default: the current directory).
    #[arg(conflicts_with_all = ["staged", "git_history"])]
    pub paths: Vec<std::path::PathBuf>,
    /// Scan what is staged for the next commit (what the pre-commit hook runs).
    #[arg(long, conflicts_with = "git_history")]
    pub staged: bool,
    /// Scan every blob of the repository's history: every branch and tag, and the reflog.
    #[arg(long)]
    pub git_history: bool,
    /// The repository for --staged and --git-history (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<std::path::PathBuf>,
    /// Also scan files that .gitignore and .ignore exclude.
    #[arg(long)]
    pub no_ignore: bool,
    /// Also scan binary files.
    #[arg(long)]
    pub binary: bool,
    /// Output: human (grouped by file), json, or sarif (SARIF 2.1.0, for code-scanning UIs).
    #[arg(long, value_enum, default_value_t = ScanFormat::Human)]
    pub format: ScanFormat,
    /// Ask the server which of the found tokens are still live (sends their ids, never the
    /// tokens; needs a token that may read them).
    #[arg(long)]
    pub check_live: bool,
    /// Revoke the found tokens: sends them to the server's public revocation endpoint.
    #[arg(long)]
    pub revoke: bool,
}

/// `scan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanFormat {
    /// Grouped by file.
    Human,
    /// A JSON array of findings.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// `knowmind hook` commands.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Install the pre-commit hook in the current repository (where `core.hooksPath` says).
    Install {
        /// Replace a pre-commit hook that knowmind did not install.
        #[arg(long, conflicts_with = "chain")]
        force: bool,
        /// Keep an existing pre-commit hook and run it after knowmind's check.
        #[arg(long)]
        chain: bool,
    },
    /// Remove the hook `install` put there (and restore a chained one); nothing else.
    Uninstall,
}

/// `knowmind incident` commands.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident for a token believed compromised: it and every token rotated from it
    /// are revoked at once, and the GDPR Art. 33 clock (72 hours) starts.
    Open {
        /// The token id, or `self` for the token in use (it stops working).
        id: String,
        /// Look at its calls from this moment (RFC 3339; default: the token's creation).
        #[arg(long)]
        since: Option<String>,
        /// Issue a replacement (same name pattern, scopes, device), printed once.
        #[arg(long)]
        replace: bool,
        /// What happened, as far as you know.
        #[arg(long)]
        summary: Option<String>,
    },
    /// The workspace's incidents, newest first; overdue ones are flagged.
    List,
    /// An incident's report: calls, unusual addresses and endpoints, changes, the record.
    Report {
        /// The incident id (`inc_…`).
        id: String,
        /// `md` (the record as Markdown, for a data protection officer) or `json`.
        #[arg(long, default_value = "md")]
        format: String,
    },
    /// Amend an incident's record (earlier entries stay).
    Amend {
        /// The incident id (`inc_…`).
        id: String,
        /// The new status: assessed, notified, not-notifiable, closed.
        #[arg(long)]
        status: Option<String>,
        /// Art. 33(3)(a): the nature of the breach.
        #[arg(long)]
        nature: Option<String>,
        /// Art. 33(3)(a): data subjects concerned (categories, approximate number).
        #[arg(long)]
        data_subjects: Option<String>,
        /// Art. 33(3)(a): personal data records concerned (categories, approximate number).
        #[arg(long)]
        records: Option<String>,
        /// Art. 33(3)(b): the data protection officer's name and contact.
        #[arg(long)]
        dpo_contact: Option<String>,
        /// Art. 33(3)(c): likely consequences.
        #[arg(long)]
        consequences: Option<String>,
        /// Art. 33(3)(d): further measures taken or proposed.
        #[arg(long)]
        measures: Option<String>,
        /// Why the supervisory authority was, or was not, notified (Art. 33(5)).
        #[arg(long)]
        decision_reason: Option<String>,
        /// Anything else.
        #[arg(long)]
        note: Option<String>,
    },
}

/// `knowmind webhook` commands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; its signing secret is printed once, on standard output.
    Add {
        /// Where to POST (`https://…`; `http://` only to a loopback address).
        url: String,
        /// An event type to deliver (repeat for several; `*` for all). Default: token expiring,
        /// rotation due, hand-over completed or timed out, revoked, reused.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the workspace's endpoints, with pending and failed deliveries.
    List,
    /// An endpoint's delivery log: each event, its attempts and what the endpoint answered.
    Deliveries {
        /// The endpoint id (`whk_…`).
        id: String,
        /// How many, newest first (at most 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Remove an endpoint: nothing more is sent to it.
    Remove {
        /// The endpoint id (`whk_…`).
        id: String,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// `knowmind oauth clients`.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List the workspace's clients; unverified and never-approved ones are flagged.
    List {
        /// Include removed clients.
        #[arg(long)]
        all: bool,
    },
    /// One client, with its connections.
    Show {
        /// The client id (`cli_…`).
        id: String,
    },
    /// Remove a client: every connection and token of it is revoked at once.
    Remove {
        /// The client id (`cli_…`).
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// `knowmind oauth connections`.
#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List connections (live ones, unless `--all`).
    List {
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
        /// Include revoked connections.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a connection and its tokens.
    Revoke {
        /// The connection id (`con_…`).
        id: String,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; empty (a variable set to nothing) is `false`.
fn boolish(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        other => Err(format!("{other:?} is not true or false")),
    }
}
