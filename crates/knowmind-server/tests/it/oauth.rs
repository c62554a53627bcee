//! OAuth connectors end to end: the `oauth2` crate (an independent client) against the real
//! binary over a socket, with the consent form submitted over HTTP as a signed-in member; and
//! the refusals, each on its own, against the router with a clock the test moves.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    RefreshToken, RevocationUrl, Scope as OAuthScope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "violet submarine orchestra 42";
const REDIRECT: &str = "http://127.0.0.1/callback";

/// The `oauth2` crate's HTTP client: ours, without following redirects.
async fn http(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder.body(body).unwrap())
}

/// A browser over HTTP: keeps the `__Host-` cookies itself (they are `Secure`, and the test
/// server is plain http on loopback, as browsers allow).
struct Person {
    base: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Person {
    fn new(base: &str) -> Self {
        Person {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path_or_url: &str) -> (StatusCode, String, String) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let response = self
            .http
            .get(url)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.absorb(&response);
        let status = response.status();
        let location = header_text(&response, reqwest::header::LOCATION);
        (status, location, response.text().await.unwrap())
    }

    /// Follows redirects within the server (as a browser would), stopping at one that leaves it.
    async fn follow(&mut self, start: &str) -> (StatusCode, String, String) {
        let mut at = start.to_owned();
        for _ in 0..5 {
            let (status, location, body) = self.get(&at).await;
            if !status.is_redirection() || !(location.starts_with('/')) {
                return (status, location, body);
            }
            at = location;
        }
        panic!("too many redirects from {start}");
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form {
            body.append_pair(key, value);
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header("sec-fetch-site", "same-origin")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.finish())
            .send()
            .await
            .unwrap();
        self.absorb(&response);
        let status = response.status();
        let location = header_text(&response, reqwest::header::LOCATION);
        (status, location, response.text().await.unwrap())
    }
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn field(html: &str, name: &str) -> String {
    let pattern = format!(r#"name="{name}"[^>]*value="([^"]*)""#);
    regex::Regex::new(&pattern)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))[1]
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
        .replace("&#x3a;", ":")
}

fn query_of(url: &str) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

/// Starts the real binary on a free port; returns it, its base URL and its data directory.
async fn start_binary(dir: &std::path::Path) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let data = dir.join("data");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_knowmind-server"))
        .args(["serve", "--listen", &addr])
        .env("KNOWMIND_DATA_DIR", &data)
        .env_remove("KNOWMIND_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if data.join("owner-enrolment-link").exists()
            && tokio::net::TcpStream::connect(&addr).await.is_ok()
        {
            return (child, format!("http://{addr}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not start");
}

/// Enrols the owner with the first start's link and signs them in.
async fn owner_signed_in(base: &str, data: &std::path::Path) -> Person {
    let link = std::fs::read_to_string(data.join("owner-enrolment-link")).unwrap();
    let link = link.trim();
    let mut person = Person::new(base);
    let (status, _, page) = person.get(link).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = field(&page, "csrf");
    let secret = field(&page, "link");
    let (status, _, page) = person
        .post(
            "/dashboard/enrol",
            &[
                ("csrf", &csrf),
                ("link", &secret),
                ("name", "Olga"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, _, form) = person.get("/dashboard/sign-in").await;
    let csrf = field(&form, "csrf");
    let workspace = field(&form, "workspace");
    let email = "owner@localhost"; // the first start's default owner
    let (status, _, page) = person
        .post(
            "/dashboard/sign-in",
            &[
                ("csrf", &csrf),
                ("workspace", &workspace),
                ("email", email),
                ("password", PASSWORD),
                ("next", "/dashboard/tokens"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    person
}

/// Runs the authorization request in the person's browser, approves on the consent page, and
/// returns the code from the redirect (checking `state` and `iss`).
async fn approve(
    person: &mut Person,
    url: &url::Url,
    csrf_state: &CsrfToken,
    base: &str,
) -> String {
    let (status, _, page) = person.follow(url.as_str()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Allow") && page.contains("read"), "{page}");
    let mut form: Vec<(String, String)> = [
        "csrf",
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|name| ((*name).to_owned(), field(&page, name)))
    .collect();
    form.push(("decision".into(), "approve".into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, location, body) = person.post("/dashboard/oauth/authorize", &pairs).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(
        location.starts_with("http://127.0.0.1/callback?"),
        "{location}"
    );
    let answer = query_of(&location);
    assert_eq!(answer["state"], *csrf_state.secret());
    assert_eq!(answer["iss"], base);
    answer["code"].clone()
}

/// The connector's client as the test configures it: authorization, token and revocation
/// endpoints set.
type Connector = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
>;

/// One whole connection: the authorization request in the person's browser, their "Allow", and
/// the code exchanged with its PKCE verifier.
async fn connect(
    client: &Connector,
    person: &mut Person,
    base: &str,
) -> oauth2::basic::BasicTokenResponse {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OAuthScope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let code = approve(person, &url, &state, base).await;
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap()
}

async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_connector_connects_reads_refreshes_is_caught_reusing_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base) = start_binary(dir.path()).await;
    let data = dir.path().join("data");
    let admin = std::fs::read_to_string(data.join("bootstrap-token")).unwrap();
    let admin = admin.trim();

    // Discovery (RFC 8414): the required fields, and what this server supports.
    let metadata: Value = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], base);
    for required in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "response_types_supported",
    ] {
        assert!(
            metadata.get(required).is_some(),
            "{required} missing: {metadata}"
        );
    }
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "off by default"
    );
    // Protected resource metadata (RFC 9728): the API names its authorization server.
    let resource: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["resource"], base);
    assert_eq!(resource["authorization_servers"], json!([base]));
    assert_eq!(resource["scopes_supported"], json!(["read", "write"]));

    // An admin registers a confidential connector; its secret is shown once.
    let (status, registered) = api(
        &base,
        admin,
        reqwest::Method::POST,
        "/v1/oauth/clients",
        Some(json!({"name": "Notes sync", "redirect_uris": [REDIRECT], "scopes": ["read"], "confidential": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let client_id = registered["id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("kmc_"));
    assert_eq!(
        secret.parse::<token_core::Token>().unwrap().id().as_str(),
        client_id.strip_prefix("cli_").unwrap(),
        "a client secret names its client"
    );

    let (_, events) = api(
        &base,
        admin,
        reqwest::Method::GET,
        "/v1/audit/events?action=oauth.client_registered",
        None,
    )
    .await;
    assert_eq!(
        events["items"][0]["target_id"],
        client_id.as_str(),
        "{events}"
    );

    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{base}/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{base}/oauth/token")).unwrap())
        .set_revocation_url(RevocationUrl::new(format!("{base}/oauth/revoke")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    let mut owner = owner_signed_in(&base, &data).await;

    // Authorization request, consent, code exchange with PKCE.
    let tokens = connect(&client, &mut owner, &base).await;
    let access = tokens.access_token().secret().clone();
    assert!(
        access.starts_with("kmo_"),
        "access tokens have their own prefix"
    );
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    assert!(refresh.starts_with("kmr_"));
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(3_600)));

    // The access token reads notes, is refused writing (only read was granted), and its use
    // names the connector.
    let (status, _) = api(&base, &access, reqwest::Method::GET, "/v1/notes", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api(
        &base,
        &access,
        reqwest::Method::POST,
        "/v1/notes",
        Some(json!({"title": "x", "body": "y"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, me) = api(
        &base,
        &access,
        reqwest::Method::GET,
        "/v1/tokens/self",
        None,
    )
    .await;
    assert_eq!(me["oauth_client_id"], client_id.as_str(), "{me}");

    // The client list shows it with one member connected and a live token.
    let (_, clients) = api(
        &base,
        admin,
        reqwest::Method::GET,
        "/v1/oauth/clients",
        None,
    )
    .await;
    let listed = &clients["items"][0];
    assert_eq!(listed["id"], client_id.as_str());
    assert_eq!(listed["connected_members"], 1);
    assert_eq!(listed["tokens_outstanding"], 1);
    assert_eq!(listed["registration"], "admin");
    // Its last use, and from where, once the usage writer has committed the calls above.
    let mut last_used = Value::Null;
    for _ in 0..50 {
        let (_, clients) = api(
            &base,
            admin,
            reqwest::Method::GET,
            "/v1/oauth/clients",
            None,
        )
        .await;
        last_used = clients["items"][0].clone();
        if last_used["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last_used["last_used_at"].is_string(), "{last_used}");
    assert_eq!(last_used["last_used_ip"], "127.0.0.1", "{last_used}");

    // Refresh rotates the refresh token; the new access token works.
    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(refresh.clone()))
        .request_async(&http)
        .await
        .unwrap();
    let access2 = refreshed.access_token().secret().clone();
    assert_ne!(access2, access);
    assert_ne!(refreshed.refresh_token().unwrap().secret(), &refresh);
    let (status, _) = api(&base, &access2, reqwest::Method::GET, "/v1/notes", None).await;
    assert_eq!(status, StatusCode::OK);

    // Reusing the old refresh token revokes the whole grant: both access tokens die.
    let reused = client
        .exchange_refresh_token(&RefreshToken::new(refresh))
        .request_async(&http)
        .await;
    assert!(
        matches!(
            reused,
            Err(oauth2::RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"
        ),
        "{reused:?}"
    );
    for token in [&access, &access2] {
        let (status, _) = api(&base, token, reqwest::Method::GET, "/v1/notes", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (_, events) = api(
        &base,
        admin,
        reqwest::Method::GET,
        "/v1/audit/events?action=oauth.reuse_detected",
        None,
    )
    .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");

    // A new connection (consent is asked again: the old one was revoked); RFC 7009 revocation
    // of the access token refuses it at once.
    let tokens = connect(&client, &mut owner, &base).await;
    // The oauth2 crate sends revocations to https URLs only (it refuses this test's plain
    // http one), so this RFC 7009 request is written out: client_secret_basic, form body.
    assert!(matches!(
        client.revoke_token(StandardRevocableToken::AccessToken(
            tokens.access_token().clone()
        )),
        Err(oauth2::ConfigurationError::InsecureUrl(_))
    ));
    let revoked = reqwest::Client::new()
        .post(format!("{base}/oauth/revoke"))
        .basic_auth(&client_id, Some(&secret))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!(
            "token={}&token_type_hint=access_token",
            tokens.access_token().secret()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let (status, _) = api(
        &base,
        tokens.access_token().secret(),
        reqwest::Method::GET,
        "/v1/notes",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The connection is remembered, but this client's answers go to a loopback address, which
    // any local program can listen on: the member is asked again, every time.
    let tokens = connect(&client, &mut owner, &base).await;
    let live = tokens.access_token().secret().clone();
    let (status, _) = api(&base, &live, reqwest::Method::GET, "/v1/notes", None).await;
    assert_eq!(status, StatusCode::OK);

    // Removing the client refuses its tokens at once, refresh included, and is audited.
    let (status, removed) = api(
        &base,
        admin,
        reqwest::Method::POST,
        &format!("/v1/oauth/clients/{client_id}/remove"),
        Some(json!({"reason": "unknown connector"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(removed["removed_at"].is_string());
    let (status, _) = api(&base, &live, reqwest::Method::GET, "/v1/notes", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refused = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .request_async(&http)
        .await;
    assert!(
        matches!(
            refused,
            Err(oauth2::RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_client"
        ),
        "{refused:?}"
    );
    let (_, events) = api(
        &base,
        admin,
        reqwest::Method::GET,
        "/v1/audit/events?action=oauth.client_removed",
        None,
    )
    .await;
    assert_eq!(
        events["items"][0]["details"]["reason"], "unknown connector",
        "{events}"
    );

    // No secret reached the server's database in clear.
    let db = std::fs::read(data.join("knowmind.db")).unwrap_or_default();
    let db = String::from_utf8_lossy(&db);
    for secret in [&secret, &access, &access2, &live] {
        assert!(!db.contains(secret.as_str()), "a secret is stored in clear");
    }
}

mod refusals {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use base64ct::Encoding;
    use knowmind_api::{RegisterClient, WorkspacePolicy};
    use serde_json::Value;
    use sha2::Digest;
    use token_core::Scope;
    use token_store::{Call, Role};

    use super::{REDIRECT, query_of};
    use crate::dashboard::{Browser, enrol_and_sign_in, hidden, location};
    use crate::{Reply, Server};

    const VERIFIER: &str = "the-verifier-of-this-test-is-long-enough-0123456789";

    fn challenge(verifier: &str) -> String {
        base64ct::Base64UrlUnpadded::encode_string(&sha2::Sha256::digest(verifier.as_bytes()))
    }

    /// A public client for `read` answering at [`REDIRECT`]; its id.
    async fn register(server: &Server, owner: &str, name: &str) -> String {
        let read = registration(name, REDIRECT, false, false);
        register_as(server, owner, read).await.client.id
    }

    fn registration(
        name: &str,
        redirect: &str,
        confidential: bool,
        client_credentials: bool,
    ) -> RegisterClient {
        RegisterClient {
            name: name.into(),
            redirect_uris: vec![redirect.into()],
            scopes: Scope::Read.into(),
            confidential,
            client_credentials,
        }
    }

    async fn register_as(
        server: &Server,
        owner: &str,
        client: RegisterClient,
    ) -> knowmind_api::RegisteredClient {
        server
            .store
            .register_client(&server.ws, owner, client, &audit::Context::system())
            .await
            .unwrap()
    }

    fn authorize_path(client: &str, redirect: &str, scope: &str, challenge: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scope)
            .append_pair("state", "s-1")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        format!("/dashboard/oauth/authorize?{}", query.finish())
    }

    async fn code_for(browser: &mut Browser<'_>, client: &str) -> String {
        let page = browser
            .get(&authorize_path(
                client,
                REDIRECT,
                "read",
                &challenge(VERIFIER),
            ))
            .await;
        if page.status == StatusCode::SEE_OTHER {
            // A remembered consent: straight back with a code.
            return query_of(location(&page))["code"].clone();
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let answer = approve_on(browser, &page).await;
        query_of(location(&answer))["code"].clone()
    }

    /// Submits the consent page's form with "Allow".
    async fn approve_on(browser: &mut Browser<'_>, page: &Reply) -> Reply {
        decide_on(browser, page, "approve").await
    }

    /// Submits the consent page's form with `decision` (`approve` or `deny`).
    async fn decide_on(browser: &mut Browser<'_>, page: &Reply, decision: &str) -> Reply {
        let fields: Vec<(&str, String)> = [
            "csrf",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
        ]
        .into_iter()
        .map(|name| (name, hidden(&page.text, name)))
        .collect();
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.extend([
            ("response_type", "code"),
            ("code_challenge_method", "S256"),
            ("decision", decision),
        ]);
        let answer = browser.post("/dashboard/oauth/authorize", &form).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        answer
    }

    async fn member_id(server: &Server, email: &str) -> String {
        server
            .store
            .list_members(&server.ws)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.email == email)
            .unwrap()
            .id
    }

    async fn token_request(server: &Server, form: &[(&str, &str)]) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            body.append_pair(k, v);
        }
        server
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri("/oauth/token")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body.finish()))
                    .unwrap(),
            )
            .await
    }

    fn exchange<'a>(client: &'a str, code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ]
    }

    fn oauth_error(reply: &Reply) -> &str {
        reply.json["error"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn every_refusal_is_its_own_and_none_redirects_where_it_must_not() {
        let server = crate::server().await;
        let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
        let owner_id = member_id(&server, "owner@example.org").await;
        let a = register(&server, &owner_id, "Client A").await;
        let b = register(&server, &owner_id, "Client B").await;

        // A redirect URI the client did not register: an error page, no redirect.
        let page = owner
            .get(&authorize_path(
                &a,
                "https://evil.example/cb",
                "read",
                &challenge(VERIFIER),
            ))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.headers.get(header::LOCATION).is_none());
        // An unknown client: the same.
        let page = owner
            .get(&authorize_path(
                "cli_unknown",
                REDIRECT,
                "read",
                &challenge(VERIFIER),
            ))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.headers.get(header::LOCATION).is_none());

        // `admin` is never granted: the client is told, by redirect, with its state.
        let page = owner
            .get(&authorize_path(
                &a,
                REDIRECT,
                "read admin",
                &challenge(VERIFIER),
            ))
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let answer = query_of(location(&page));
        assert_eq!(answer["error"], "invalid_scope");
        assert_eq!(answer["state"], "s-1");
        // No PKCE challenge: refused.
        let page = owner.get(&authorize_path(&a, REDIRECT, "read", "")).await;
        assert_eq!(query_of(location(&page))["error"], "invalid_request");

        // A wrong or missing verifier.
        let code = code_for(&mut owner, &a).await;
        let wrong = token_request(&server, &exchange(&a, &code, &format!("{VERIFIER}x"))).await;
        assert_eq!(
            (wrong.status, oauth_error(&wrong)),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        let mut missing = exchange(&a, &code, VERIFIER);
        missing.retain(|(k, _)| *k != "code_verifier");
        let missing = token_request(&server, &missing).await;
        assert_eq!(oauth_error(&missing), "invalid_request");

        // Another client's code.
        let code = code_for(&mut owner, &a).await;
        let stolen = token_request(&server, &exchange(&b, &code, VERIFIER)).await;
        assert_eq!(oauth_error(&stolen), "invalid_grant");

        // A code works once; presenting it again revokes what it gave.
        let first = token_request(&server, &exchange(&a, &code, VERIFIER)).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.headers[header::CACHE_CONTROL], "no-store");
        let access = first.json["access_token"].as_str().unwrap().to_owned();
        let read = Call::default();
        assert!(
            server
                .store
                .verify(&access, Scope::Read.into(), &read)
                .await
                .is_ok()
        );
        let again = token_request(&server, &exchange(&a, &code, VERIFIER)).await;
        assert_eq!(oauth_error(&again), "invalid_grant");
        assert!(
            server
                .store
                .verify(&access, Scope::Read.into(), &read)
                .await
                .is_err()
        );

        // A code lives 60 seconds.
        let code = code_for(&mut owner, &a).await;
        server.clock.advance(time::Duration::seconds(61));
        let late = token_request(&server, &exchange(&a, &code, VERIFIER)).await;
        assert_eq!(oauth_error(&late), "invalid_grant");
        assert!(
            late.json["error_description"]
                .as_str()
                .unwrap()
                .contains("expired")
        );

        // Unsupported grants are named as such; malformed bodies are refused cleanly.
        let password =
            token_request(&server, &[("grant_type", "password"), ("client_id", &a)]).await;
        assert_eq!(oauth_error(&password), "unsupported_grant_type");
        let twice = token_request(&server, &[("client_id", &a), ("client_id", &b)]).await;
        assert_eq!(oauth_error(&twice), "invalid_request");
        let names: Vec<String> = (0..33).map(|i| format!("p{i}")).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let many = token_request(&server, &many).await;
        assert_eq!(
            (many.status, oauth_error(&many)),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let big = "x".repeat(17 * 1024);
        let big = token_request(&server, &[("grant_type", &big)]).await;
        assert_eq!(oauth_error(&big), "invalid_request");
        // Basic names one client, the form another: refused, not silently resolved.
        let basic = form_post(
            &server,
            "/oauth/token",
            Some(format!(
                "Basic {}",
                base64ct::Base64::encode_string(format!("{a}:x").as_bytes())
            )),
            &[("grant_type", "client_credentials"), ("client_id", &b)],
        )
        .await;
        assert_eq!(oauth_error(&basic), "invalid_request");
    }

    #[tokio::test]
    async fn the_consent_page_names_who_asks_and_a_denial_goes_back_with_state() {
        let server = crate::server().await;
        let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
        let owner_id = member_id(&server, "owner@example.org").await;
        let a = register(&server, &owner_id, "Client A").await;
        let workspace = server.store.get_workspace(&server.ws).await.unwrap().name;

        // What the member is shown before deciding.
        let page = owner
            .get(&authorize_path(&a, REDIRECT, "read", &challenge(VERIFIER)))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for shown in [
            "Client A",
            a.as_str(),
            "registered by an administrator",
            "Sends you back to</dt><dd><strong>127.0.0.1</strong>",
            &format!("Workspace</dt><dd>{workspace}</dd>"),
            "<code>read</code>",
            "Allow",
            "Deny",
        ] {
            assert!(
                page.text.contains(shown),
                "{shown:?} missing: {}",
                page.text
            );
        }
        assert!(!page.text.contains("<code>write</code>"));
        assert!(!page.text.contains("Unverified application"));

        // Deny: back to the client with access_denied, its state and the issuer, and no code.
        let answer = decide_on(&mut owner, &page, "deny").await;
        let back = query_of(location(&answer));
        assert!(
            location(&answer).starts_with(REDIRECT),
            "{}",
            location(&answer)
        );
        assert_eq!(back["error"], "access_denied");
        assert_eq!(back["state"], "s-1");
        assert!(back.contains_key("iss"), "{back:?}");
        assert!(!back.contains_key("code"));
        let consents = server
            .store
            .audit()
            .events(
                &audit::EventFilter {
                    action: Some(audit::Action::OAuthConsent),
                    ..audit::EventFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(consents.len(), 1);
        assert_eq!(consents[0].outcome, "denied");
        assert_eq!(consents[0].details["client_name"], "Client A");
        assert!(
            server
                .store
                .list_connections(&server.ws, None, None, true)
                .await
                .unwrap()
                .is_empty()
        );

        // The implicit grant does not exist: told by redirect, and no token in the answer.
        let implicit = owner
            .get(
                &authorize_path(&a, REDIRECT, "read", &challenge(VERIFIER))
                    .replace("response_type=code", "response_type=token"),
            )
            .await;
        assert_eq!(implicit.status, StatusCode::SEE_OTHER);
        let back = query_of(location(&implicit));
        assert_eq!(back["error"], "unsupported_response_type");
        assert!(!location(&implicit).contains("access_token"));

        // A code is bound to the redirect URI it was issued for.
        let code = code_for(&mut owner, &a).await;
        let mut elsewhere = exchange(&a, &code, VERIFIER);
        for (k, v) in elsewhere.iter_mut() {
            if *k == "redirect_uri" {
                *v = "http://127.0.0.1/other";
            }
        }
        let refused = token_request(&server, &elsewhere).await;
        assert_eq!(oauth_error(&refused), "invalid_grant", "{}", refused.text);
    }

    #[tokio::test]
    async fn a_service_connector_gets_tokens_with_its_client_credentials_over_http() {
        // An access token's lifetime is the deployment's choice (--oauth-access-token-lifetime).
        let server = crate::server_with(knowmind_db::testing::sqlite().await.unwrap(), |o| {
            token_store::StoreOptions {
                oauth_access_lifetime: time::Duration::minutes(10),
                ..o
            }
        })
        .await;
        let registered = register_as(
            &server,
            &server.owner,
            registration("Nightly export", REDIRECT, true, true),
        )
        .await;
        let id = registered.client.id.clone();
        let secret = registered.client_secret.clone().unwrap();
        let basic = |secret: &str| {
            Some(format!(
                "Basic {}",
                base64ct::Base64::encode_string(format!("{id}:{secret}").as_bytes())
            ))
        };
        let answer = form_post(
            &server,
            "/oauth/token",
            basic(&secret),
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(answer.json["token_type"], "Bearer");
        assert_eq!(answer.json["expires_in"], 600);
        assert!(
            answer.json.get("refresh_token").is_none(),
            "a client acting as itself asks again; it needs no refresh token"
        );
        let access = answer.json["access_token"].as_str().unwrap();
        assert!(access.starts_with("kmo_"));
        let read = Call::default();
        let verified = server
            .store
            .verify(access, Scope::Read.into(), &read)
            .await
            .unwrap();
        assert_eq!(
            verified.principal().oauth_client_id.as_deref(),
            Some(id.as_str())
        );
        assert!(
            server
                .store
                .verify(access, Scope::Write.into(), &read)
                .await
                .is_err(),
            "only what it registered for"
        );
        // A wrong secret: invalid_client, 401, and no token.
        let wrong = form_post(
            &server,
            "/oauth/token",
            basic("kmc_not-the-secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(
            (wrong.status, oauth_error(&wrong)),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert!(wrong.json.get("access_token").is_none());
        // The flag keeps the lifetime within reason.
        let data = tempfile::tempdir().unwrap();
        let (code, _, err) = crate::binary::command(
            data.path(),
            &["serve", "--oauth-access-token-lifetime", "2h"],
            &[],
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("outside 5m..1h"), "{err}");
    }

    async fn register_dynamically(server: &Server) -> Reply {
        server
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri("/oauth/register")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        serde_json::json!({
                            "client_name": "Assistant connector",
                            "redirect_uris": ["http://127.0.0.1/callback"],
                            "token_endpoint_auth_method": "none",
                            "grant_types": ["authorization_code", "refresh_token"],
                            "scope": "read"
                        })
                        .to_string(),
                    ))
                    .unwrap(),
            )
            .await
    }

    #[tokio::test]
    async fn dynamic_registration_is_off_until_a_workspace_allows_it_and_then_unverified() {
        let server = crate::server().await;
        let refused = register_dynamically(&server).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert_eq!(oauth_error(&refused), "access_denied");
        server
            .store
            .set_workspace_policy(
                &server.ws,
                WorkspacePolicy {
                    oauth_registration: true,
                    ..WorkspacePolicy::default()
                },
                &audit::Context::system(),
            )
            .await
            .unwrap();
        let metadata = server
            .send(
                Request::builder()
                    .uri("/.well-known/oauth-authorization-server")
                    .header(header::HOST, "127.0.0.1:9")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            metadata.json["registration_endpoint"],
            "http://127.0.0.1:9/oauth/register"
        );
        let registered = register_dynamically(&server).await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{}",
            registered.text
        );
        assert!(
            registered.json.get("client_secret").is_none(),
            "a public client"
        );
        let id = registered.json["client_id"].as_str().unwrap();
        let client = server.store.get_client(&server.ws, id).await.unwrap();
        assert_eq!(client.registration, knowmind_api::Registration::Dynamic);
        assert!(!client.ever_approved && client.registered_by.is_none());
        // Bad metadata is an RFC 7591 error, not a 500.
        let bad = server
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri("/oauth/register")
                    .body(Body::from(r#"{"redirect_uris": ["javascript:alert(1)"]}"#))
                    .unwrap(),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(oauth_error(&bad), "invalid_redirect_uri");
        let garbage = server
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri("/oauth/register")
                    .body(Body::from("{"))
                    .unwrap(),
            )
            .await;
        assert_eq!(oauth_error(&garbage), "invalid_client_metadata");
        let _: Value = garbage.json;
    }

    async fn form_post(
        server: &Server,
        path: &str,
        auth: Option<String>,
        form: &[(&str, &str)],
    ) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            body.append_pair(k, v);
        }
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        server
            .send(request.body(Body::from(body.finish())).unwrap())
            .await
    }

    #[tokio::test]
    async fn introspection_and_revocation_answer_only_what_the_caller_may_know() {
        let server = crate::server().await;
        let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
        let owner_id = member_id(&server, "owner@example.org").await;
        let a = register(&server, &owner_id, "Client A").await;
        let c = register_as(
            &server,
            &owner_id,
            registration("Resource server", REDIRECT, true, false),
        )
        .await;
        let basic_c = format!(
            "Basic {}",
            base64ct::Base64::encode_string(
                format!("{}:{}", c.client.id, c.client_secret.unwrap()).as_bytes()
            )
        );
        let code = code_for(&mut owner, &a).await;
        let issued = token_request(&server, &exchange(&a, &code, VERIFIER)).await;
        let access = issued.json["access_token"].as_str().unwrap().to_owned();
        let refresh = issued.json["refresh_token"].as_str().unwrap().to_owned();

        // The client's page lists the token, whose security log is the usual token page.
        let token_id = access
            .parse::<token_core::Token>()
            .unwrap()
            .id()
            .to_string();
        let page = owner.get(&format!("/dashboard/oauth/clients/{a}")).await;
        assert!(
            page.text.contains(&format!("kmo_{token_id}")),
            "{}",
            page.text
        );
        let log = owner.get(&format!("/dashboard/tokens/{token_id}")).await;
        assert_eq!(log.status, StatusCode::OK);
        assert!(
            log.text.contains(&format!("/dashboard/oauth/clients/{a}")),
            "{}",
            log.text
        );
        assert!(
            !log.text.contains("/rotate"),
            "a connector's token is not rotated by hand"
        );

        // An introspect token may ask about any token of its workspace.
        let introspect = server.issue(&[Scope::Introspect]).await;
        let bearer = Some(format!("Bearer {introspect}"));
        let answer = form_post(
            &server,
            "/oauth/introspect",
            bearer.clone(),
            &[("token", &access)],
        )
        .await;
        assert_eq!(answer.json["active"], true, "{}", answer.text);
        assert_eq!(answer.json["client_id"], a.as_str());
        assert_eq!(answer.json["scope"], "read");
        assert_eq!(answer.json["sub"], owner_id.as_str());
        let answer = form_post(
            &server,
            "/oauth/introspect",
            bearer.clone(),
            &[("token", &refresh)],
        )
        .await;
        assert_eq!(
            answer.json["token_type"], "refresh_token",
            "{}",
            answer.text
        );
        // Another client may not; nobody unauthenticated may.
        let answer = form_post(
            &server,
            "/oauth/introspect",
            Some(basic_c.clone()),
            &[("token", &access)],
        )
        .await;
        assert_eq!(answer.json, serde_json::json!({"active": false}));
        let answer = form_post(
            &server,
            "/oauth/introspect",
            None,
            &[("token", &access), ("client_id", &a)],
        )
        .await;
        assert_eq!(
            (answer.status, oauth_error(&answer)),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        let garbage = form_post(
            &server,
            "/oauth/introspect",
            bearer.clone(),
            &[("token", "kmo_nonsense")],
        )
        .await;
        assert_eq!(garbage.json, serde_json::json!({"active": false}));
        // An allow-listed API token cannot be judged without its client's address (RFC 7662
        // has no field for it): not active here, whatever address the resource server has.
        let listed = token_store::NewToken {
            owner_id: owner_id.clone(),
            name: "office".into(),
            description: String::new(),
            client: String::new(),
            scopes: Scope::Read.into(),
            expires_at: None,
            allowed_networks: "203.0.113.0/24".parse().unwrap(),
        };
        let (_, listed) = server
            .store
            .create_token(&server.ws, listed, &audit::Context::system())
            .await
            .unwrap();
        let answer = form_post(
            &server,
            "/oauth/introspect",
            bearer.clone(),
            &[("token", listed.expose_secret())],
        )
        .await;
        assert_eq!(
            answer.json,
            serde_json::json!({"active": false}),
            "{}",
            answer.text
        );

        // Another client's revocation changes nothing; the owner client's refresh-token
        // revocation takes the whole connection.
        let ignored = form_post(
            &server,
            "/oauth/revoke",
            Some(basic_c),
            &[("token", &refresh)],
        )
        .await;
        assert_eq!(ignored.status, StatusCode::OK);
        let read = Call::default();
        assert!(
            server
                .store
                .verify(&access, Scope::Read.into(), &read)
                .await
                .is_ok()
        );
        let revoked = form_post(
            &server,
            "/oauth/revoke",
            None,
            &[("token", &refresh), ("client_id", &a)],
        )
        .await;
        assert_eq!(revoked.status, StatusCode::OK);
        assert!(
            server
                .store
                .verify(&access, Scope::Read.into(), &read)
                .await
                .is_err()
        );
        let again = token_request(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &a),
                ("refresh_token", &refresh),
            ],
        )
        .await;
        assert_eq!(oauth_error(&again), "invalid_grant");

        // A 401 from the API points OAuth clients at the protected-resource metadata.
        let refused = server
            .send(
                Request::builder()
                    .uri("/v1/notes")
                    .header(header::HOST, "127.0.0.1:9")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"knowmind\", resource_metadata=\"http://127.0.0.1:9/.well-known/oauth-protected-resource\""
        );
    }

    #[tokio::test]
    async fn a_remembered_consent_answers_at_once_only_for_a_confidential_https_client() {
        let server = crate::server().await;
        let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
        let owner_id = member_id(&server, "owner@example.org").await;
        let https = "https://connector.example/cb";
        let client = register_as(
            &server,
            &owner_id,
            registration("Server-side connector", https, true, false),
        )
        .await
        .client
        .id;
        let path = authorize_path(&client, https, "read", &challenge(VERIFIER));
        let first = owner.get(&path).await;
        assert_eq!(first.status, StatusCode::OK, "asked the first time");
        let csp = first.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("form-action 'self' https://connector.example;"),
            "{csp}"
        );
        let approved = approve_on(&mut owner, &first).await;
        assert!(location(&approved).starts_with("https://connector.example/cb?code="));
        let again = owner.get(&path).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "remembered");
        assert!(query_of(location(&again)).contains_key("code"));
        // A public client with a loopback redirect is asked every time, even after consenting.
        let public = register(&server, &owner_id, "Native app").await;
        let _ = code_for(&mut owner, &public).await;
        let asked = owner
            .get(&authorize_path(
                &public,
                REDIRECT,
                "read",
                &challenge(VERIFIER),
            ))
            .await;
        assert_eq!(
            asked.status,
            StatusCode::OK,
            "a public client is asked every time"
        );
    }
}
