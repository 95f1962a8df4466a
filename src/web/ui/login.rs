//! Login: user name and password, then the code page when the core asks for
//! one, the forced enrolment when the policy demands it, and the enrolment
//! offer when MFA is allowed but not set up. Every stage change moves the
//! session to a new cookie value.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{
    Posted, Signed, Visitor, anonymous, bare, blocking, csrf_field, error_box, maybe_cookie,
    over_rate, respond, say, see_other, with_cookie, without_cookie,
};
use crate::auth::accounts::AccountChange;
use crate::auth::flow::{DenyReason, Login, Step};
use crate::auth::{Actor, AuthError, Method, Protocol};
use crate::web::Web;
use crate::web::extract::Client;
use crate::web::session::{Carrier, PendingEnrolment, Stage, Token};

fn login_page(csrf: &str, user: &str, error: Option<&str>, note: Option<&str>) -> Markup {
    let body = html! {
        div.card {
            h1 { "Sign in" }
            @if let Some(n) = note {
                div.notice.ok role="status" { p { (n) } }
            }
            (error_box(error))
            form method="post" action="/login" {
                (csrf_field(csrf))
                div.field {
                    label for="username" { "User name" }
                    input #username name="username" type="text" required autocomplete="username"
                        autocapitalize="none" spellcheck="false" value=(user) autofocus[user.is_empty()];
                }
                div.field {
                    label for="password" { "Password" }
                    input #password name="password" type="password" required
                        autocomplete="current-password" autofocus[!user.is_empty()];
                }
                div.actions {
                    button.primary type="submit" { "Sign in" }
                }
            }
        }
    };
    bare("Sign in", csrf, body)
}

/// `GET /login`
pub(crate) async fn form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    client: Client,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = web.auth.clone();
    if let Ok(false) = blocking(move || auth.is_claimed()).await {
        return see_other("/setup");
    }
    if let Visitor::Granted(_) = visitor {
        return see_other("/files");
    }
    let note = q.contains_key("out").then_some("You have signed out.");
    match anonymous(&web, &visitor, &client) {
        Ok((csrf, token)) => {
            let user = q.get("user").map_or("", String::as_str);
            maybe_cookie(
                respond(StatusCode::OK, login_page(&csrf, user, None, note)),
                token.as_ref(),
            )
        }
        Err(e) => super::message_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", &say(&e)),
    }
}

/// Moves the browser's session to `stage` under a new value.
fn enter(web: &Web, old: &Token, stage: Stage, client: &Client) -> Result<Token, AuthError> {
    let _ = web.sessions.take(old, web.now(), &web.auth);
    web.sessions.advance(
        &web.auth,
        stage,
        Carrier::Cookie,
        client.ip,
        &client.agent,
        web.now(),
    )
}

/// `POST /login`
pub(crate) async fn password(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let csrf = match &posted.visitor {
        Visitor::Pending { csrf, .. } => csrf.clone(),
        Visitor::Granted(_) => return see_other("/files"),
        Visitor::Nobody => String::new(),
    };
    let user = posted.fields.trimmed("username").to_string();
    let again =
        |status, message: &str| respond(status, login_page(&csrf, &user, Some(message), None));
    if let Some(wait) = over_rate(&web, posted.client.ip) {
        return again(StatusCode::TOO_MANY_REQUESTS, &wait);
    }
    if user.is_empty() || posted.fields.get("password").is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your user name and password.",
        );
    }
    let auth = web.auth.clone();
    let (name, pw, ip) = (
        user.clone(),
        zeroize::Zeroizing::new(posted.fields.get("password").to_string()),
        posted.client.ip,
    );
    let step = match web.auth.admit_hashing().await {
        Some(admission) => {
            blocking(move || {
                let step =
                    Login::new(&name, ip, Protocol::Https).password(&auth, Method::Form, &pw);
                drop(admission);
                Ok(step)
            })
            .await
        }
        None => Ok(Step::Denied(DenyReason::Busy.denied())),
    };
    let (stage, next) = match step {
        Ok(Step::NeedCode(w)) => (Stage::AwaitCode(w), "/login/code"),
        Ok(Step::MustEnrol(w)) => (Stage::MustEnrol(w), "/login/enrol"),
        Ok(Step::Granted(s)) => {
            let next = if s.offer_enrolment {
                "/login/offer"
            } else {
                "/files"
            };
            (Stage::Granted(s), next)
        }
        Ok(Step::Denied(d)) => return again(StatusCode::UNAUTHORIZED, &d.message),
        Ok(Step::Locked(l)) => return again(StatusCode::UNAUTHORIZED, &l.message()),
        Err(e) => return again(StatusCode::INTERNAL_SERVER_ERROR, &say(&e)),
    };
    match enter(&web, &posted.token, stage, &posted.client) {
        Ok(token) => with_cookie(see_other(next), &token),
        Err(e) => again(StatusCode::INTERNAL_SERVER_ERROR, &say(&e)),
    }
}

