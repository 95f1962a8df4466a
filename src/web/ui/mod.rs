//! The server-rendered web UI: setup wizard, login, files, security,
//! administration and system pages. Pages are maud templates (escaped by
//! default); one stylesheet and one small script ship inside the binary.
//!
//! Like the REST API, the pages only translate: every decision (may this
//! user enrol, is this password good enough, may an admin touch that
//! account) is the core's, and its refusal is shown as it comes.
//!
//! Browser sessions live in the cookie `__Host-coffer` (Secure, HttpOnly,
//! SameSite=Strict, Path=/). Every form carries the session's CSRF token in
//! a hidden field, checked in constant time before the handler runs
//! (`Posted`); a refused check answers 403 and changes nothing. Every
//! change of a session's stage moves it to a new cookie value.

mod admin;
mod apidoc;
mod files;
mod login;
mod security;
mod setup;
mod viewer;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::Web;
use super::extract::{Client, cookie_token};
use super::session::{COOKIE, Current, Found, Token};
use crate::auth::{AuthError, Role};

/// The stylesheet: layout (`style.css`), then colour schemes and the focus
/// ring (`theme.css`), served as one.
const STYLE: &str = concat!(
    include_str!("../assets/style.css"),
    include_str!("../assets/theme.css")
);
/// The script (upload progress, confirmations); no inline script anywhere.
const SCRIPT: &str = include_str!("../assets/app.js");
/// The file page's script: transfers, selection, sorting, previews.
const FILES_SCRIPT: &str = include_str!("../assets/files.js");

pub(crate) use viewer::VIEWER_PREFIX;

/// The page routes and assets.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route("/", get(home))
        .route("/setup", get(setup::form).post(setup::claim))
        .route("/login", get(login::form).post(login::password))
        .route("/login/code", get(login::code_form).post(login::code))
        .route("/login/enrol", get(login::enrol_form).post(login::enrol))
        .route("/login/offer", get(login::offer).post(login::offer_choice))
        .route("/logout", post(login::logout))
        .route("/files", get(files::browse))
        .route("/files/download", get(files::download))
        .route("/files/mkdir", post(files::mkdir))
        .route("/files/rename", post(files::rename))
        .route("/files/delete", post(files::delete))
        .route("/files/zip", post(files::zip))
        .route("/files/preview", get(files::preview))
        .route(
            "/assets/files.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    FILES_SCRIPT,
                )
            }),
        )
        .route("/security", get(security::overview))
        .route(
            "/security/totp",
            get(security::totp_form).post(security::totp_confirm),
        )
        .route("/security/totp/replace", post(security::totp_replace))
        .route("/security/totp/cancel", post(security::totp_cancel))
        .route("/security/totp/remove", post(security::totp_remove))
        .route("/security/recovery", post(security::recovery))
        .route("/security/password", post(security::password))
        .route("/security/tokens", post(security::token_create))
        .route("/security/tokens/{id}/revoke", post(security::token_revoke))
        .route("/security/sessions/{id}/end", post(security::session_end))
        .route("/admin/users", get(admin::users).post(admin::user_create))
        .route(
            "/admin/users/{name}",
            get(admin::user).post(admin::user_action),
        )
        .route(
            "/admin/groups",
            get(admin::groups).post(admin::group_action),
        )
        .route("/admin/locks", post(admin::unlock_address))
        .route("/admin/policy", get(admin::policy).post(admin::policy_save))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit/export", get(admin::audit_export))
        .route("/admin/system", get(admin::system))
        .route("/admin/system/certificate", post(admin::certificate))
        .merge(apidoc::routes())
}

/// The answer for an unknown path: JSON under `/api/`, a page elsewhere:
/// inside the app with its navigation for a signed-in visitor, a plain
/// card for anyone else.
pub(crate) async fn not_found(uri: axum::http::Uri, visitor: Visitor) -> Response {
    if uri.path().starts_with("/api/") {
        return super::error::ApiError::not_found(
            "there is no such API route; see /api/v1/openapi.json",
        )
        .into_response();
    }
    const TITLE: &str = "Page not found";
    const TEXT: &str = "There is no page at this address.";
    match visitor {
        Visitor::Granted(current) => {
            let body = html! {
                p { (TEXT) " It may have moved, or the link may be mistyped." }
                p { a.button href="/files" { "Go to your files" } }
            };
            respond(
                StatusCode::NOT_FOUND,
                shell(&current, Nav::None, TITLE, None, body),
            )
        }
        _ => message_page(StatusCode::NOT_FOUND, TITLE, TEXT),
    }
}

