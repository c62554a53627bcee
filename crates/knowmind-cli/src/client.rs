//! The HTTP client: the token goes in `Authorization: Bearer`, problem documents become one-line
//! errors with the right exit code, and `Knowmind-Token-Expiration` feeds the expiry warning.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::CliError;

/// No request body.
pub const NO_BODY: Option<&()> = None;

/// No query string.
pub const NO_QUERY: &[(&str, &str)] = &[];

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, CliError> {
    response
        .json()
        .await
        .map_err(|e| CliError::new(format!("unexpected answer from the server: {e}")))
}

/// Refuses a server URL that would expose the token: not http(s), or plain http to anything but
/// this machine without the user's explicit consent.
///
/// # Errors
/// A usage error saying why and what to do.
pub fn check_server(server: &str, allow_insecure_http: bool) -> Result<(), CliError> {
    let url = reqwest::Url::parse(server).map_err(|_| {
        CliError::usage(format!("the server URL {server:?} is not a URL"))
            .hint("like https://knowmind.example.com")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CliError::usage(
            "the server URL must not carry a user name or password (user@host)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(CliError::usage(
            "the server URL must not have a ?query or #fragment",
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let local = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if local || allow_insecure_http {
                Ok(())
            } else {
                Err(CliError::usage(format!(
                    "refusing to send a token over plain http to {}: anyone on the way can read \
                     and use it",
                    url.host_str().unwrap_or("the server")
                ))
                .hint("use https://, or pass --allow-insecure-http (KNOWMIND_ALLOW_INSECURE_HTTP=true) if you accept that"))
            }
        }
        other => Err(CliError::usage(format!(
            "the server URL must start with https:// (or http:// on this machine), not {other}://"
        ))),
    }
}

/// A client of one knowmind server with one token.
pub struct Client {
    http: reqwest::Client,
    server: String,
    token: SecretString,
    /// The presented token's expiry, from the last response that carried it.
    pub token_expires_at: std::cell::Cell<Option<OffsetDateTime>>,
    /// What to do when the server refuses the token: it depends on where the token came from.
    refused_hint: String,
}

impl Client {
    /// A client of `server` presenting `token`. Plain `http://` is refused unless the server
    /// is on this machine (a loopback address or `localhost`) or `allow_insecure_http`.
    ///
    /// # Errors
    /// A server URL that is not http(s), or plain http to another machine.
    pub fn new(
        server: &str,
        token: SecretString,
        allow_insecure_http: bool,
    ) -> Result<Self, CliError> {
        let server = server.trim_end_matches('/').to_owned();
        check_server(&server, allow_insecure_http)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("knowmind-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30));
        if let Ok(url) = reqwest::Url::parse(&server)
            && url.scheme() == "http"
        {
            // Plain http is allowed to this machine only: not through a proxy (HTTP_PROXY would
            // receive the token in clear), and `localhost` is this machine, whatever DNS says.
            builder = builder.no_proxy();
            if url.host_str() == Some("localhost") {
                let port = url.port_or_known_default().unwrap_or(80);
                builder = builder.resolve(
                    "localhost",
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                );
            }
        }
        let http = builder
            .build()
            .map_err(|e| CliError::new(format!("cannot set up HTTPS: {e}")))?;
        Ok(Client {
            http,
            server,
            token,
            token_expires_at: std::cell::Cell::new(None),
            refused_hint: "run `knowmind auth login` with a valid token".to_owned(),
        })
    }

    /// The same client, saying `hint` when the server refuses the token.
    pub fn with_refused_hint(mut self, hint: impl Into<String>) -> Self {
        self.refused_hint = hint.into();
        self
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `GET path?query`, the JSON answer decoded into `T`.
    ///
    /// # Errors
    /// Unreachable server (1), refused token (4), any other problem document (1, its detail),
    /// an answer that is not a `T` (1).
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &(impl Serialize + ?Sized),
    ) -> Result<T, CliError> {
        decode(self.send(Method::GET, path, query, NO_BODY).await?).await
    }

    /// Every item of a paged list, following `next_cursor`, up to `limit` items (all with
    /// `None`); `query(cursor)` builds each page's query. Returns the items and whether more
    /// were left out.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn all_pages<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: impl Fn(Option<String>) -> Q,
        limit: Option<usize>,
    ) -> Result<(Vec<T>, Option<Remaining>), CliError> {
        let mut items = Vec::new();
        let mut cursor = None;
        loop {
            let page: knowmind_api::Page<T> = self.get(path, &query(cursor)).await?;
            items.extend(page.items);
            if let Some(limit) = limit
                && items.len() >= limit
            {
                let mut beyond = items.len() - limit;
                items.truncate(limit);
                // Count what was left out, a few pages' worth at most.
                let mut next = page.next_cursor;
                while let Some(at) = next.take() {
                    if beyond >= COUNT_AT_MOST {
                        return Ok((items, Some(Remaining::AtLeast(beyond))));
                    }
                    let page: knowmind_api::Page<serde::de::IgnoredAny> =
                        self.get(path, &query(Some(at))).await?;
                    beyond += page.items.len();
                    next = page.next_cursor;
                }
                return Ok((items, (beyond > 0).then_some(Remaining::Exactly(beyond))));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok((items, None)),
            }
        }
    }

    /// `method path?query` with a JSON `body` (if any), the JSON answer decoded into `T`.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &(impl Serialize + ?Sized),
        body: Option<&impl Serialize>,
    ) -> Result<T, CliError> {
        decode(self.send(method, path, query, body).await?).await
    }

    /// Sends a request and returns the successful response; the query string is encoded from
    /// `query` (a struct of the API's, or `()` for none).
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &(impl Serialize + ?Sized),
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, CliError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server))
            .query(query)
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(&self.server, &e))?;
        if let Some(at) = response
            .headers()
            .get("knowmind-token-expiration")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
            })
        {
            self.token_expires_at.set(Some(at));
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let detail = response
            .json::<knowmind_api::Problem>()
            .await
            .map(|p| p.detail)
            .unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => {
                CliError::auth_refused("the server refused the token (unknown, revoked or expired)")
                    .hint(self.refused_hint.clone())
            }
            StatusCode::FORBIDDEN => CliError::new(format!("not allowed: {detail}")),
            StatusCode::TOO_MANY_REQUESTS => {
                CliError::new("too many failed attempts from this address; wait a minute")
            }
            _ => CliError::new(if detail.is_empty() {
                format!("the server answered {status}")
            } else {
                detail
            }),
        })
    }
}

