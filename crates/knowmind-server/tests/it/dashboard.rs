//! The dashboard through the router: sign-in and enrolment, sessions, CSRF, roles, the pages'
//! headers, tokens created once, revoked at once, and their security log.

use std::collections::HashMap;

use audit::{Action, Actor, EventFilter};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use time::Duration;
use token_core::Scope;
use token_store::{Call, Role};

use crate::*;

const PASSWORD: &str = "violet submarine orchestra 42";

/// A browser without a rendering engine: keeps cookies, sends same-origin headers, never
/// follows redirects.
pub(crate) struct Browser<'a> {
    server: &'a Server,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(server: &'a Server) -> Self {
        Browser {
            server,
            cookies: HashMap::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "test")
            .header(header::USER_AGENT, "dashboard-test/1");
        if !cookie.is_empty() {
            builder = builder.header(header::COOKIE, cookie);
        }
        builder
    }

    fn absorb(&mut self, reply: &Reply) {
        for value in reply.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap();
            assert!(
                attributes.contains("Secure") && attributes.contains("HttpOnly"),
                "{text}"
            );
            assert!(
                attributes.contains("SameSite=Lax") && attributes.contains("Path=/"),
                "{text}"
            );
            let (name, value) = pair.split_once('=').unwrap();
            assert!(name.starts_with("__Host-"), "{text}");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        let request = self.request(Method::GET, path).body(Body::empty()).unwrap();
        let reply = self.server.send(request).await;
        self.absorb(&reply);
        reply
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.post_from(path, form, "same-origin").await
    }

    async fn post_from(&mut self, path: &str, form: &[(&str, &str)], site: &str) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            body.append_pair(k, v);
        }
        let request = self
            .request(Method::POST, path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .header(header::ORIGIN, "http://test")
            .body(Body::from(body.finish()))
            .unwrap();
        let reply = self.server.send(request).await;
        self.absorb(&reply);
        reply
    }
}

/// The value of the first hidden input named `name` in a page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let pattern = format!(r#"name="{name}" value="([^"]*)""#);
    regex::Regex::new(&pattern)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))[1]
        .to_owned()
}

pub(crate) fn location(reply: &Reply) -> &str {
    reply
        .headers
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
}

/// Enrols someone through a link (issued by the store) and signs them in.
pub(crate) async fn enrol_and_sign_in<'a>(
    server: &'a Server,
    email: &str,
    role: Role,
) -> Browser<'a> {
    enrol_and_sign_in_to(server, email, role, "/dashboard/tokens").await
}

