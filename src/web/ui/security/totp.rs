//! Two-factor sign-in on the security page: enrolment, replacement,
//! removal and recovery codes.

use super::*;

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
            (crate::web::ui::setup::steps(3))
        }
        div.card.wide {
            h1 { "Save your recovery codes" }
            (codes_markup(account, codes, "/files"))
        }
    };
    crate::web::ui::bare("Recovery codes", "", body)
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
            (crate::web::ui::setup::steps(2))
            div.card.wide {
                h1 { (title) }
                p.lead { "The box is yours. Now protect the owner account with a code from your phone, so a stolen password alone cannot open it." }
                (enrol_markup(&current.csrf, pending, "/security/totp", error, wizard))
            }
        };
        return crate::web::ui::bare(title, &current.csrf, body);
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
    if let Some(wait) = crate::web::ui::over_rate(&web, posted.client.ip) {
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
    if let Some(wait) = crate::web::ui::over_rate(&web, posted.client.ip) {
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
        Ok(codes) => match crate::web::ui::reissue(&web, &current, &posted.client) {
            Ok(token) => {
                let fresh = crate::web::ui::fresh(&web, &token)
                    .unwrap_or_else(|| Box::new(current.clone()));
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
    if let Some(wait) = crate::web::ui::over_rate(&web, posted.client.ip) {
        return refused(&web, &current, &wait).await;
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let name = current.session.account.clone();
    let code = zeroize::Zeroizing::new(posted.fields.trimmed("code").to_string());
    match blocking(move || auth.mfa_reset(&actor, &name, Some(&code))).await {
        Ok(()) => match crate::web::ui::reissue(&web, &current, &posted.client) {
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
    if let Some(wait) = crate::web::ui::over_rate(&web, posted.client.ip) {
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
