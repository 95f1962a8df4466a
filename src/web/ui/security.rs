//! The security page every user has: two-factor sign-in (enrol, remove,
//! new recovery codes), password, access tokens and active sessions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::{
    Nav, Posted, Signed, blocking, csrf_field, error_box, qr_svg, respond, say, see_other, shell,
    when, with_cookie,
};
use crate::auth::mfa::RecoveryCodes;
use crate::auth::{Actor, AuthError, Protocol};
use crate::web::Web;
use crate::web::session::{Current, PendingEnrolment};

/// The enrolment form: QR code, the secret for typing, a code field.
pub(crate) fn enrol_markup(
    csrf: &str,
    pending: &PendingEnrolment,
    action: &str,
    error: Option<&str>,
    wizard: bool,
) -> Markup {
    html! {
        (error_box(error))
        div.enrol {
            div.qr { (PreEscaped(qr_svg(&pending.uri))) }
            div {
                ol.howto {
                    li { "Open an authenticator app on your phone (for example Aegis, FreeOTP, Google Authenticator or 1Password)." }
                    li { "Scan the QR code, or add an account by hand with this secret key:" }
                }
                p.secret {
                    code #totp-secret data-secret=(pending.secret.as_str()) { (grouped(&pending.secret)) }
                }
                p.help { "Time-based, 6 digits, every 30 seconds." }
                p.otpauth {
                    "On this phone? "
                    a #otpauth-link href=(pending.uri.as_str()) { "Open in the authenticator app" }
                    " or copy the link:"
                }
                div.copy {
                    label.sr for="otpauth-uri" { "Link for the authenticator app" }
                    input #otpauth-uri type="text" readonly value=(pending.uri.as_str()) spellcheck="false";
                    button type="button" data-copy="otpauth-uri" { "Copy" }
                }
                form method="post" action=(action) {
                    (csrf_field(csrf))
                    @if wizard {
                        input type="hidden" name="setup" value="1";
                    }
                    div.field {
                        label for="code" { "Code from the app" }
                        input #code name="code" type="text" required inputmode="numeric"
                            autocomplete="one-time-code" maxlength="6" pattern="[0-9 ]{6,7}"
                            spellcheck="false" aria-describedby="code_help";
                        p.help #code_help { "Type the 6-digit code the app now shows, to confirm it works." }
                    }
                    div.actions {
                        button.primary type="submit" { "Verify and turn on" }
                        @if wizard && action != "/login/enrol" {
                            a href="/files" { "Skip for now" }
                        }
                    }
                }
            }
        }
    }
}

/// A secret in groups of four, easier to type.
fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The recovery codes, with a download button and the "stored" check.
fn codes_markup(account: &str, codes: &RecoveryCodes, next: &str) -> Markup {
    html! {
        p.lead {
            "If you lose your phone, each of these codes lets you sign in once instead of a "
            "6-digit code. They are shown only now: keep them somewhere safe, away from your phone."
        }
        ol.codes #recovery-codes data-account=(account) {
            @for c in &codes.0 {
                li { code { (c.as_str()) } }
            }
        }
        div.actions {
            button #download-codes type="button" { "Download as text" }
        }
        form.confirm-stored method="get" action=(next) {
            div.check {
                input #stored type="checkbox" name="stored" value="1" required;
                label for="stored" { "I have stored them" }
            }
            div.actions {
                button.primary #continue type="submit" data-needs="stored" { "Continue" }
            }
        }
    }
}

/// The recovery codes page outside the app (the wizard, a forced enrolment).
pub(crate) fn codes_page_bare(account: &str, codes: &RecoveryCodes, wizard: bool) -> Markup {
    let body = html! {
        @if wizard {
            (super::setup::steps(3))
        }
        div.card.wide {
            h1 { "Save your recovery codes" }
            (codes_markup(account, codes, "/files"))
        }
    };
    super::bare("Recovery codes", "", body)
}

fn codes_page(current: &Current, codes: &RecoveryCodes, wizard: bool) -> Markup {
    // The wizard stays outside the app's menus until its last step is done.
    if wizard {
        return codes_page_bare(&current.session.account, codes, true);
    }
    let body = html! {
        div.card {
            (codes_markup(&current.session.account, codes, "/security"))
        }
    };
    shell(
        current,
        Nav::Security,
        "Save your recovery codes",
        None,
        body,
    )
}

/// Takes the one-time message of a session, for its next page.
pub(crate) fn flash(web: &Web, current: &Current) -> Option<String> {
    web.sessions.take_flash(&current.token)
}