fn code_page(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        div.card {
            h1 { "Authentication code" }
            p.lead { "Enter the 6-digit code your authenticator app shows for Coffer." }
            (error_box(error))
            form method="post" action="/login/code" {
                (csrf_field(csrf))
                div.field {
                    label for="code" { "Code" }
                    input #code name="code" type="text" required autocomplete="one-time-code"
                        autocapitalize="none" spellcheck="false" maxlength="32" autofocus
                        aria-describedby="code_help";
                    p.help #code_help { "6 digits, or one of your recovery codes." }
                }
                div.actions {
                    button.primary type="submit" { "Continue" }
                    a href="/login" { "Start again" }
                }
            }
            details.explain {
                summary { "Lost your phone? Use a recovery code" }
                p {
                    "When you set up two-factor sign-in you were given ten recovery codes such as "
                    code { "abcd-efgh-ijkl-mnop" } ". Type one of them in the code field instead of "
                    "the 6-digit code. Each recovery code works once; afterwards, set up your "
                    "authenticator again under Security and make new codes."
                }
                p { "No codes left? Ask an administrator to reset your two-factor sign-in." }
            }
        }
    };
    bare("Authentication code", csrf, body)
}

/// `GET /login/code`
pub(crate) async fn code_form(visitor: Visitor) -> Response {
    match visitor {
        Visitor::Pending {
            stage: "await_code",
            csrf,
            ..
        } => respond(StatusCode::OK, code_page(&csrf, None)),
        Visitor::Granted(_) => see_other("/files"),
        other => see_other(other.login_step()),
    }
}

/// `POST /login/code`
pub(crate) async fn code(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let csrf = match &posted.visitor {
        Visitor::Pending {
            stage: "await_code",
            csrf,
            ..
        } => csrf.clone(),
        other => return see_other(other.login_step()),
    };
    if let Some(wait) = over_rate(&web, posted.client.ip) {
        return respond(StatusCode::TOO_MANY_REQUESTS, code_page(&csrf, Some(&wait)));
    }
    let now = web.now();
    let Some(mut taken) = web.sessions.take(&posted.token, now, &web.auth) else {
        return see_other("/login");
    };
    let Stage::AwaitCode(waiting) = std::mem::replace(&mut taken.stage, Stage::Anonymous) else {
        web.sessions.restore(&posted.token, taken);
        return see_other("/login");
    };
    let user = waiting.user().to_string();
    let auth = web.auth.clone();
    let input = zeroize::Zeroizing::new(posted.fields.trimmed("code").to_string());
    let step = blocking(move || Ok(waiting.code_again(&auth, &input))).await;
    let step = match step {
        // A mistyped code: the same login waits for another try (each
        // counted by the lockout), without the password again.
        Ok((Step::Denied(d), Some(again))) => {
            taken.stage = Stage::AwaitCode(again);
            web.sessions.restore(&posted.token, taken);
            let message = format!("{} Try again.", super::sentence(&d.message));
            return respond(StatusCode::UNAUTHORIZED, code_page(&csrf, Some(&message)));
        }
        Ok((step, _)) => Ok(step),
        Err(e) => Err(e),
    };
    let refusal = match step {
        Ok(Step::Granted(s)) => {
            return match web.sessions.advance(
                &web.auth,
                Stage::Granted(s),
                Carrier::Cookie,
                posted.client.ip,
                &posted.client.agent,
                now,
            ) {
                Ok(token) => with_cookie(see_other("/files"), &token),
                Err(_) => see_other("/login"),
            };
        }
        Ok(Step::Denied(d)) => format!(
            "{} Enter your password again, then a new code.",
            super::sentence(&d.message)
        ),
        Ok(Step::Locked(l)) => l.message(),
        Ok(_) => "The login could not continue; please start again.".into(),
        Err(e) => say(&e),
    };
    // The code step is spent: the login starts again with the password,
    // under a new session value.
    match web
        .sessions
        .anonymous(posted.client.ip, &posted.client.agent, now)
    {
        Ok((token, csrf)) => with_cookie(
            respond(
                StatusCode::UNAUTHORIZED,
                login_page(&csrf, &user, Some(&refusal), None),
            ),
            &token,
        ),
        Err(_) => see_other("/login"),
    }
}

/// `GET /login/enrol`: the enrolment the policy demands before entry.
pub(crate) async fn enrol_form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (token, csrf) = match visitor {
        Visitor::Pending {
            stage: "must_enrol",
            token,
            csrf,
        } => (token, csrf),
        Visitor::Granted(_) => return see_other("/files"),
        other => return see_other(other.login_step()),
    };
    let wizard = q.contains_key("setup");
    let pending = match web.sessions.enrolment(&token) {
        Some(p) => p,
        None => match start_enrolment(&web, &token).await {
            Ok(p) => p,
            Err(e) => {
                return super::message_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Two-factor setup failed",
                    &say(&e),
                );
            }
        },
    };
    respond(StatusCode::OK, forced_page(&csrf, &pending, None, wizard))
}