/// The same, checking where signing in leads.
async fn enrol_and_sign_in_to<'a>(
    server: &'a Server,
    email: &str,
    role: Role,
    lands: &str,
) -> Browser<'a> {
    let (_, link) = server
        .store
        .invite(
            &server.ws,
            email,
            role,
            &audit::Context::of(Actor::Operator),
        )
        .await
        .unwrap();
    let mut browser = Browser::new(server);
    let page = browser
        .get(&format!("/dashboard/enrol/{}", link.expose_secret()))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = hidden(&page.text, "csrf");
    let done = browser
        .post(
            "/dashboard/enrol",
            &[
                ("csrf", &csrf),
                ("link", link.expose_secret()),
                ("name", email.split('@').next().unwrap()),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let form = browser.get("/dashboard/sign-in").await;
    let csrf = hidden(&form.text, "csrf");
    let workspace = server.store.get_workspace(&server.ws).await.unwrap().name;
    let signed_in = browser
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
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    assert_eq!(location(&signed_in), "/dashboard/tokens");
    assert!(browser.cookies.contains_key("__Host-knowmind-session"));
    let first = browser.get("/dashboard/tokens").await;
    if lands == "/dashboard/tokens" {
        assert_eq!(first.status, StatusCode::OK);
    } else {
        assert_eq!(location(&first), lands);
    }
    browser
}

#[tokio::test]
async fn every_page_sends_the_security_headers() {
    let server = server().await;
    let mut browser = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    for path in [
        "/dashboard/sign-in",
        "/dashboard/tokens",
        "/dashboard/tokens/new",
        "/dashboard/members",
        "/dashboard/audit",
        "/dashboard/account",
        "/dashboard/no-such-page",
    ] {
        let reply = browser.get(path).await;
        let h = |name: &str| {
            reply
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(h("cache-control"), "no-store", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert!(h("content-type").starts_with("text/html"), "{path}");
        // No inline script or style anywhere: the CSP would block it.
        assert!(
            !reply.text.contains("<script>") && !reply.text.contains("style="),
            "{path}"
        );
    }
    let css = browser.get("/dashboard/assets/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
}

#[tokio::test]
async fn pages_need_a_session_and_sessions_expire() {
    let server = server().await;
    let mut anonymous = Browser::new(&server);
    let reply = anonymous.get("/dashboard/tokens?state=all").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&reply),
        "/dashboard/sign-in?next=%2Fdashboard%2Ftokens%3Fstate%3Dall"
    );
    // A made-up session cookie is no session.
    anonymous
        .cookies
        .insert("__Host-knowmind-session".into(), "ab".repeat(32));
    assert_eq!(
        anonymous.get("/dashboard/account").await.status,
        StatusCode::SEE_OTHER
    );

    let mut browser = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    assert_eq!(
        browser.get("/dashboard/account").await.status,
        StatusCode::OK
    );
    server.clock.advance(Duration::minutes(61));
    let reply = browser.get("/dashboard/account").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "idle for over an hour");
}

#[tokio::test]
async fn wrong_passwords_are_refused_alike_and_audited() {
    let server = server().await;
    enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let workspace = server.store.get_workspace(&server.ws).await.unwrap().name;
    let mut browser = Browser::new(&server);
    let mut texts = Vec::new();
    for email in ["owner@example.org", "nobody@example.org"] {
        let form = browser.get("/dashboard/sign-in").await;
        let csrf = hidden(&form.text, "csrf");
        let reply = browser
            .post(
                "/dashboard/sign-in",
                &[
                    ("csrf", &csrf),
                    ("workspace", &workspace),
                    ("email", email),
                    ("password", "not the password at all"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(!browser.cookies.contains_key("__Host-knowmind-session"));
        assert!(!reply.text.contains("not the password at all"));
        texts.push(reply.text.replace(email, "EMAIL"));
    }
    let error = |t: &str| {
        t.split("role=\"alert\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        error(&texts[0]),
        error(&texts[1]),
        "the same answer for both"
    );
    let denied = server
        .store
        .audit()
        .events(
            &EventFilter {
                action: Some(Action::MemberSignedIn),
                ..EventFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap()
        .items;
    assert!(
        denied
            .iter()
            .any(|e| e.outcome == "denied" && e.details["reason"] == "wrong_password")
    );
    assert!(
        denied
            .iter()
            .any(|e| e.outcome == "denied" && e.details["reason"] == "unknown_account")
    );
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_our_origin() {
    let server = server().await;
    let mut browser = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let form = browser.get("/dashboard/tokens/new").await;
    let csrf = hidden(&form.text, "csrf");
    let form_id = hidden(&form.text, "form_id");
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("name", "laptop"),
            ("scopes", "read"),
            ("expires", "30d"),
        ]
    };
    let before = server.store.audit().checkpoint().await.unwrap().seq;
    for (name, reply) in [
        (
            "no token",
            browser.post("/dashboard/tokens", &fields("")[1..]).await,
        ),
        (
            "wrong token",
            browser
                .post(
                    "/dashboard/tokens",
                    &fields(Box::leak("ab".repeat(32).into_boxed_str())),
                )
                .await,
        ),
        (
            "cross-site",
            browser
                .post_from(
                    "/dashboard/tokens",
                    &[
                        ("csrf", &csrf),
                        ("name", "x"),
                        ("scopes", "read"),
                        ("expires", "30d"),
                        ("form_id", &form_id),
                    ],
                    "cross-site",
                )
                .await,
        ),
    ] {
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{name}: {}",
            reply.text
        );
    }
    // Sign-out is a state change too.
    let reply = browser.post("/dashboard/sign-out", &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        server.store.audit().checkpoint().await.unwrap().seq,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_token_is_shown_once_used_logged_and_revoked_at_once() {
    let server = server().await;
    let mut browser = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let form = browser.get("/dashboard/tokens/new").await;
    assert!(
        form.text.contains(r#"value="read" checked"#),
        "read is preselected"
    );
    let csrf = hidden(&form.text, "csrf");
    let form_id = hidden(&form.text, "form_id");
    let fields = [
        ("csrf", csrf.as_str()),
        ("form_id", form_id.as_str()),
        ("name", "deploy"),
        ("client", "CI runner"),
        ("scopes", "read"),
        ("scopes", "write"),
        ("expires", "30d"),
    ];
    let created = browser.post("/dashboard/tokens", &fields).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let token = regex::Regex::new(r"kmt_[0-9A-Za-z]{54}")
        .unwrap()
        .find(&created.text)
        .unwrap()
        .as_str()
        .to_owned();
    assert!(created.text.contains("will not be shown again"));
    // Submitting the same form again (reload, back) makes no second token and shows nothing.
    let again = browser.post("/dashboard/tokens", &fields).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(!again.text.contains("kmt_"));
    let listed = browser.get("/dashboard/tokens").await;
    assert_eq!(
        listed.text.matches(">deploy</a>").count(),
        1,
        "one token made"
    );
    let id = &token[4..20];
    // A call with it lands in its security log, from where it came.
    let mut call = Call {
        client_ip: Some("198.51.100.23".parse().unwrap()),
        method: "GET".into(),
        route: "/v1/notes".into(),
        user_agent: Some("curl/8.0".into()),
        ..Call::default()
    };
    server
        .store
        .verify(&token, Scope::Read.into(), &call)
        .await
        .unwrap()
        .finish(200);
    server.store.usage_writer().flush().await.unwrap();
    let page = browser.get(&format!("/dashboard/tokens/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains("198.51.100.23") && page.text.contains("GET /v1/notes"),
        "{}",
        page.text
    );
    assert!(page.text.contains("curl/8.0"));
    assert!(page.text.contains("<svg"), "the calls-per-hour chart");
    assert!(page.text.contains("token.created"), "the lifecycle");
    assert!(
        !page.text.contains(&token[20..52]),
        "the secret is never shown again"
    );
    // Revoke it from the dashboard: the next call is refused.
    let confirm = browser.get(&format!("/dashboard/tokens/{id}/revoke")).await;
    assert!(
        confirm.text.contains("deploy"),
        "the confirmation names the token"
    );
    let csrf = hidden(&confirm.text, "csrf");
    let revoked = browser
        .post(
            &format!("/dashboard/tokens/{id}/revoke"),
            &[("csrf", &csrf), ("reason", "device lost")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    call.route = "/v1/notes/1".into();
    assert!(
        server
            .store
            .verify(&token, Scope::Read.into(), &call)
            .await
            .is_err()
    );
    let events = server
        .store
        .audit()
        .events(
            &EventFilter {
                action: Some(Action::TokenRevoked),
                ..EventFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(
        events[0].actor_kind, "member",
        "the revocation is the member's"
    );
    assert_eq!(events[0].details["reason"], "device lost");
    assert_eq!(events[0].client_ip.as_deref(), Some("203.0.113.5"));
}

#[tokio::test]
async fn members_see_only_their_own_tokens_and_no_admin_pages() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    // The fixture's admin token belongs to the owner.
    let listed = owner.get("/dashboard/tokens").await;
    assert!(listed.text.contains("fixture-admin"), "{}", listed.text);
    let theirs = member.get("/dashboard/tokens").await;
    assert!(!theirs.text.contains("fixture-admin"));
    let id = regex::Regex::new(r"/dashboard/tokens/([0-9A-Za-z]{16})")
        .unwrap()
        .captures(&listed.text)
        .unwrap()[1]
        .to_owned();
    assert_eq!(
        member.get(&format!("/dashboard/tokens/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let form = member.get(&format!("/dashboard/tokens/{id}/revoke")).await;
    assert_eq!(form.status, StatusCode::NOT_FOUND);
    assert_eq!(
        member.get("/dashboard/members").await.status,
        StatusCode::FORBIDDEN
    );
    // No admin scope for a plain member, even when the form is forged.
    let new = member.get("/dashboard/tokens/new").await;
    assert!(new.text.contains(r#"value="admin" disabled"#));
    let csrf = hidden(&new.text, "csrf");
    let form_id = hidden(&new.text, "form_id");
    let forged = member
        .post(
            "/dashboard/tokens",
            &[
                ("csrf", &csrf),
                ("form_id", &form_id),
                ("name", "x"),
                ("scopes", "admin"),
                ("expires", "7d"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!forged.text.contains("kmt_"));
    // The owner invites and removes; the removed member is signed out.
    let page = owner.get("/dashboard/members").await;
    let csrf = hidden(&page.text, "csrf");
    let mia = server
        .store
        .list_members(&server.ws)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.email == "mia@example.org")
        .unwrap();
    let removed = owner
        .post(
            &format!("/dashboard/members/{}/remove", mia.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    assert_eq!(
        member.get("/dashboard/tokens").await.status,
        StatusCode::SEE_OTHER
    );
    let invited = owner
        .post(
            "/dashboard/members/invite",
            &[
                ("csrf", &csrf),
                ("email", "new@example.org"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.text);
    let link = hidden_input_value(&invited.text);
    // A host other than localhost is served over HTTPS (the cookies need it).
    assert!(link.starts_with("https://test/dashboard/enrol/"), "{link}");
}

fn hidden_input_value(html: &str) -> String {
    regex::Regex::new(r#"id="secret" class="secret" readonly value="([^"]+)""#)
        .unwrap()
        .captures(html)
        .unwrap()[1]
        .to_owned()
}

#[tokio::test]
async fn enrolment_links_work_once_and_refuse_weak_passwords() {
    let server = server().await;
    let (_, link) = server
        .store
        .invite(
            &server.ws,
            "weak@example.org",
            Role::Member,
            &audit::Context::of(Actor::Operator),
        )
        .await
        .unwrap();
    let mut browser = Browser::new(&server);
    let page = browser
        .get(&format!("/dashboard/enrol/{}", link.expose_secret()))
        .await;
    let csrf = hidden(&page.text, "csrf");
    let weak = browser
        .post(
            "/dashboard/enrol",
            &[
                ("csrf", &csrf),
                ("link", link.expose_secret()),
                ("name", "Weak"),
                ("password", "password1234"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        weak.text.contains("too easy to guess") || weak.text.contains("password"),
        "{}",
        weak.text
    );
    assert!(
        !weak.text.contains("password1234"),
        "the password is not echoed"
    );
    let ok = browser
        .post(
            "/dashboard/enrol",
            &[
                ("csrf", &csrf),
                ("link", link.expose_secret()),
                ("name", "Weak"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let used = browser
        .get(&format!("/dashboard/enrol/{}", link.expose_secret()))
        .await;
    assert_eq!(used.status, StatusCode::NOT_FOUND);
    for garbage in ["x", "../../etc/passwd", &"g".repeat(64)] {
        let reply = browser.get(&format!("/dashboard/enrol/{garbage}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{garbage}");
    }
}

#[tokio::test]
async fn the_audit_log_filters_verifies_and_exports_for_admins_only() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let page = owner.get("/dashboard/audit").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("check out"),
        "the chain's verdict: {}",
        page.text
    );
    assert!(page.text.contains("member.signed_in") && page.text.contains("token.created"));
    let filtered = owner.get("/dashboard/audit?action=member.enrolled").await;
    assert!(filtered.text.contains("member.enrolled"));
    assert!(!filtered.text.contains("<code>token.created</code>"));
    let ranged = owner
        .get("/dashboard/audit?since=2000-01-01T00%3A00&until=2000-01-02T00%3A00")
        .await;
    assert!(ranged.text.contains("No events match."), "{}", ranged.text);
    let bad = owner.get("/dashboard/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("since must be an RFC 3339 time"));
    let export = owner
        .get("/dashboard/audit/export?action=member.enrolled")
        .await;
    assert_eq!(export.status, StatusCode::OK);
    let lines: Vec<serde_json::Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|e| e["action"] == "member.enrolled"));
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    assert_eq!(
        member.get("/dashboard/audit").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        member.get("/dashboard/audit/export").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_authenticator_app_is_set_up_and_then_asked_for_and_can_be_required() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let account = owner.get("/dashboard/account").await;
    let csrf = hidden(&account.text, "csrf");
    let setup = owner
        .post(
            "/dashboard/account/totp",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    assert!(setup.text.contains("<svg"), "a QR code");
    assert_eq!(setup.headers[header::CACHE_CONTROL], "no-store");
    let key = regex::Regex::new(r"Or type this key: <code>([A-Z2-7]+)</code>")
        .unwrap()
        .captures(&setup.text)
        .unwrap()[1]
        .to_owned();
    let code = |at| token_store::testing::app_code(&key, at).unwrap();
    let wrong = owner
        .post(
            "/dashboard/account/totp/confirm",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let on = owner
        .post(
            "/dashboard/account/totp/confirm",
            &[("csrf", &csrf), ("code", &code(server.store.now()))],
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    let recovery = regex::Regex::new(
        r"<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>",
    )
    .unwrap()
    .captures_iter(&on.text)
    .map(|c| c[1].to_owned())
    .collect::<Vec<_>>();
    assert_eq!(recovery.len(), 10);

    // Signing in now takes a code after the password.
    let workspace = server.store.get_workspace(&server.ws).await.unwrap().name;
    let mut again = Browser::new(&server);
    let form = again.get("/dashboard/sign-in").await;
    let csrf = hidden(&form.text, "csrf");
    let step1 = again
        .post(
            "/dashboard/sign-in",
            &[
                ("csrf", &csrf),
                ("workspace", &workspace),
                ("email", "owner@example.org"),
                ("password", PASSWORD),
                ("next", "/dashboard/audit"),
            ],
        )
        .await;
    assert_eq!(step1.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&step1),
        "/dashboard/sign-in/code?next=%2Fdashboard%2Faudit"
    );
    let not_yet = again.get("/dashboard/tokens").await;
    assert_eq!(location(&not_yet), "/dashboard/sign-in/code", "not yet");
    let form = again
        .get("/dashboard/sign-in/code?next=%2Fdashboard%2Faudit")
        .await;
    let csrf = hidden(&form.text, "csrf");
    let bad = again
        .post(
            "/dashboard/sign-in/code",
            &[
                ("csrf", &csrf),
                ("code", "000000"),
                ("next", "/dashboard/audit"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    server.clock.advance(Duration::seconds(30));
    let good = again
        .post(
            "/dashboard/sign-in/code",
            &[
                ("csrf", &csrf),
                ("code", &recovery[0]),
                ("next", "/dashboard/audit"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.text);
    assert_eq!(location(&good), "/dashboard/audit");
    assert_eq!(again.get("/dashboard/tokens").await.status, StatusCode::OK);

    // The owner requires a second factor: a member without one reaches only their account.
    let page = owner.get("/dashboard/members").await;
    let csrf = hidden(&page.text, "csrf");
    let saved = owner
        .post(
            "/dashboard/members/second-factor",
            &[("csrf", &csrf), ("require", "on")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let mut member = enrol_and_sign_in_to(
        &server,
        "mia@example.org",
        Role::Member,
        "/dashboard/account?done=required#second-factor",
    )
    .await;
    let blocked = member.get("/dashboard/tokens").await;
    assert_eq!(blocked.status, StatusCode::SEE_OTHER);
    assert!(location(&blocked).starts_with("/dashboard/account"));
    assert_eq!(
        member.get("/dashboard/account").await.status,
        StatusCode::OK
    );
}

/// Every form of the dashboard, as (path, fields) with a placeholder for ids.
fn every_form(
    token: &str,
    member: &str,
    session: &str,
) -> Vec<(String, Vec<(&'static str, String)>)> {
    vec![
        ("/dashboard/sign-out".into(), vec![]),
        (
            "/dashboard/tokens".into(),
            vec![("name", "x".into()), ("scopes", "read".into())],
        ),
        (
            format!("/dashboard/tokens/{token}/revoke"),
            vec![("reason", "x".into())],
        ),
        (
            format!("/dashboard/tokens/{token}/rotate"),
            vec![("grace", "0".into())],
        ),
        (
            "/dashboard/members/invite".into(),
            vec![("email", "z@example.org".into()), ("role", "member".into())],
        ),
        (
            format!("/dashboard/members/{member}/role"),
            vec![("role", "admin".into())],
        ),
        (format!("/dashboard/members/{member}/remove"), vec![]),
        (
            "/dashboard/members/second-factor".into(),
            vec![("require", "on".into())],
        ),
        (
            "/dashboard/account/password".into(),
            vec![
                ("current", PASSWORD.into()),
                ("new", "another fine password 9".into()),
            ],
        ),
        (
            "/dashboard/account/totp".into(),
            vec![("password", PASSWORD.into())],
        ),
        (
            "/dashboard/account/totp/confirm".into(),
            vec![("code", "123456".into())],
        ),
        (
            "/dashboard/account/totp/remove".into(),
            vec![("password", PASSWORD.into())],
        ),
        (format!("/dashboard/account/sessions/{session}/end"), vec![]),
        (
            "/dashboard/oauth/clients".into(),
            vec![
                ("name", "x".into()),
                ("redirect_uris", "https://x.example/cb".into()),
                ("read", "on".into()),
            ],
        ),
        ("/dashboard/oauth/clients/cli_x/remove".into(), vec![]),
        (
            "/dashboard/settings/policy".into(),
            vec![
                ("rotation_interval", "30d".into()),
                ("member_scopes", "read".into()),
            ],
        ),
        ("/dashboard/settings/policy/apply".into(), vec![]),
        (
            "/dashboard/settings/webhooks".into(),
            vec![("url", "https://hooks.example.org/".into())],
        ),
        ("/dashboard/settings/webhooks/whk_x/remove".into(), vec![]),
        (
            "/dashboard/incidents".into(),
            vec![("token", token.to_owned()), ("replace", "on".into())],
        ),
        ("/dashboard/connections/con_x/revoke".into(), vec![]),
        (
            "/dashboard/oauth/authorize".into(),
            vec![
                ("client_id", "cli_x".into()),
                ("decision", "approve".into()),
            ],
        ),
    ]
}

#[tokio::test]
async fn every_form_refuses_a_missing_csrf_token_and_admin_forms_refuse_members() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    let members = server.store.list_members(&server.ws).await.unwrap();
    let mia = members
        .iter()
        .find(|m| m.email == "mia@example.org")
        .unwrap();
    let owner_id = members
        .iter()
        .find(|m| m.email == "owner@example.org")
        .unwrap();
    let listed = owner.get("/dashboard/tokens").await;
    let token = regex::Regex::new(r"/dashboard/tokens/([0-9A-Za-z]{16})")
        .unwrap()
        .captures(&listed.text)
        .unwrap()[1]
        .to_owned();
    let session = server.store.list_sessions(&owner_id.id).await.unwrap()[0]
        .id
        .clone();
    let before = server.store.audit().checkpoint().await.unwrap().seq;
    for (path, fields) in every_form(&token, &mia.id, &session) {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = owner.post(&path, &fields).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path} without a CSRF token"
        );
    }
    assert_eq!(
        server.store.audit().checkpoint().await.unwrap().seq,
        before,
        "nothing changed"
    );
    // A member, with a valid token, on the owner's token, members and the workspace setting.
    let page = member.get("/dashboard/account").await;
    let csrf = hidden(&page.text, "csrf");
    for (path, fields) in every_form(&token, &owner_id.id, "ses_none")
        .into_iter()
        .skip(2)
        .take(6)
    {
        let mut fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fields.push(("csrf", &csrf));
        let reply = member.post(&path, &fields).await;
        assert!(
            reply.status == StatusCode::FORBIDDEN || reply.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.status
        );
    }
    assert_eq!(
        server.store.audit().checkpoint().await.unwrap().seq,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_stale_session_cookie_does_not_block_signing_in_and_admins_cannot_rotate_others_tokens() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    // The session ends (idle); the next redirect drops its cookie.
    server.clock.advance(Duration::minutes(61));
    let stale = owner.cookies.clone();
    let back = owner.get("/dashboard/tokens").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert!(
        !owner.cookies.contains_key("__Host-knowmind-session"),
        "the dead cookie is dropped"
    );
    owner.cookies = stale; // a browser that kept it anyway
    let form = owner.get("/dashboard/sign-in").await;
    let csrf = hidden(&form.text, "csrf");
    let workspace = server.store.get_workspace(&server.ws).await.unwrap().name;
    let signed_in = owner
        .post(
            "/dashboard/sign-in",
            &[
                ("csrf", &csrf),
                ("workspace", &workspace),
                ("email", "owner@example.org"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
    // An admin revokes a member's token but cannot rotate it (that would hand them its secret).
    let mut admin = enrol_and_sign_in(&server, "adam@example.org", Role::Admin).await;
    let mut mia = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    let form = mia.get("/dashboard/tokens/new").await;
    let created = mia
        .post(
            "/dashboard/tokens",
            &[
                ("csrf", &hidden(&form.text, "csrf")),
                ("form_id", &hidden(&form.text, "form_id")),
                ("name", "mine"),
                ("scopes", "read"),
                ("expires", "7d"),
            ],
        )
        .await;
    let id = regex::Regex::new(r#"/dashboard/tokens/([0-9A-Za-z]{16})""#)
        .unwrap()
        .captures(&created.text)
        .unwrap()[1]
        .to_owned();
    let page = admin.get(&format!("/dashboard/tokens/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.text.contains("/rotate\""),
        "no rotate button on another's token"
    );
    assert_eq!(
        admin
            .get(&format!("/dashboard/tokens/{id}/rotate"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let csrf = hidden(&page.text, "csrf");
    let rotate = admin
        .post(
            &format!("/dashboard/tokens/{id}/rotate"),
            &[
                ("csrf", &csrf),
                ("grace", "0"),
                ("form_id", &"ab".repeat(32)),
            ],
        )
        .await;
    assert_eq!(rotate.status, StatusCode::FORBIDDEN);
    assert!(!rotate.text.contains("kmt_"));
}

#[tokio::test]
async fn oauth_clients_are_registered_seen_and_removed_and_members_see_their_connections() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    let mia = server
        .store
        .list_members(&server.ws)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.email == "mia@example.org")
        .unwrap();

    // Members cannot reach the clients page.
    assert_eq!(
        member.get("/dashboard/oauth/clients").await.status,
        StatusCode::FORBIDDEN
    );

    // The owner registers a confidential connector: its secret is shown once.
    let page = owner.get("/dashboard/oauth/clients").await;
    let csrf = hidden(&page.text, "csrf");
    let done = owner
        .post(
            "/dashboard/oauth/clients",
            &[
                ("csrf", &csrf),
                ("name", "Calendar <sync>"),
                ("redirect_uris", "https://calendar.example/cb\n"),
                ("read", "on"),
                ("confidential", "on"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
    let secret = regex::Regex::new(r#"value="(kmc_[0-9A-Za-z]{54})""#)
        .unwrap()
        .captures(&done.text)
        .unwrap()[1]
        .to_owned();
    assert!(
        done.text.contains("Calendar &#60;sync&#62;") && !done.text.contains("<sync>"),
        "names are escaped: {}",
        done.text
    );
    let listed = owner.get("/dashboard/oauth/clients").await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    assert!(listed.text.contains("never approved"), "{}", listed.text);
    let client = server
        .store
        .list_clients(&server.ws, false)
        .await
        .unwrap()
        .remove(0);

    // A bad redirect URI is refused with the reason, on the page.
    let bad = owner
        .post(
            "/dashboard/oauth/clients",
            &[
                ("csrf", &csrf),
                ("name", "x"),
                ("redirect_uris", "http://evil.example/cb"),
                ("read", "on"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("loopback"), "{}", bad.text);

    // Mia connects it; she sees the connection and the owner sees her on the client's page.
    let request = token_store::AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: "https://calendar.example/cb".into(),
        scopes: Scope::Read.into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
    };
    server
        .store
        .answer_authorization(
            &mia,
            &request,
            token_store::Consent::Approve,
            &audit::Context::system(),
        )
        .await
        .unwrap();
    let mine = member.get("/dashboard/connections").await;
    assert!(
        mine.text.contains("Calendar &#60;sync&#62;"),
        "{}",
        mine.text
    );
    let shown = owner
        .get(&format!("/dashboard/oauth/clients/{}", client.id))
        .await;
    assert!(shown.text.contains("mia"), "{}", shown.text);
    assert!(!shown.text.contains("never approved"));

    // Mia revokes her own connection; she cannot revoke someone else's.
    let connection = server
        .store
        .list_connections(&server.ws, Some(&mia.id), None, false)
        .await
        .unwrap()
        .remove(0);
    let csrf_m = hidden(&mine.text, "csrf");
    let other = server
        .store
        .answer_authorization(
            &server
                .store
                .get_member(&server.ws, &server.owner)
                .await
                .unwrap(),
            &request,
            token_store::Consent::Approve,
            &audit::Context::system(),
        )
        .await;
    assert!(other.is_ok());
    let owners = server
        .store
        .list_connections(&server.ws, Some(&server.owner), None, false)
        .await
        .unwrap()
        .remove(0);
    let refused = member
        .post(
            &format!("/dashboard/connections/{}/revoke", owners.id),
            &[("csrf", &csrf_m)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let revoked = member
        .post(
            &format!("/dashboard/connections/{}/revoke", connection.id),
            &[("csrf", &csrf_m)],
        )
        .await;
    assert_eq!(location(&revoked), "/dashboard/connections?done=revoked");
    assert!(
        !member
            .get("/dashboard/connections")
            .await
            .text
            .contains("Calendar")
    );

    // The owner removes the client: it shows as removed, every connection is gone.
    let removed = owner
        .post(
            &format!("/dashboard/oauth/clients/{}/remove", client.id),
            &[("csrf", &csrf), ("reason", "unknown connector")],
        )
        .await;
    assert_eq!(location(&removed), "/dashboard/oauth/clients?done=removed");
    let after = server
        .store
        .get_client(&server.ws, &client.id)
        .await
        .unwrap();
    assert!(after.removed_at.is_some());
    assert_eq!(after.connected_members, 0);
    let events = server
        .store
        .audit()
        .events(
            &EventFilter {
                action: Some(Action::OAuthClientRemoved),
                ..Default::default()
            },
            None,
            5,
        )
        .await
        .unwrap();
    assert_eq!(events.items[0].details["reason"], "unknown connector");
}

#[tokio::test]
async fn settings_set_the_policy_show_and_apply_it_and_manage_webhooks() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    assert_eq!(
        member.get("/dashboard/settings").await.status,
        StatusCode::FORBIDDEN
    );
    let page = owner.get("/dashboard/settings").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(r#"value="90d""#), "{}", page.text);
    let csrf = hidden(&page.text, "csrf");
    // The regulated preset: the never-expiring tokens made at enrolment now break it.
    let saved = owner
        .post(
            "/dashboard/settings/policy",
            &[
                ("csrf", &csrf),
                ("preset", "regulated"),
                ("rotation_interval", "90d"),
                ("member_scopes", "read, write"),
                ("reuse_detection", "alert"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let policy = server.store.workspace_policy(&server.ws).await.unwrap();
    assert_eq!(
        (
            policy.rotation_interval.as_str(),
            policy.max_lifetime.as_deref(),
            policy.require_expiry
        ),
        ("30d", Some("90d"), true)
    );
    // The dashboard's creation form is held to it like every other path.
    let form = owner.get("/dashboard/tokens/new").await;
    let refused = owner
        .post(
            "/dashboard/tokens",
            &[
                ("csrf", &hidden(&form.text, "csrf")),
                ("form_id", &hidden(&form.text, "form_id")),
                ("name", "forever"),
                ("scopes", "read"),
                ("expires", "never"),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("workspace policy: max_lifetime"),
        "{}",
        refused.text
    );
    let shown = owner.get("/dashboard/settings").await;
    assert!(shown.text.contains("max_lifetime"), "{}", shown.text);
    assert!(shown.text.contains("Apply the policy"), "{}", shown.text);
    let bad = owner
        .post(
            "/dashboard/settings/policy",
            &[
                ("csrf", &csrf),
                ("rotation_interval", "soon"),
                ("member_scopes", "read"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("rotation_interval"), "{}", bad.text);
    let listed = hidden(&shown.text, "tokens");
    assert!(!listed.is_empty());
    let applied = owner
        .post(
            "/dashboard/settings/policy/apply",
            &[("csrf", &csrf), ("tokens", &listed)],
        )
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER);
    assert!(
        server
            .store
            .check_policy(&server.ws)
            .await
            .unwrap()
            .findings
            .is_empty(),
        "applied"
    );
    let after = owner.get("/dashboard/settings").await;
    assert!(
        after.text.contains("Every live token complies"),
        "{}",
        after.text
    );

    // A webhook endpoint: its secret is on the answering page only.
    let added = owner
        .post(
            "/dashboard/settings/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://hooks.example.org/knowmind"),
                ("events", "lifecycle"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let secret = regex::Regex::new(r#"value="(whsec_[0-9a-f]{64})""#)
        .unwrap()
        .captures(&added.text)
        .unwrap()[1]
        .to_owned();
    let listed = owner.get("/dashboard/settings").await;
    assert!(!listed.text.contains(&secret), "shown once");
    let hook = server
        .store
        .list_webhooks(&server.ws)
        .await
        .unwrap()
        .remove(0);
    assert!(listed.text.contains(&hook.id));
    let log = owner
        .get(&format!("/dashboard/settings/webhooks/{}", hook.id))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let insecure = owner
        .post(
            "/dashboard/settings/webhooks",
            &[("csrf", &csrf), ("url", "http://hooks.example.org/")],
        )
        .await;
    assert_eq!(insecure.status, StatusCode::UNPROCESSABLE_ENTITY);
    let removed = owner
        .post(
            &format!("/dashboard/settings/webhooks/{}/remove", hook.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(
        server
            .store
            .list_webhooks(&server.ws)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_tokens_page_shows_what_was_unusual() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let (record, _token) = server
        .fixture
        .issue("backup-2019", &[Scope::Read])
        .await
        .unwrap();
    let page = owner.get(&format!("/dashboard/tokens/{}", record.id)).await;
    assert!(page.text.contains("None raised."), "{}", page.text);
    // A canary, planted and used.
    let (canary, bait) = server
        .store
        .create_canary_token(
            &server.ws,
            token_store::NewToken {
                owner_id: record.owner_id.clone(),
                name: "old-backup".into(),
                description: String::new(),
                client: "backup".into(),
                scopes: Scope::Read.into(),
                expires_at: None,
                allowed_networks: Default::default(),
            },
            &audit::Context::system(),
        )
        .await
        .unwrap();
    let call = Call {
        client_ip: Some("203.0.113.9".parse().unwrap()),
        ..Call::default()
    };
    assert!(
        server
            .store
            .verify(bait.expose_secret(), Scope::Read.into(), &call)
            .await
            .is_err()
    );
    let page = owner.get(&format!("/dashboard/tokens/{}", canary.id)).await;
    assert!(
        page.text
            .contains(r#"<span class="severity high">high</span>"#)
            && page
                .text
                .contains("used, and it is a canary (planted bait)")
            && page.text.contains("<code>203.0.113.0/24</code>"),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn an_incident_is_opened_from_a_tokens_page_and_its_record_downloaded() {
    let server = server().await;
    let mut owner = enrol_and_sign_in(&server, "owner@example.org", Role::Owner).await;
    let mut member = enrol_and_sign_in(&server, "mia@example.org", Role::Member).await;
    let (record, token) = server
        .fixture
        .issue("ci-deploy-v2", &[Scope::Read])
        .await
        .unwrap();
    let page = owner.get(&format!("/dashboard/tokens/{}", record.id)).await;
    assert!(
        page.text
            .contains(&format!("/dashboard/incidents/new?token={}", record.id)),
        "admins see the button"
    );
    assert_eq!(
        member.get("/dashboard/incidents").await.status,
        StatusCode::FORBIDDEN
    );
    let confirm = owner
        .get(&format!("/dashboard/incidents/new?token={}", record.id))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.text);
    let csrf = hidden(&confirm.text, "csrf");
    let opened = owner
        .post(
            "/dashboard/incidents",
            &[
                ("csrf", &csrf),
                ("token", &record.id.to_string()),
                ("summary", "seen in a <pasted> log"),
                ("replace", "on"),
            ],
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    assert!(opened.text.contains("GDPR Art. 33 deadline"));
    assert!(
        opened.text.contains("&#60;pasted&#62;"),
        "escaped: {}",
        opened.text
    );
    let replacement = regex::Regex::new(r#"value="(kmt_[0-9A-Za-z]{54})""#)
        .unwrap()
        .captures(&opened.text)
        .unwrap()[1]
        .to_owned();
    assert!(
        server
            .store
            .verify(token.expose_secret(), Scope::Read.into(), &Call::default())
            .await
            .is_err(),
        "revoked at once"
    );
    assert!(
        server
            .store
            .verify(&replacement, Scope::Read.into(), &Call::default())
            .await
            .is_ok()
    );
    let incident = server
        .store
        .list_incidents(&server.ws)
        .await
        .unwrap()
        .remove(0);
    let listed = owner.get("/dashboard/incidents").await;
    assert!(listed.text.contains(&incident.id), "{}", listed.text);
    let shown = owner
        .get(&format!("/dashboard/incidents/{}", incident.id))
        .await;
    assert!(!shown.text.contains(&replacement), "shown once");
    let md = owner
        .get(&format!("/dashboard/incidents/{}/report.md", incident.id))
        .await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(md.text.starts_with("# Security incident"), "{}", md.text);

    // The record is amended from the page: only what changed becomes an entry.
    let path = format!("/dashboard/incidents/{}/record", incident.id);
    let csrf = hidden(&shown.text, "csrf");
    let amended = owner
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("status", "assessed"),
                ("nature", "a read token pasted in a public log"),
                ("dpo_contact", ""),
                ("note", "checked the calls"),
            ],
        )
        .await;
    assert_eq!(amended.status, StatusCode::SEE_OTHER, "{}", amended.text);
    let shown = owner
        .get(&format!(
            "/dashboard/incidents/{}?done=recorded",
            incident.id
        ))
        .await;
    assert!(shown.text.contains("Recorded."), "{}", shown.text);
    assert!(
        shown
            .text
            .contains(">a read token pasted in a public log</textarea>")
    );
    assert!(
        shown
            .text
            .contains("status → assessed; checked the calls; 1 fact(s) recorded")
    );
    let same = owner
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("status", ""),
                ("nature", "a read token pasted in a public log"),
            ],
        )
        .await;
    assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(same.text.contains("Nothing changed"), "{}", same.text);
    let bogus = owner
        .post(&path, &[("csrf", &csrf), ("status", "forgotten")])
        .await;
    assert_eq!(bogus.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bogus.text.contains("Choose a status"), "{}", bogus.text);
    assert_eq!(
        member
            .post(&path, &[("csrf", &csrf), ("note", "x")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let closed = owner
        .post(&path, &[("csrf", &csrf), ("status", "closed")])
        .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    let report = server
        .store
        .incident_report(&server.ws, &incident.id)
        .await
        .unwrap();
    assert_eq!(report.incident.status, knowmind_api::IncidentStatus::Closed);
    assert_eq!(report.entries.len(), 2, "the refused ones recorded nothing");
    let shown = owner
        .get(&format!("/dashboard/incidents/{}", incident.id))
        .await;
    assert!(shown.text.contains("its record is final") && !shown.text.contains(&path));
}
