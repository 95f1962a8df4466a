//! The first-boot claim wizard: claim code, owner name and password, then
//! TOTP enrolment and recovery codes (the enrolment pages are the security
//! pages', shown with the wizard's steps). Once the box is claimed the
//! wizard is gone: `/setup` only redirects to the login.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{
    Posted, Visitor, anonymous, bare, blocking, csrf_field, error_box, maybe_cookie, over_rate,
    respond, say, see_other, with_cookie,
};
use crate::auth::flow::{Login, Step};
use crate::auth::{Actor, AuthError, Method, Protocol};
use crate::web::Web;
use crate::web::extract::Client;
use crate::web::session::{Carrier, Stage};

/// The wizard's steps, for the indicator at the top of each page.
pub(crate) fn steps(at: usize) -> Markup {
    let names = ["Claim the box", "Two-factor sign-in", "Recovery codes"];
    html! {
        ol.steps aria-label="Setup steps" {
            @for (i, name) in names.iter().enumerate() {
                @let n = i + 1;
                @if n == at {
                    li.now aria-current="step" { span.n { (n) } span { (name) } }
                } @else if n < at {
                    li.done { span.n { "✓" } span { (name) } }
                } @else {
                    li { span.n { (n) } span { (name) } }
                }
            }
        }
    }
}

/// What the claim form shows again after a refusal.
#[derive(Default)]
struct Retry<'a> {
    error: Option<String>,
    username: &'a str,
    claim_code: &'a str,
    /// The zxcvbn score (0-4) of a refused password.
    strength: Option<u8>,
    /// The policy's minimum password length.
    min_length: usize,
}

/// The policy's minimum password length, for the form's `minlength` and
/// its help text (the policy's default when the store cannot say).
async fn min_length(web: &Arc<Web>) -> usize {
    let auth = web.auth.clone();
    blocking(move || auth.claim_min_password_length())
        .await
        .unwrap_or_else(|_| crate::auth::policy::PasswordPolicy::default().min_length)
}

fn claim_page(csrf: &str, retry: &Retry<'_>) -> Markup {
    let username = if retry.username.is_empty() {
        "owner"
    } else {
        retry.username
    };
    let body = html! {
        (steps(1))
        div.card {
            h1 { "Welcome to Coffer" }
            p.lead { "Claim this box: you become its owner and system administrator." }
            (error_box(retry.error.as_deref()))
            @if let Some(score) = retry.strength {
                (strength_meter(score))
            }
            form method="post" action="/setup" {
                (csrf_field(csrf))
                div.field {
                    label for="claim_code" { "Claim code" }
                    input #claim_code name="claim_code" type="text" required autocomplete="off"
                        autocapitalize="characters" spellcheck="false" placeholder="XXXX-XXXX-XXXX"
                        value=(retry.claim_code) aria-describedby="claim_code_help";
                    p.help #claim_code_help {
                        "The one-time code the box printed in its log, on its console, or with "
                        code { "coffer status" } "."
                    }
                }
                div.field {
                    label for="username" { "Owner's user name" }
                    input #username name="username" type="text" required autocomplete="username"
                        maxlength="64" autocapitalize="none" spellcheck="false" value=(username)
                        aria-describedby="username_help";
                    p.help #username_help { "Letters, digits, '.', '-', '_' and '@'; not starting with a dot." }
                }
                div.field {
                    label for="password" { "Password" }
                    input #password name="password" type="password" required autocomplete="new-password"
                        minlength=(retry.min_length) aria-describedby="password_help";
                    p.help #password_help {
                        "At least " (retry.min_length) " characters. A long passphrase is best: several unrelated words. Any characters are allowed."
                    }
                }
                div.field {
                    label for="password2" { "Password again" }
                    input #password2 name="password2" type="password" required autocomplete="new-password";
                }
                div.actions {
                    button.primary type="submit" { "Claim this box" }
                }
            }
        }
    };
    bare("Set up", csrf, body)
}