/// A QR code of `text` as an inline SVG element (dark modules on white).
/// The SVG has no `style` attribute (the CSP forbids inline styles) and no
/// XML prolog, so it can sit inside a page.
pub fn qr_svg(text: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build();
            let start = svg.find("<svg").unwrap_or(0);
            let body = svg.get(start..).unwrap_or_default();
            body.replacen(
                "<svg ",
                "<svg role=\"img\" aria-label=\"QR code for the authenticator app\" ",
                1,
            )
        }
        Err(_) => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Who is asking.

/// The browser's session, as the cookie names it.
#[derive(Debug)]
pub(crate) enum Visitor {
    /// No cookie, or its session ended.
    Nobody,
    /// A session that is not logged in (yet).
    Pending {
        /// The cookie's value.
        token: Token,
        /// `anonymous`, `await_code`, `must_enrol`.
        stage: &'static str,
        /// Its CSRF token.
        csrf: String,
    },
    /// Logged in.
    Granted(Box<Current>),
}

impl Visitor {
    fn of(parts: &Parts, web: &Web) -> Self {
        let Some(token) = cookie_token(parts) else {
            return Visitor::Nobody;
        };
        match web.sessions.find(&web.auth, &token, web.now()) {
            Found::Nothing => Visitor::Nobody,
            Found::Pending { stage, csrf } => Visitor::Pending { token, stage, csrf },
            Found::Granted(current) => Visitor::Granted(current),
        }
    }

    /// Where a visitor that is not logged in belongs.
    fn login_step(&self) -> &'static str {
        match self {
            Visitor::Pending {
                stage: "await_code",
                ..
            } => "/login/code",
            Visitor::Pending {
                stage: "must_enrol",
                ..
            } => "/login/enrol",
            _ => "/login",
        }
    }
}

impl FromRequestParts<Arc<Web>> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &Arc<Web>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Visitor::of(parts, web))
    }
}

/// A logged-in visitor; anyone else is sent to the login step they are at.
#[derive(Debug)]
pub(crate) struct Signed {
    /// The session.
    pub current: Box<Current>,
}

impl FromRequestParts<Arc<Web>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        match Visitor::of(parts, web) {
            Visitor::Granted(current) => Ok(Signed { current }),
            other => Err(see_other(other.login_step())),
        }
    }
}

/// The fields of a submitted form, in order. Values may be passwords or
/// codes: they are wiped when the form is dropped, and `Debug` shows the
/// field names only.
#[derive(Default)]
pub(crate) struct Fields(Vec<(String, zeroize::Zeroizing<String>)>);

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=***")))
            .finish()
    }
}

impl Fields {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed.
    pub fn trimmed(&self, name: &str) -> &str {
        self.get(name).trim()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

/// A form POST whose CSRF token matched the session's.
#[derive(Debug)]
pub(crate) struct Posted {
    /// The session (checked to exist).
    pub visitor: Visitor,
    /// The cookie's value.
    pub token: Token,
    /// The fields.
    pub fields: Fields,
    /// Address and browser.
    pub client: Client,
}

impl Posted {
    /// The logged-in session, or a redirect to the login.
    pub fn granted(&self) -> Result<&Current, Box<Response>> {
        match &self.visitor {
            Visitor::Granted(c) => Ok(c),
            other => Err(Box::new(see_other(other.login_step()))),
        }
    }
}

impl FromRequest<Arc<Web>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, web: &Arc<Web>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let client = Client::from_request_parts(&mut parts, web)
            .await
            .unwrap_or_else(|never| match never {});
        let visitor = Visitor::of(&parts, web);
        let token = match &visitor {
            Visitor::Nobody => return Err(csrf_refused()),
            Visitor::Pending { token, .. } => token.clone(),
            Visitor::Granted(c) => c.token.clone(),
        };
        let request = Request::from_parts(parts, body);
        let fields = match axum::Form::<Vec<(String, String)>>::from_request(request, web).await {
            Ok(axum::Form(pairs)) => Fields(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, zeroize::Zeroizing::new(v)))
                    .collect(),
            ),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(message_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form was not accepted",
                    "The form is larger than the server accepts.",
                ));
            }
            // A body that is not a form cannot carry the token either.
            Err(_) => return Err(csrf_refused()),
        };
        if !web.sessions.csrf_ok(&token, fields.get("csrf")) {
            return Err(csrf_refused());
        }
        Ok(Posted {
            visitor,
            token,
            fields,
            client,
        })
    }
}

/// 403 for a form without the session's CSRF token.
fn csrf_refused() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "The form has expired",
        "This form did not carry a valid security token (it may be from an older page or another site). Nothing was changed. Go back, reload the page and try again.",
    )
}

// ---------------------------------------------------------------------------
// Answers.

