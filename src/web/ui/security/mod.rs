//! The security page every user has: two-factor sign-in (enrol, remove,
//! new recovery codes), password, access tokens and active sessions.

mod tokens;
mod totp;

pub(crate) use tokens::{
    OFFERED, expiry, scope_of, scope_text, token_create, token_fields, token_revoke, token_shown,
};
pub(crate) use totp::{
    codes_page_bare, enrol_markup, recovery, totp_cancel, totp_confirm, totp_form, totp_remove,
    totp_replace,
};

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
                    form method="post" action="/security/recovery" data-confirm="Make new recovery codes? Every earlier recovery code stops working at once." {
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

/// Shows the security page again with an error at the top.
async fn refused(web: &Arc<Web>, current: &Current, message: &str) -> Response {
    page(web, current, Some(&format!("!{message}"))).await
}