/// The strength estimate of a refused password, as a meter and in words.
fn strength_meter(score: u8) -> Markup {
    let word = match score {
        0 => "very weak",
        1 => "weak",
        2 => "fair",
        3 => "strong",
        _ => "very strong",
    };
    html! {
        div.strength {
            label for="strength" { "Strength of that password: " strong { (word) } " (" (score) " of 4)" }
            meter #strength min="0" max="4" low="2" high="3" optimum="4" value=(score) { (score) " of 4" }
        }
    }
}

/// `GET /setup`
pub(crate) async fn form(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    client: Client,
) -> Response {
    let auth = web.auth.clone();
    match blocking(move || auth.is_claimed()).await {
        Ok(false) => {}
        Ok(true) => return see_other("/login"),
        Err(e) => return super::message_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", &say(&e)),
    }
    let retry = Retry {
        min_length: min_length(&web).await,
        ..Retry::default()
    };
    match anonymous(&web, &visitor, &client) {
        Ok((csrf, token)) => maybe_cookie(
            respond(StatusCode::OK, claim_page(&csrf, &retry)),
            token.as_ref(),
        ),
        Err(e) => super::message_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", &say(&e)),
    }
}

/// `POST /setup`: claims the box, then signs the owner in and goes on to
/// the enrolment.
pub(crate) async fn claim(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let f = &posted.fields;
    let csrf = match &posted.visitor {
        Visitor::Pending { csrf, .. } => csrf.clone(),
        Visitor::Granted(c) => c.csrf.clone(),
        Visitor::Nobody => String::new(),
    };
    let auth = web.auth.clone();
    if let Ok(true) = blocking(move || auth.is_claimed()).await {
        return see_other("/login");
    }
    let mut retry = Retry {
        username: f.trimmed("username"),
        claim_code: f.trimmed("claim_code"),
        min_length: min_length(&web).await,
        ..Retry::default()
    };
    let refuse = |retry: &Retry<'_>, status| respond(status, claim_page(&csrf, retry));
    if let Some(wait) = over_rate(&web, posted.client.ip) {
        retry.error = Some(wait);
        return refuse(&retry, StatusCode::TOO_MANY_REQUESTS);
    }
    let password = f.get("password").to_string();
    if retry.username.is_empty() || retry.claim_code.is_empty() || password.is_empty() {
        retry.error = Some("Fill in the claim code, a user name and a password.".into());
        return refuse(&retry, StatusCode::BAD_REQUEST);
    }
    if password != f.get("password2") {
        retry.error = Some("The two passwords differ; type the same password twice.".into());
        return refuse(&retry, StatusCode::BAD_REQUEST);
    }
    let auth = web.auth.clone();
    let actor = Actor {
        account: None,
        protocol: "https",
        address: Some(posted.client.ip),
        access_token: None,
    };
    let (code, user, pw) = (
        retry.claim_code.to_string(),
        retry.username.to_string(),
        zeroize::Zeroizing::new(password.clone()),
    );
    let ip = posted.client.ip;
    let claimed = blocking(move || {
        auth.claim_with_code(&actor, &code, &user, &pw, None)?;
        Ok(Login::new(&user, ip, Protocol::Https).password(&auth, Method::Form, &pw))
    })
    .await;
    let step = match claimed {
        Ok(step) => step,
        Err(AuthError::AlreadyClaimed) => return see_other("/login"),
        Err(e) => {
            if let AuthError::PasswordRefused(_) = e {
                let estimate = zxcvbn::zxcvbn(&password, &[retry.username, "coffer"]);
                retry.strength = Some(u8::from(estimate.score()));
            }
            retry.error = Some(say(&e));
            let status = match e {
                AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            return refuse(&retry, status);
        }
    };
    // The owner exists; sign them in under a new session value.
    let (stage, next) = match step {
        Step::Granted(session) => (Stage::Granted(session), "/security/totp?setup=1"),
        Step::MustEnrol(waiting) => (Stage::MustEnrol(waiting), "/login/enrol?setup=1"),
        _ => return see_other("/login"),
    };
    web.sessions.end(&web.auth, &posted.token, "claimed");
    match web.sessions.advance(
        &web.auth,
        stage,
        Carrier::Cookie,
        posted.client.ip,
        &posted.client.agent,
        web.now(),
    ) {
        Ok(token) => with_cookie(see_other(next), &token),
        Err(_) => see_other("/login"),
    }
}
