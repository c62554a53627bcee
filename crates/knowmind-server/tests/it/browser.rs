//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against the real binary. The owner enrols through the first start's link and signs in; a
//! token is created and seen once; a call made with it shows in its security log; revoking it
//! refuses the next call; a member cannot see the owner's tokens; everyone signs out. Each main
//! page is saved as a screenshot, at desktop width and at a phone's 375 pixels.
//!
//! `KNOWMIND_CHROMEDRIVER` names the chromedriver executable (CI installs Debian's `chromium`
//! and `chromium-driver`); without it the test says it skipped, unless
//! `KNOWMIND_REQUIRE_BROWSER=1`. Screenshots go to `KNOWMIND_SCREENSHOTS` (the committed ones
//! are in `docs/dashboard/`), or else under the target directory.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::binary::start;
use crate::*;

const PASSWORD: &str = "violet submarine orchestra 42";
const MEMBER_PASSWORD: &str = "quiet lantern harbour 77";

#[allow(clippy::print_stderr)] // a skipped run says so in the test output
fn chromedriver() -> Option<PathBuf> {
    match std::env::var_os("KNOWMIND_CHROMEDRIVER") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var("KNOWMIND_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "KNOWMIND_REQUIRE_BROWSER=1 but KNOWMIND_CHROMEDRIVER is not set"
            );
            eprintln!("browser: skipped (set KNOWMIND_CHROMEDRIVER to a chromedriver executable)");
            None
        }
    }
}