/// 303 to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Sets the session cookie to `token` on `response`.
pub(crate) fn with_cookie(mut response: Response, token: &Token) -> Response {
    let value = format!(
        "{COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/",
        token.expose()
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Clears the session cookie on `response`.
fn without_cookie(mut response: Response) -> Response {
    let value = format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// A page with a status.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page that only says something (errors, refusals), outside the app.
pub(crate) fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        div.card {
            h1 { (title) }
            p { (text) }
            p { a.button href="/" { "Go to the start page" } }
        }
    };
    respond(status, bare(title, "", body))
}

/// 403 for a page the caller's role may not see.
pub(crate) fn forbidden(current: &Current, what: &str) -> Response {
    let body = html! {
        div.notice.error role="alert" {
            p { "You do not have access to this page: " (what) "." }
        }
        p { a href="/files" { "Back to your files" } }
    };
    respond(
        StatusCode::FORBIDDEN,
        shell(current, Nav::None, "Not allowed", None, body),
    )
}

/// The granted session a new cookie value holds (after [`reissue`]).
pub(crate) fn fresh(web: &Web, token: &Token) -> Option<Box<Current>> {
    match web.sessions.find(&web.auth, token, web.now()) {
        Found::Granted(c) => Some(c),
        _ => None,
    }
}

pub(crate) use crate::auth::blocking;

const INTERNAL: &str =
    "The request failed because of an internal error; the administrator can find it in the log.";

/// A core error in words for the person at the browser. Store, key and
/// hashing failures are logged and shown as a fixed sentence.
pub(crate) fn say(e: &AuthError) -> String {
    match e {
        AuthError::Store(_) | AuthError::Seal(_) | AuthError::Hash(_) | AuthError::Internal(_) => {
            tracing::error!(error = %e, "a web request failed");
            INTERNAL.into()
        }
        e => sentence(&e.to_string()),
    }
}

/// Upper-cases the first letter and ends with a full stop.
pub(crate) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A rate-limit refusal, in words, when this address tried too often.
pub(crate) fn over_rate(web: &Web, ip: IpAddr) -> Option<String> {
    web.limiter
        .attempt(ip, web.now())
        .err()
        .map(|wait| format!("Too many attempts from this address; try again in {wait} seconds."))
}

/// The session value re-issued after the account's credentials changed
/// (which ended every session of it, this one included).
pub(crate) fn reissue(web: &Web, current: &Current, client: &Client) -> Result<Token, AuthError> {
    let mut session = current.session.renewed(&web.auth);
    session.offer_enrolment = false;
    web.sessions.advance(
        &web.auth,
        super::session::Stage::Granted(session),
        current.carrier,
        client.ip,
        &client.agent,
        web.now(),
    )
}

// ---------------------------------------------------------------------------
// Layout.

/// The navigation entry of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nav {
    /// Files.
    Files,
    /// Security.
    Security,
    /// Users.
    Users,
    /// Groups.
    Groups,
    /// Policy.
    Policy,
    /// Audit.
    Audit,
    /// System.
    System,
    /// API.
    Api,
    /// None highlighted.
    None,
}

const LOGO: &str = r#"<svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false"><rect x="3" y="7" width="26" height="20" rx="4" fill="currentColor" opacity=".18"/><rect x="3" y="7" width="26" height="20" rx="4" fill="none" stroke="currentColor" stroke-width="2.2"/><path d="M3 13h26" stroke="currentColor" stroke-width="2.2"/><rect x="12" y="4" width="8" height="5" rx="1.5" fill="none" stroke="currentColor" stroke-width="2.2"/><circle cx="16" cy="20" r="2.6" fill="currentColor"/></svg>"#;

fn head(title: &str, csrf: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            @if !csrf.is_empty() {
                meta name="csrf-token" content=(csrf);
            }
            title { (title) " · Coffer" }
            link rel="stylesheet" href="/assets/style.css";
            link rel="icon" href="data:,";
            script src="/assets/app.js" defer {}
        }
    }
}

/// A page outside the app (setup, login): a centred card.
pub(crate) fn bare(title: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, csrf))
            body.bare {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.bar {
                        a.brand href="/" { (PreEscaped(LOGO)) span { "Coffer" } }
                    }
                }
                main #main tabindex="-1" {
                    div.narrow { (body) }
                }
                (footer())
            }
        }
    }
}

fn footer() -> Markup {
    html! {
        footer.foot {
            p { "Coffer " (env!("CARGO_PKG_VERSION")) " · secure file transfer" }
        }
    }
}