/// How many items a listing left out, counted up to 2,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remaining {
    /// This many.
    Exactly(usize),
    /// At least this many (counting stopped).
    AtLeast(usize),
}

/// Items counted beyond a limit before saying "more than".
const COUNT_AT_MOST: usize = 2_000;

impl std::fmt::Display for Remaining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remaining::Exactly(n) => write!(f, "{n} more"),
            Remaining::AtLeast(n) => write!(f, "more than {n} more"),
        }
    }
}

/// Why a request never got an answer, in words that say what to fix: nothing listening, no
/// answer in time, a name that does not resolve, TLS that failed — from the error's causes.
pub(crate) fn unreachable(server: &str, e: &reqwest::Error) -> CliError {
    let causes: Vec<String> =
        std::iter::successors(std::error::Error::source(e), |cause| cause.source())
            .map(ToString::to_string)
            .collect();
    let all = causes.join(": ").to_lowercase();
    let io_kind = std::iter::successors(std::error::Error::source(e), |cause| cause.source())
        .find_map(|cause| cause.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let (what, hint) = if e.is_timeout() {
        (
            "no answer in time (timed out)".to_owned(),
            "the server or the network is slow or blocked; check that the address is right",
        )
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused)
        || all.contains("connection refused")
    {
        (
            "connection refused: nothing is listening there".to_owned(),
            "is the server running, and is the port in --server / KNOWMIND_SERVER right?",
        )
    } else if all.contains("certificate")
        || all.contains("tls")
        || all.contains("handshake")
        || all.contains("corrupt message")
    {
        (
            format!(
                "the TLS connection failed ({})",
                causes.last().map_or("no detail", String::as_str)
            ),
            "check that the server speaks https at that address (or use http:// for a local one)",
        )
    } else if all.contains("dns error")
        || all.contains("failed to lookup")
        || all.contains("name or service not known")
        || all.contains("no address associated")
    {
        (
            "the host name does not resolve".to_owned(),
            "check the host name in --server / KNOWMIND_SERVER",
        )
    } else {
        (
            causes
                .last()
                .cloned()
                .unwrap_or_else(|| "the request failed".to_owned()),
            "check --server / KNOWMIND_SERVER and your network",
        )
    };
    CliError::new(format!(
        "cannot reach the knowmind server at {server}: {what}"
    ))
    .hint(hint)
}
