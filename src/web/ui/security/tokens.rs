//! Access tokens on the security page (and the token fields the admin
//! pages share).

use super::*;

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
pub(crate) fn scope_of(fields: &crate::web::ui::Fields) -> BTreeSet<Protocol> {
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