/// A page of the app, with the navigation of the caller's role.
pub(crate) fn shell(
    current: &Current,
    nav: Nav,
    title: &str,
    flash: Option<&str>,
    body: Markup,
) -> Markup {
    let role = current.session.role;
    let mut links: Vec<(Nav, &str, &str)> = vec![
        (Nav::Files, "/files", "Files"),
        (Nav::Security, "/security", "Security"),
    ];
    if role.is_admin() {
        links.push((Nav::Users, "/admin/users", "Users"));
        links.push((Nav::Groups, "/admin/groups", "Groups"));
        links.push((Nav::Policy, "/admin/policy", "Policy"));
        links.push((Nav::Audit, "/admin/audit", "Audit"));
    }
    if role == Role::SystemAdmin {
        links.push((Nav::System, "/admin/system", "System"));
    }
    links.push((Nav::Api, "/api", "API"));
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, &current.csrf))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.bar {
                        a.brand href="/" { (PreEscaped(LOGO)) span { "Coffer" } }
                        nav.main aria-label="Main" {
                            ul {
                                @for (key, href, label) in &links {
                                    li {
                                        @if *key == nav {
                                            a.current href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(current.csrf);
                            span.who title=(format!("Signed in as {} ({})", current.session.account, role)) {
                                (current.session.account)
                            }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    div.wrap {
                        (security::flash_box(flash))
                        h1 { (title) }
                        (body)
                    }
                }
                (footer())
            }
        }
    }
}

/// A notice box for an error message, announced to screen readers.
pub(crate) fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            div.notice.error role="alert" { p { (m) } }
        }
    }
}

/// Text that may quote code the Markdown way (`coffer console`): the
/// quoted parts become `<code>`, the backticks go; everything is escaped.
pub(crate) fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A timestamp for people: `2026-11-23 17:44 UTC`.
pub(crate) fn when(ts: u64) -> String {
    let text = crate::clock::format_utc(ts);
    match (text.get(..10), text.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => text,
    }
}

/// A time for people: UTC in the page, shown in the browser's own zone
/// with seconds once the page script runs (`time[data-local]`).
pub(crate) fn local_time(ts: u64) -> Markup {
    html! {
        time datetime=(crate::clock::format_utc(ts)) data-local title=(when(ts)) { (when(ts)) }
    }
}

/// A byte count for people.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = "KB";
    for u in UNITS.iter().skip(1) {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Percent-encodes a value for a URL query or path segment.
pub(crate) fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `/`: the setup wizard on an unclaimed box, the files when logged in,
/// else the login.
async fn home(State(web): State<Arc<Web>>, visitor: Visitor) -> Response {
    let auth = web.auth.clone();
    if let Ok(false) = blocking(move || auth.is_claimed()).await {
        return see_other("/setup");
    }
    match visitor {
        Visitor::Granted(_) => see_other("/files"),
        other => see_other(other.login_step()),
    }
}

/// Starts an anonymous session for a form page when the visitor has none;
/// returns its CSRF token and, when new, the cookie to set.
pub(crate) fn anonymous(
    web: &Web,
    visitor: &Visitor,
    client: &Client,
) -> Result<(String, Option<Token>), AuthError> {
    match visitor {
        Visitor::Pending { csrf, .. } => Ok((csrf.clone(), None)),
        Visitor::Granted(c) => Ok((c.csrf.clone(), None)),
        Visitor::Nobody => {
            let (token, csrf) = web
                .sessions
                .anonymous(client.ip, &client.agent, web.now())?;
            Ok((csrf, Some(token)))
        }
    }
}

/// A response with the cookie of a new anonymous session, if one was made.
pub(crate) fn maybe_cookie(response: Response, token: Option<&Token>) -> Response {
    match token {
        Some(t) => with_cookie(response, t),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_svg_has_no_prolog_and_no_style() {
        let svg = qr_svg("otpauth://totp/Coffer:owner?secret=JBSWY3DPEHPK3PXP&issuer=Coffer");
        assert!(svg.starts_with("<svg role=\"img\""));
        assert!(!svg.contains("<?xml"));
        assert!(!svg.contains("style"));
    }

    #[test]
    fn quoted_code_becomes_code_elements() {
        assert_eq!(
            prose("run `coffer console` <now>").into_string(),
            "run <code>coffer console</code> &lt;now&gt;"
        );
    }

    #[test]
    fn sizes_and_sentences_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1500), "1.5 KB");
        assert_eq!(bytes(25_000_000), "25 MB");
        assert_eq!(sentence("not allowed: x"), "Not allowed: x.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
    }
}

#[cfg(test)]
mod fields_tests {
    use super::Fields;

    #[test]
    fn form_values_never_print() {
        let fields = Fields(vec![
            ("username".into(), zeroize::Zeroizing::new("alice".into())),
            (
                "password".into(),
                zeroize::Zeroizing::new("hunter2-secret".into()),
            ),
        ]);
        let shown = format!("{fields:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert_eq!(fields.get("password"), "hunter2-secret");
    }
}