/// chromedriver on a port of its own choosing; returns the process and its URL once it answers.
async fn start_driver(path: &PathBuf) -> (tokio::process::Child, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let child = tokio::process::Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..400 {
        // chromedriver answers only requests addressed to localhost, so readiness is the port.
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(driver)
        .await
        .unwrap()
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("KNOWMIND_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves the page at desktop width and at 375 pixels, and checks that the phone layout does
/// not scroll sideways (tables scroll inside their own box).
async fn snap(client: &Client, name: &str) {
    let dir = screenshots();
    std::fs::write(
        dir.join(format!("{name}.png")),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.set_window_size(375, 812).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    std::fs::write(
        dir.join(format!("{name}-phone.png")),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.set_window_size(1280, 900).await.unwrap();
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "{name}: the page is wider than a phone: {overflow}"
    );
}

/// Blanks the secret shown once before a screenshot: the committed pictures hold no token or
/// link that looks real.
async fn mask_secret(client: &Client) {
    client
        .execute(
            "const f = document.getElementById('secret'); \
             f.value = f.value.slice(0, 20) + '•'.repeat(12) + ' (masked in this picture)';",
            vec![],
        )
        .await
        .unwrap();
}

/// Blanks the authenticator key and QR code before a screenshot.
async fn mask_key(client: &Client) {
    client
        .execute(
            "document.querySelector('figure.qr figcaption code').textContent = '(masked in this picture)'; \
             for (const r of document.querySelectorAll('figure.qr svg path')) r.setAttribute('d', '');",
            vec![],
        )
        .await
        .unwrap();
}

/// The secret a page shows once (a token, an enrolment link).
async fn secret_shown(client: &Client) -> String {
    let field = client.find(Locator::Css("#secret")).await.unwrap();
    field.prop("value").await.unwrap().unwrap()
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks a submit button and waits until the next page has replaced this one.
async fn submit(client: &Client, css: &str) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..400 {
        if old.tag_name().await.is_err() {
            // The old document is gone; wait for the new one's content.
            client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("main"))
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("submitting {css} led nowhere");
}

async fn text(client: &Client) -> String {
    client.source().await.unwrap()
}

async fn sign_in(client: &Client, base: &str, email: &str, password: &str) {
    client
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
    fill(client, "#email", email).await;
    fill(client, "#password", password).await;
    submit(client, "form.narrow button[type=submit]").await;
    let page = text(client).await;
    assert!(page.contains("<h1>Tokens"), "signed in: {page}");
}

async fn sign_out(client: &Client) {
    submit(client, "form.signout button").await;
    assert!(text(client).await.contains("<h1>Sign in</h1>"));
}

/// Follows an enrolment link and sets name and password.
async fn enrol(client: &Client, link: &str, name: &str, password: &str) {
    client.goto(link).await.unwrap();
    fill(client, "#name", name).await;
    fill(client, "#password", password).await;
    submit(client, "form.narrow button[type=submit]").await;
    assert!(text(client).await.contains("Your password is set"));
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]).await;
    let base = format!("http://{}", server.addr);
    let (_driver, driver) = start_driver(&driver_path).await;
    let client = browser(&driver).await;

    // The owner's first way in: the link the first start wrote beside the bootstrap token.
    let link = std::fs::read_to_string(server.data.join("owner-enrolment-link")).unwrap();
    client.goto(link.trim()).await.unwrap();
    snap(&client, "enrol").await;
    enrol(&client, link.trim(), "Ada Owner", PASSWORD).await;
    client.goto(link.trim()).await.unwrap();
    assert!(
        text(&client).await.contains("unknown, used or expired"),
        "the link works once"
    );

    client
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
    snap(&client, "sign-in").await;
    sign_in(&client, &base, "owner@localhost", PASSWORD).await;

    // A second factor: scan (here: read) the key, confirm with the app's code, keep the
    // recovery codes; signing in again asks for a code.
    client
        .goto(&format!("{base}/dashboard/account"))
        .await
        .unwrap();
    fill(&client, "#totp-start-password", PASSWORD).await;
    submit(&client, "#totp-start button").await;
    let key = client
        .find(Locator::Css("figure.qr figcaption code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    mask_key(&client).await;
    snap(&client, "totp-setup").await;
    // The real binary reads the real clock; so does the app it plays.
    let now = token_core::Clock::now(&token_store::SystemClock);
    fill(
        &client,
        "#code",
        &token_store::testing::app_code(&key, now).unwrap(),
    )
    .await;
    submit(&client, "form.narrow button[type=submit]").await;
    let codes = client
        .find_all(Locator::Css("ul.codes code"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10, "{}", text(&client).await);
    let recovery = codes[0].text().await.unwrap();
    sign_out(&client).await;
    client
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
    fill(&client, "#email", "owner@localhost").await;
    fill(&client, "#password", PASSWORD).await;
    submit(&client, "form.narrow button[type=submit]").await;
    assert!(text(&client).await.contains("Enter your code"));
    snap(&client, "sign-in-code").await;
    fill(&client, "#code", &recovery).await;
    submit(&client, "form.narrow button[type=submit]").await;
    assert!(
        text(&client).await.contains("<h1>Tokens"),
        "signed in with the second factor"
    );

    // Create a token: shown once, with the warning.
    client
        .goto(&format!("{base}/dashboard/tokens/new"))
        .await
        .unwrap();
    snap(&client, "token-new").await;
    fill(&client, "#name", "deploy-bot").await;
    fill(&client, "#client", "CI runner").await;
    submit(&client, "form.narrow button[type=submit]").await;
    let shown = text(&client).await;
    if !shown.contains("will not be shown again") {
        let url = client.current_url().await.unwrap();
        let (_, log) = server.stop().await;
        panic!("not created (now at {url}): {log}");
    }
    let token = secret_shown(&client).await;
    assert!(token.parse::<token_core::Token>().is_ok(), "{token}");
    mask_secret(&client).await;
    snap(&client, "token-created").await;
    // Reloading resubmits the form: no second token, and the secret is not shown again.
    client.refresh().await.unwrap();
    let _ = client.accept_alert().await; // a resubmission prompt, if the browser shows one
    assert!(
        !text(&client).await.contains(&token[20..52]),
        "reload shows it again"
    );
    client.back().await.unwrap();
    let _ = client.accept_alert().await;
    assert!(
        !text(&client).await.contains(&token[20..52]),
        "back shows it again"
    );

    // A call with it, then its security log shows the call.
    let (status, _, _) = http(server.addr, "GET", "/v1/notes", Some(&token), None).await;
    assert_eq!(status, 200);
    let id = &token[4..20];
    let mut logged = false;
    for _ in 0..100 {
        client
            .goto(&format!("{base}/dashboard/tokens/{id}"))
            .await
            .unwrap();
        if text(&client).await.contains("GET /v1/notes") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the usage writer commits in batches
    }
    assert!(logged, "the call is in the token's security log");
    let page = text(&client).await;
    assert!(
        page.contains("127.0.0.1") && page.contains("e2e/1.0"),
        "address and user agent"
    );
    snap(&client, "token-security-log").await;

    client
        .goto(&format!("{base}/dashboard/tokens"))
        .await
        .unwrap();
    assert_eq!(
        text(&client).await.matches(">deploy-bot</a>").count(),
        1,
        "one token made"
    );
    snap(&client, "tokens").await;

    // Revoke it: the next call is refused.
    client
        .goto(&format!("{base}/dashboard/tokens/{id}/revoke"))
        .await
        .unwrap();
    assert!(text(&client).await.contains("deploy-bot"));
    snap(&client, "token-revoke").await;
    submit(&client, "form.narrow button[type=submit]").await;
    assert!(text(&client).await.contains("The token is revoked"));
    let (status, _, _) = http(server.addr, "GET", "/v1/notes", Some(&token), None).await;
    assert_eq!(status, 401);

    client
        .goto(&format!("{base}/dashboard/audit"))
        .await
        .unwrap();
    assert!(text(&client).await.contains("token.revoked"));
    snap(&client, "audit").await;
    client
        .goto(&format!("{base}/dashboard/account"))
        .await
        .unwrap();
    snap(&client, "account").await;

    // A connector: registered on the OAuth clients page, then connected through the consent
    // page, whose answer a real browser follows to the connector's loopback address (the
    // page's Content-Security-Policy must let it).
    let connector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/cb", connector.local_addr().unwrap());
    let arrived = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = connector.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let n = stream.read(&mut request).await.unwrap();
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nconnected",
            )
            .await
            .unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    client
        .goto(&format!("{base}/dashboard/oauth/clients"))
        .await
        .unwrap();
    fill(&client, "#name", "Calendar sync").await;
    fill(&client, "#redirect_uris", &callback).await;
    submit(&client, "form.narrow button[type=submit]").await;
    let page = text(&client).await;
    let client_id = regex::Regex::new(r"cli_[0-9A-Za-z]{16}")
        .unwrap()
        .find(&page)
        .unwrap()
        .as_str()
        .to_owned();
    assert!(page.contains("never approved"), "a new client stands out");
    snap(&client, "oauth-clients").await;
    client
        .goto(&format!(
            "{base}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
             &scope=read&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256",
            form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
        ))
        .await
        .unwrap();
    assert!(text(&client).await.contains("Allow “Calendar sync”"));
    snap(&client, "oauth-consent").await;
    client
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let request = tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("the browser never reached the connector")
        .unwrap();
    assert!(
        request.starts_with("GET /cb?code=") && request.contains("state=xyz"),
        "{request}"
    );
    client
        .goto(&format!("{base}/dashboard/oauth/clients/{client_id}"))
        .await
        .unwrap();
    assert!(
        text(&client).await.contains("Ada Owner"),
        "the owner is connected"
    );
    snap(&client, "oauth-client").await;
    client
        .goto(&format!("{base}/dashboard/connections"))
        .await
        .unwrap();
    snap(&client, "connections").await;

    // Settings: the regulated preset, the tokens that break it, a webhook endpoint.
    client
        .goto(&format!("{base}/dashboard/settings"))
        .await
        .unwrap();
    client
        .execute(
            "document.querySelector('#preset').value = 'regulated';",
            vec![],
        )
        .await
        .unwrap();
    submit(&client, "#policy button[type=submit]").await;
    let page = text(&client).await;
    assert!(page.contains("The policy is saved"), "{page}");
    assert!(
        page.contains("max_lifetime"),
        "the bootstrap token never expires: {page}"
    );
    fill(&client, "#url", "https://hooks.example.org/knowmind").await;
    submit(&client, "#webhook button[type=submit]").await;
    let webhook_secret = secret_shown(&client).await;
    assert!(webhook_secret.starts_with("whsec_"));
    mask_secret(&client).await;
    snap(&client, "settings").await;

    // Invite a member, who enrols and signs in in the same browser after the owner leaves.
    client
        .goto(&format!("{base}/dashboard/members"))
        .await
        .unwrap();
    fill(&client, "#email", "mia@example.org").await;
    submit(&client, "#invite button[type=submit]").await;
    let member_link = secret_shown(&client).await;
    mask_secret(&client).await;
    snap(&client, "members").await;
    // The owner's own token, made for this check.
    client
        .goto(&format!("{base}/dashboard/tokens/new"))
        .await
        .unwrap();
    fill(&client, "#name", "owners-only").await;
    submit(&client, "form.narrow button[type=submit]").await;
    let owners = secret_shown(&client).await;
    sign_out(&client).await;

    enrol(&client, &member_link, "Mia Member", MEMBER_PASSWORD).await;
    sign_in(&client, &base, "mia@example.org", MEMBER_PASSWORD).await;
    let theirs = text(&client).await;
    assert!(!theirs.contains("owners-only") && !theirs.contains("deploy-bot"));
    client
        .goto(&format!("{base}/dashboard/tokens/{}", &owners[4..20]))
        .await
        .unwrap();
    assert!(
        text(&client).await.contains("There is nothing here"),
        "another's token is not found"
    );
    client
        .goto(&format!("{base}/dashboard/members"))
        .await
        .unwrap();
    assert!(
        text(&client)
            .await
            .contains("Your role does not allow this")
    );
    client
        .goto(&format!("{base}/dashboard/account"))
        .await
        .unwrap();
    sign_out(&client).await;
    client
        .goto(&format!("{base}/dashboard/tokens"))
        .await
        .unwrap();
    assert!(
        text(&client).await.contains("<h1>Sign in</h1>"),
        "signed out for good"
    );

    client.close().await.unwrap();
    let (clean, log) = server.stop().await;
    assert!(clean, "{log}");
    for secret in [&token[20..52], &owners[20..52], PASSWORD, MEMBER_PASSWORD] {
        assert!(!log.contains(secret), "a secret reached the server's log");
    }
}