async fn start_enrolment(web: &Arc<Web>, token: &Token) -> Result<PendingEnrolment, AuthError> {
    let now = web.now();
    let taken = web
        .sessions
        .take(token, now, &web.auth)
        .ok_or_else(|| AuthError::Invalid("the login has expired; sign in again".into()))?;
    let auth = web.auth.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let started = match &taken.stage {
            Stage::MustEnrol(w) => w.start(&auth),
            _ => Err(AuthError::Invalid(
                "the login has expired; sign in again".into(),
            )),
        };
        (taken, started)
    })
    .await;
    let Ok((taken, started)) = joined else {
        return Err(AuthError::Invalid(
            "the login has expired; sign in again".into(),
        ));
    };
    web.sessions.restore(token, taken);
    let start = started?;
    let pending = PendingEnrolment {
        secret: start.secret.clone(),
        uri: start.otpauth_uri.clone(),
    };
    web.sessions.set_enrolment(token, Some(pending.clone()));
    Ok(pending)
}

fn forced_page(
    csrf: &str,
    pending: &PendingEnrolment,
    error: Option<&str>,
    wizard: bool,
) -> Markup {
    let body = html! {
        @if wizard {
            (super::setup::steps(2))
        }
        div.card.wide {
            h1 { "Set up two-factor sign-in" }
            @if !wizard {
                p.lead {
                    "Your administrator requires two-factor sign-in for this account. "
                    "Set it up now to continue."
                }
            }
            (super::security::enrol_markup(csrf, pending, "/login/enrol", error, wizard))
        }
    };
    bare("Two-factor sign-in", csrf, body)
}

/// `POST /login/enrol`
pub(crate) async fn enrol(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let csrf = match &posted.visitor {
        Visitor::Pending {
            stage: "must_enrol",
            csrf,
            ..
        } => csrf.clone(),
        other => return see_other(other.login_step()),
    };
    let wizard = posted.fields.ticked("setup");
    let Some(pending) = web.sessions.enrolment(&posted.token) else {
        return see_other("/login/enrol");
    };
    if let Some(wait) = over_rate(&web, posted.client.ip) {
        return respond(
            StatusCode::TOO_MANY_REQUESTS,
            forced_page(&csrf, &pending, Some(&wait), wizard),
        );
    }
    let now = web.now();
    let Some(mut taken) = web.sessions.take(&posted.token, now, &web.auth) else {
        return see_other("/login");
    };
    let Stage::MustEnrol(waiting) = std::mem::replace(&mut taken.stage, Stage::Anonymous) else {
        web.sessions.restore(&posted.token, taken);
        return see_other("/login");
    };
    let auth = web.auth.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").to_string());
    let joined = tokio::task::spawn_blocking(move || waiting.confirm(&auth, &code)).await;
    match joined {
        Ok(Ok((session, codes))) => {
            let account = session.account.clone();
            match web.sessions.advance(
                &web.auth,
                Stage::Granted(session),
                Carrier::Cookie,
                posted.client.ip,
                &posted.client.agent,
                now,
            ) {
                Ok(token) => {
                    let page = super::security::codes_page_bare(&account, &codes, wizard);
                    with_cookie(respond(StatusCode::OK, page), &token)
                }
                Err(_) => see_other("/login"),
            }
        }
        Ok(Err((waiting, e))) => {
            taken.stage = Stage::MustEnrol(*waiting);
            web.sessions.restore(&posted.token, taken);
            respond(
                StatusCode::BAD_REQUEST,
                forced_page(&csrf, &pending, Some(&say(&e)), wizard),
            )
        }
        Err(_) => see_other("/login"),
    }
}

/// `GET /login/offer`: MFA is allowed and not set up.
pub(crate) async fn offer(signed: Signed) -> Response {
    let current = &signed.current;
    let body = html! {
        div.card.wide {
            h1 { "Protect your account with a second step" }
            p.lead {
                "With two-factor sign-in, a stolen password is not enough: Coffer also asks for a "
                "code from an authenticator app on your phone."
            }
            div.choices {
                a.button.primary href="/security/totp" { "Set up now" }
                a.button href="/files" { "Skip this time" }
                form method="post" action="/login/offer" {
                    (csrf_field(&current.csrf))
                    button type="submit" name="choice" value="never" { "Don't ask again" }
                }
            }
            p.help { "You can set it up any time under Security." }
        }
    };
    respond(
        StatusCode::OK,
        bare("Two-factor sign-in", &current.csrf, body),
    )
}

/// `POST /login/offer`: "don't ask again".
pub(crate) async fn offer_choice(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let changed = blocking(move || {
        auth.update_account(
            &actor,
            &name,
            AccountChange {
                mfa_skip: Some(true),
                ..AccountChange::default()
            },
        )
    })
    .await;
    if let Err(e) = changed {
        return super::message_page(StatusCode::BAD_REQUEST, "Not saved", &say(&e));
    }
    // The account changed, which ends its sessions: continue under a new value.
    match super::reissue(&web, &current, &posted.client) {
        Ok(token) => {
            web.sessions.set_flash(
                &token,
                "We won't ask again. You can set up two-factor sign-in any time under Security.",
            );
            with_cookie(see_other("/files"), &token)
        }
        Err(_) => see_other("/login"),
    }
}

/// `POST /logout`
pub(crate) async fn logout(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    web.sessions.end(&web.auth, &posted.token, "signed out");
    without_cookie(see_other("/login?out=1"))
}