/// The flash box, error-styled when it starts with `!`.
pub(crate) fn flash_box(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            @if let Some(e) = t.strip_prefix('!') {
                div.notice.error role="alert" { p { (e) } }
            } @else {
                div.notice.ok role="status" { p { (t) } }
            }
        }
    }
}

/// `GET /security`
pub(crate) async fn overview(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let message = flash(&web, &signed.current);
    page(&web, &signed.current, message.as_deref()).await
}

async fn page(web: &Arc<Web>, current: &Current, message: Option<&str>) -> Response {
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    // A session opened with an access token manages no credentials: the
    // core says so, the page shows why in place of the forms.
    let token_notice = actor.may_manage_credentials().err().map(|e| say(&e));
    let name = current.session.account.clone();
    let loaded = blocking(move || {
        let account = auth.account(&actor, &name)?;
        let tokens = match actor.may_manage_credentials() {
            Ok(()) => auth.tokens(&actor, Some(&name))?,
            Err(_) => Vec::new(),
        };
        let own = auth.own_sign_in(&actor)?;
        Ok((account, tokens, own))
    })
    .await;
    let (account, tokens, own) = match loaded {
        Ok(x) => x,
        Err(e) => {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                shell(
                    current,
                    Nav::Security,
                    "Security",
                    None,
                    error_box(Some(&say(&e))),
                ),
            );
        }
    };
    let sessions = if token_notice.is_none() {
        web.sessions.list(
            &current.session.account,
            Some(&current.token),
            web.now(),
            &web.auth,
        )
    } else {
        Vec::new()
    };
    let may_change_password = own.may_change_password;
    let required = own.mfa_required;
    let csrf = current.csrf.as_str();
    let now = web.now();
    let body = html! {
        (flash_box(message))
        @if let Some(why) = &token_notice {
            section.card #token-session aria-labelledby="tok-session-h" {
                h2 #tok-session-h { "Signed in with an access token" }
                p { (why) }
                p.help { "Sign out, then sign in with your password, to change two-factor sign-in, your password, access tokens or sessions." }
            }
        } @else {
        section.card aria-labelledby="mfa-h" {
            h2 #mfa-h { "Two-factor sign-in" }
            @if account.mfa.enrolled {
                p { span.badge.good { "On" } " Your account asks for a code from your authenticator app. "
                    (account.mfa.recovery_codes_left) " recovery codes left." }
                div.split {
                    form method="post" action="/security/recovery" {
                        (csrf_field(csrf))
                        div.field {
                            label for="recovery_code" { "Current code or recovery code" }
                            input #recovery_code name="code" type="text" required autocomplete="one-time-code" spellcheck="false";
                        }
                        p.help { "New recovery codes replace all earlier ones." }
                        button type="submit" { "Make new recovery codes" }
                    }
                    form method="post" action="/security/totp/remove" data-confirm="Turn off two-factor sign-in?" {
                        (csrf_field(csrf))
                        div.field {
                            label for="remove_code" { "Current code or recovery code" }
                            input #remove_code name="code" type="text" required autocomplete="one-time-code" spellcheck="false";
                        }
                        @if required {
                            p.help { "Your role requires two-factor sign-in: you will have to set it up again at your next sign-in." }
                        }
                        button.danger type="submit" { "Turn off" }
                    }
                }
                form method="post" action="/security/totp/replace" {
                    (csrf_field(csrf))
                    h3 { "Move to a new phone" }
                    p.help { "Set up again; the old app keeps working until the new one is confirmed." }
                    div.field {
                        label for="replace_code" { "Current code or recovery code" }
                        input #replace_code name="code" type="text" required autocomplete="one-time-code" spellcheck="false";
                    }
                    button type="submit" { "Set up a new phone" }
                }
            } @else {
                p { span.badge.warn { "Off" } " Only your password protects this account." }
                @if own.mfa_allowed || required {
                    p { a.button.primary href="/security/totp" { "Set up two-factor sign-in" } }
                } @else {
                    p.help { "The administrator has turned two-factor sign-in off for this box." }
                }
            }
        }
        section.card aria-labelledby="pw-h" {
            h2 #pw-h { "Password" }
            @if may_change_password {
                form method="post" action="/security/password" {
                    (csrf_field(csrf))
                    div.grid {
                        div.field {
                            label for="current_password" { "Current password" }
                            input #current_password name="current_password" type="password" required autocomplete="current-password";
                        }
                        div.field {
                            label for="new_password" { "New password" }
                            input #new_password name="new_password" type="password" required autocomplete="new-password"
                                minlength=(own.password_min_length) aria-describedby="new_pw_help";
                            p.help #new_pw_help { "At least " (own.password_min_length) " characters; a passphrase of several words is best." }
                        }
                        div.field {
                            label for="new_password2" { "New password again" }
                            input #new_password2 name="new_password2" type="password" required autocomplete="new-password";
                        }
                    }
                    p.help { "Changing it signs out your other sessions." }
                    button type="submit" { "Change password" }
                }
            } @else {
                p.help { "Your administrator manages the password of this account." }
            }
        }
        section.card aria-labelledby="tok-h" {
            h2 #tok-h { "Access tokens" }
            p.help { "For scripts and file clients (rclone, curl, WinSCP): a token is used instead of the password and needs no code. Give each application its own token, and revoke it when it is no longer used." }
            @if tokens.is_empty() {
                p.empty { "No access tokens." }
            } @else {
                div.table-wrap {
                    table.stack {
                        thead { tr { th scope="col" { "Label" } th scope="col" { "Valid for" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" } th { span.sr { "Actions" } } } }
                        tbody {
                            @for t in &tokens {
                                tr {
                                    td { strong { (t.label) } }
                                    td data-label="Valid for" { (scope_text(&t.scope)) }
                                    td data-label="Created" { (when(t.created_at)) }
                                    td data-label="Expires" {
                                        @match t.expires_at {
                                            Some(e) if e <= now => span.badge.bad { "expired" },
                                            Some(e) => (when(e)),
                                            None => "never",
                                        }
                                    }
                                    td data-label="Last used" { (t.last_used.map(when).unwrap_or_else(|| "never".into())) }
                                    td {
                                        form method="post" action=(format!("/security/tokens/{}/revoke", super::enc(&t.id))) data-confirm=(format!("Revoke the token {:?}?", t.label)) {
                                            (csrf_field(csrf))
                                            button.small.danger type="submit" aria-label=(format!("Revoke {}", t.label)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "New token" }
            form method="post" action="/security/tokens" {
                (csrf_field(csrf))
                (token_fields())
                button type="submit" { "Create token" }
            }
        }
        section.card aria-labelledby="ses-h" {
            h2 #ses-h { "Active sessions" }
            div.table-wrap {
                table.stack {
                    thead { tr { th scope="col" { "Browser or client" } th scope="col" { "Address" } th scope="col" { "Signed in" } th scope="col" { "Last active" } th { span.sr { "Actions" } } } }
                    tbody {
                        @for s in &sessions {
                            tr {
                                td title=(s.agent) {
                                    (client_name(&s.agent))
                                    @if s.current { " " span.badge.good { "this browser" } }
                                }
                                td data-label="Address" { (s.address) }
                                td data-label="Signed in" { (when(s.granted_at)) }
                                td data-label="Last active" { (when(s.last_seen)) }
                                td {
                                    form method="post" action=(format!("/security/sessions/{}/end", super::enc(&s.id))) {
                                        (csrf_field(csrf))
                                        button.small type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
    };
    let status = if message.is_some_and(|m| m.starts_with('!')) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    respond(
        status,
        shell(current, Nav::Security, "Security", None, body),
    )
}

/// "Chrome on Linux" from a User-Agent; other clients by their first word.
fn client_name(agent: &str) -> String {
    let has = |s: &str| agent.contains(s);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        return match agent.split_whitespace().next() {
            Some(first) => first.chars().take(40).collect(),
            None => "unknown client".into(),
        };
    };
    let system = if has("Android") {
        "Android"
    } else if has("iPhone") || has("iPad") {
        "iOS"
    } else if has("Windows") {
        "Windows"
    } else if has("Mac OS X") {
        "macOS"
    } else if has("Linux") {
        "Linux"
    } else {
        return browser.to_string();
    };
    format!("{browser} on {system}")
}

/// The protocols the pages offer (token scopes, the policy's "ask for the
/// code on"). FTPS is left out while there is no FTPS server; the core keeps
/// a value set elsewhere, and the policy form carries it over unchanged.
pub(crate) const OFFERED: [Protocol; 2] = [Protocol::Ssh, Protocol::Https];

/// The fields of a new access token (label, expiry, scope), on the
/// security page and on an account's administration page alike; read back
/// by [`expiry`] and [`scope_of`].
pub(crate) fn token_fields() -> Markup {
    html! {
        div.grid {
            div.field {
                label for="label" { "Label" }
                input #label name="label" type="text" required maxlength="64" placeholder="e.g. laptop rclone";
            }
            div.field {
                label for="expires" { "Expires" }
                select #expires name="expires" {
                    option value="30" { "in 30 days" }
                    option value="90" selected { "in 90 days" }
                    option value="365" { "in a year" }
                    option value="never" { "never" }
                }
            }
            fieldset.field {
                legend { "Valid for" }
                @for p in OFFERED {
                    div.check {
                        input type="checkbox" id=(format!("scope_{p}")) name=(format!("scope_{p}")) value="1";
                        label for=(format!("scope_{p}")) { (protocol_name(p)) }
                    }
                }
                p.help { "None ticked: all." }
            }
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Ssh => "SFTP / SCP",
        Protocol::Https => "HTTPS (web, API)",
        Protocol::Ftps => "FTPS",
    }
}

/// A token's scope in words.
pub(crate) fn scope_text(scope: &BTreeSet<Protocol>) -> String {
    if scope.is_empty() {
        "all protocols".into()
    } else {
        scope
            .iter()
            .map(|p| protocol_name(*p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Shows the security page again with an error at the top.
async fn refused(web: &Arc<Web>, current: &Current, message: &str) -> Response {
    page(web, current, Some(&format!("!{message}"))).await
}

/// `GET /security/totp`: starts (or shows again) an enrolment.
pub(crate) async fn totp_form(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    let wizard = q.contains_key("setup");
    let state = mfa_state(&web, current).await;
    let pending = match web.sessions.enrolment(&current.token) {
        Some(p) => p,
        // Enrolled already: say so, and ask for a current code before a
        // new phone replaces the app (never a silent re-enrolment).
        None if state.is_some_and(|(enrolled, _)| enrolled) => {
            let left = state.map_or(0, |(_, left)| left);
            return respond(StatusCode::OK, replace_page(current, left));
        }
        None => {
            let auth = web.auth.clone();
            let actor = Actor::session(&current.session);
            let name = current.session.account.clone();
            match blocking(move || auth.totp_start(&actor, &name, None, None)).await {
                Ok(start) => {
                    let p = PendingEnrolment {
                        secret: start.secret.clone(),
                        uri: start.otpauth_uri.clone(),
                    };
                    web.sessions.set_enrolment(&current.token, Some(p.clone()));
                    p
                }
                // Replacing an enrolment starts from the security page's
                // form, which carries the code it needs.
                Err(e @ (AuthError::Invalid(_) | AuthError::Code(_))) => {
                    return refused(&web, current, &say(&e)).await;
                }
                Err(e) => {
                    let body = html! {
                        (error_box(Some(&say(&e))))
                        p { a.button href="/files" { "Continue" } }
                    };
                    return respond(
                        StatusCode::FORBIDDEN,
                        shell(current, Nav::Security, "Two-factor sign-in", None, body),
                    );
                }
            }
        }
    };
    let replacing = state.is_some_and(|(enrolled, _)| enrolled);
    respond(
        StatusCode::OK,
        enrol_page(current, &pending, None, wizard, replacing),
    )
}

/// Whether the account has TOTP, and its recovery codes left (`None`: the
/// store could not say).
async fn mfa_state(web: &Arc<Web>, current: &Current) -> Option<(bool, usize)> {
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    blocking(move || auth.account(&actor, &name))
        .await
        .ok()
        .map(|a| (a.mfa.enrolled, a.mfa.recovery_codes_left))
}

/// `/security/totp` while enrolled: the state, what replacing means, the
/// code it takes, and a way back.
fn replace_page(current: &Current, codes_left: usize) -> Markup {
    let body = html! {
        section.card aria-labelledby="state-h" {
            h2 #state-h { "Two-factor sign-in is on" }
            p { span.badge.good { "On" } " Your account asks for a code from your authenticator app. "
                (codes_left) " recovery codes left." }
            div.notice.warn role="note" {
                p { "Setting up a new phone replaces the app you use now: once the new one is confirmed, the old app's codes stop working. Nothing changes until then." }
            }
            form method="post" action="/security/totp/replace" {
                (csrf_field(&current.csrf))
                div.field {
                    label for="replace_code" { "Current code or recovery code" }
                    input #replace_code name="code" type="text" required autocomplete="one-time-code" spellcheck="false";
                }
                div.actions {
                    button.primary type="submit" { "Set up a new phone" }
                    a.button #cancel href="/security" { "Cancel" }
                }
            }
        }
    };
    shell(current, Nav::Security, "Two-factor sign-in", None, body)
}

fn enrol_page(
    current: &Current,
    pending: &PendingEnrolment,
    error: Option<&str>,
    wizard: bool,
    replacing: bool,
) -> Markup {
    let title = if replacing {
        "Set up a new phone"
    } else {
        "Set up two-factor sign-in"
    };
    let card = html! {
        @if replacing {
            div.notice.warn role="note" {
                p { "This replaces your current authenticator app once you confirm a code from the new one. Until then the old app keeps working; Cancel keeps it." }
            }
        }
        div.card {
            (enrol_markup(&current.csrf, pending, "/security/totp", error, wizard))
        }
        @if !wizard {
            form.cancel method="post" action="/security/totp/cancel" {
                (csrf_field(&current.csrf))
                button #cancel type="submit" { "Cancel" }
            }
        }
    };
    // The wizard keeps to its own steps, outside the app's menus.
    if wizard {
        let body = html! {
            (super::setup::steps(2))
            div.card.wide {
                h1 { (title) }
                p.lead { "The box is yours. Now protect the owner account with a code from your phone, so a stolen password alone cannot open it." }
                (enrol_markup(&current.csrf, pending, "/security/totp", error, wizard))
            }
        };
        return super::bare(title, &current.csrf, body);
    }
    shell(current, Nav::Security, title, None, card)
}

/// `POST /security/totp/cancel`: forgets an unconfirmed enrolment; the
/// account keeps what it had.
pub(crate) async fn totp_cancel(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    web.sessions.set_enrolment(&current.token, None);
    web.sessions.set_flash(
        &current.token,
        "Cancelled: two-factor sign-in is as it was.",
    );
    see_other("/security")
}

/// `POST /security/totp/replace`: starts a new enrolment in place of the
/// active one, proven with a current code or a recovery code.
pub(crate) async fn totp_replace(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Some(wait) = super::over_rate(&web, posted.client.ip) {
        return refused(&web, &current, &wait).await;
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").replace(' ', ""));
    match blocking(move || auth.totp_start(&actor, &name, None, Some(&code))).await {
        Ok(start) => {
            let pending = PendingEnrolment {
                secret: start.secret.clone(),
                uri: start.otpauth_uri.clone(),
            };
            web.sessions
                .set_enrolment(&current.token, Some(pending.clone()));
            respond(
                StatusCode::OK,
                enrol_page(&current, &pending, None, false, true),
            )
        }
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// `POST /security/totp`: confirms the enrolment with a code.
pub(crate) async fn totp_confirm(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let wizard = posted.fields.ticked("setup");
    let Some(pending) = web.sessions.enrolment(&current.token) else {
        return see_other("/security/totp");
    };
    let replacing = mfa_state(&web, &current)
        .await
        .is_some_and(|(enrolled, _)| enrolled);
    if let Some(wait) = super::over_rate(&web, posted.client.ip) {
        return respond(
            StatusCode::TOO_MANY_REQUESTS,
            enrol_page(&current, &pending, Some(&wait), wizard, replacing),
        );
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").replace(' ', ""));
    match blocking(move || auth.totp_confirm(&actor, &name, &code)).await {
        Ok(codes) => match super::reissue(&web, &current, &posted.client) {
            Ok(token) => {
                let fresh = super::fresh(&web, &token).unwrap_or_else(|| Box::new(current.clone()));
                with_cookie(
                    respond(StatusCode::OK, codes_page(&fresh, &codes, wizard)),
                    &token,
                )
            }
            Err(_) => see_other("/login"),
        },
        Err(e) => respond(
            StatusCode::BAD_REQUEST,
            enrol_page(&current, &pending, Some(&say(&e)), wizard, replacing),
        ),
    }
}

/// `POST /security/totp/remove`
pub(crate) async fn totp_remove(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Some(wait) = super::over_rate(&web, posted.client.ip) {
        return refused(&web, &current, &wait).await;
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").to_string());
    match blocking(move || auth.mfa_reset(&actor, &name, Some(&code))).await {
        Ok(()) => match super::reissue(&web, &current, &posted.client) {
            Ok(token) => {
                web.sessions.set_flash(
                    &token,
                    "Two-factor sign-in is off. Your other sessions were signed out.",
                );
                with_cookie(see_other("/security"), &token)
            }
            Err(_) => see_other("/login"),
        },
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// `POST /security/recovery`: new recovery codes.
pub(crate) async fn recovery(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Some(wait) = super::over_rate(&web, posted.client.ip) {
        return refused(&web, &current, &wait).await;
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").replace(' ', ""));
    match blocking(move || auth.regenerate_recovery_codes(&actor, &name, Some(&code))).await {
        Ok(codes) => respond(StatusCode::OK, codes_page(&current, &codes, false)),
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// `POST /security/password`
pub(crate) async fn password(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let f = &posted.fields;
    if let Some(wait) = super::over_rate(&web, posted.client.ip) {
        return refused(&web, &current, &wait).await;
    }
    if f.get("new_password") != f.get("new_password2") {
        return refused(
            &web,
            &current,
            "The two new passwords differ; type the same password twice.",
        )
        .await;
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let new = zeroize::Zeroizing::new(f.get("new_password").to_string());
    let old = zeroize::Zeroizing::new(f.get("current_password").to_string());
    match blocking(move || auth.set_password(&actor, &name, &new, Some(&old))).await {
        Ok(()) => match super::reissue(&web, &current, &posted.client) {
            Ok(token) => {
                web.sessions.set_flash(
                    &token,
                    "Your password was changed. Your other sessions were signed out.",
                );
                with_cookie(see_other("/security"), &token)
            }
            Err(_) => see_other("/login"),
        },
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// The expiry of a new token from the form's choice.
pub(crate) fn expiry(choice: &str, now: u64) -> Result<Option<u64>, String> {
    match choice {
        "never" | "" => Ok(None),
        days => match days.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Ok(Some(now.saturating_add(d * 86_400))),
            _ => Err("Choose when the token expires.".into()),
        },
    }
}

/// The protocols ticked in a token form.
pub(crate) fn scope_of(fields: &super::Fields) -> BTreeSet<Protocol> {
    OFFERED
        .iter()
        .copied()
        .filter(|p| fields.ticked(&format!("scope_{p}")))
        .collect()
}

/// The page that shows a new token's value, once.
pub(crate) fn token_shown(
    current: &Current,
    nav: Nav,
    label: &str,
    value: &str,
    back: &str,
) -> Markup {
    let body = html! {
        div.card {
            p.lead { "The token " strong { (label) } " was created. Copy it now: it is shown only once." }
            div.field {
                label for="token-value" { "Token" }
                div.copy {
                    input #token-value type="text" readonly value=(value) spellcheck="false";
                    button type="button" data-copy="token-value" { "Copy" }
                }
            }
            p.help { "Use it as the password in your client, or as " code { "Authorization: Bearer …" } " with the API." }
            p { a.button href=(back) { "Done" } }
        }
    };
    shell(current, nav, "New access token", None, body)
}

/// `POST /security/tokens`
pub(crate) async fn token_create(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let f = &posted.fields;
    let expires = match expiry(f.get("expires"), web.now()) {
        Ok(e) => e,
        Err(m) => return refused(&web, &current, &m).await,
    };
    let scope = scope_of(f);
    let label = f.trimmed("label").to_string();
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let l = label.clone();
    match blocking(move || auth.create_token(&actor, &name, &l, expires, scope)).await {
        Ok(new) => respond(
            StatusCode::OK,
            token_shown(&current, Nav::Security, &label, &new.value, "/security"),
        ),
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// `POST /security/tokens/{id}/revoke`
pub(crate) async fn token_revoke(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let revoked = blocking(move || {
        let owned = auth.tokens(&actor, Some(&name))?;
        if !owned.iter().any(|t| t.id == id) {
            return Err(crate::auth::AuthError::NotFound {
                what: "token",
                name: id,
            });
        }
        auth.revoke_token(&actor, &id)
    })
    .await;
    match revoked {
        Ok(t) => {
            web.sessions.set_flash(
                &current.token,
                format!("The token {:?} was revoked.", t.label),
            );
            see_other("/security")
        }
        Err(e) => refused(&web, &current, &say(&e)).await,
    }
}

/// `POST /security/sessions/{id}/end`
pub(crate) async fn session_end(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(e) = Actor::session(&current.session).may_manage_credentials() {
        return refused(&web, &current, &say(&e)).await;
    }
    if id == current.id {
        web.sessions.end(&web.auth, &current.token, "signed out");
        return super::without_cookie(see_other("/login?out=1"));
    }
    if web
        .sessions
        .end_by_id(&web.auth, &current.session.account, &id)
    {
        web.sessions
            .set_flash(&current.token, "That session was signed out.");
        see_other("/security")
    } else {
        refused(&web, &current, "There is no such session of yours.").await
    }
}
