//! Administration pages: accounts, groups, policy and the audit log (for
//! admins), and the system page (for the system administrator). Every
//! change goes to the core with the caller as actor; the core decides
//! whether they may.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::security::{OFFERED, expiry, flash, scope_of, scope_text, token_fields, token_shown};
use super::{
    Nav, Posted, Signed, blocking, bytes, csrf_field, enc, error_box, forbidden, prose, respond,
    say, see_other, sentence, shell, when, with_cookie,
};
use crate::auth::accounts::{AccountChange, AccountView, NewAccount, new_group};
use crate::auth::policy::Policy;
use crate::auth::{Actor, AuthError, Group, Protocol, Role};
use crate::web::Web;
use crate::web::extract::Client;
use crate::web::session::Current;

fn role_name(role: Role) -> &'static str {
    match role {
        Role::SystemAdmin => "System administrator",
        Role::Admin => "Administrator",
        Role::User => "User",
    }
}

/// The admin check every page makes first, asked of the core (whose
/// methods the page then calls check it again).
fn admin_only(current: &Current) -> Result<(), Box<Response>> {
    match Actor::session(&current.session).may_administer_accounts() {
        Ok(()) => Ok(()),
        Err(_) => Err(Box::new(forbidden(current, "it is for administrators"))),
    }
}

/// After a change: back to `location` with a message. When the change
/// ended the caller's own session (the account's credentials or its group
/// changed), a change to someone else continues under a new value; a change
/// to the caller's own account asks them to sign in again, so no session
/// outlives a change of its own role or state.
fn back(
    web: &Web,
    current: &Current,
    client: &Client,
    touched_self: bool,
    message: &str,
    location: &str,
) -> Response {
    if super::fresh(web, &current.token).is_some() {
        web.sessions.set_flash(&current.token, message);
        return see_other(location);
    }
    if touched_self {
        return super::without_cookie(see_other("/login"));
    }
    match super::reissue(web, current, client) {
        Ok(token) => {
            web.sessions.set_flash(&token, message);
            with_cookie(see_other(location), &token)
        }
        Err(_) => see_other("/login"),
    }
}

fn failed(web: &Web, current: &Current, e: &AuthError, location: &str) -> Response {
    web.sessions
        .set_flash(&current.token, format!("!{}", say(e)));
    see_other(location)
}

// ---------------------------------------------------------------------------
// Users.

/// `GET /admin/users`
pub(crate) async fn users(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let loaded = blocking(move || {
        Ok((
            auth.accounts(&actor)?,
            auth.groups_for(&actor)?,
            auth.locks(&actor)?,
        ))
    })
    .await;
    let (accounts, groups, locks) = match loaded {
        Ok(x) => x,
        Err(e) => return failed_page(current, Nav::Users, "Users", &e),
    };
    let csrf = current.csrf.as_str();
    let body = html! {
        @if !locks.code_entry.is_empty() || !locks.addresses.is_empty() {
            section.card #locks role="alert" aria-labelledby="locks-h" {
                h2 #locks-h { "Locks" }
                @for (name, until) in &locks.code_entry {
                    div.lock {
                        p {
                            "Code entry for " strong { (name) } " is locked until " (when(*until))
                            ": too many wrong authentication codes, from any address. "
                            "Whoever typed them knew the password; consider changing it."
                        }
                        form method="post" action=(format!("/admin/users/{}", enc(name))) {
                            (csrf_field(csrf))
                            input type="hidden" name="action" value="unlock";
                            button type="submit" { "Unlock " (name) }
                        }
                    }
                }
                @for (address, until) in &locks.addresses {
                    div.lock {
                        p {
                            "The address " code { (address) } " is locked for every account until "
                            (when(*until)) ": too many failed sign-ins from there."
                        }
                        form method="post" action="/admin/locks" {
                            (csrf_field(csrf))
                            input type="hidden" name="address" value=(address);
                            button type="submit" { "Unlock " (address) }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="list-h" {
            h2 #list-h { "Accounts" }
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Role" } th.hide-narrow scope="col" { "Group" }
                        th scope="col" { "Two-factor" } th scope="col" { "State" } th.hide-narrow.num scope="col" { "Tokens" }
                    } }
                    tbody {
                        @for a in &accounts {
                            tr {
                                td { a href=(format!("/admin/users/{}", enc(&a.account.name))) { (a.account.name) } }
                                td { (role_name(a.account.role)) }
                                td.hide-narrow { (a.account.group.as_deref().unwrap_or("—")) }
                                td { (mfa_badge(a)) }
                                td { (state_badge(a)) }
                                td.hide-narrow.num { (a.tokens) }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="new-h" {
            h2 #new-h { "New account" }
            form method="post" action="/admin/users" {
                (csrf_field(csrf))
                div.grid {
                    div.field {
                        label for="username" { "User name" }
                        input #username name="username" type="text" required maxlength="64" autocomplete="off" autocapitalize="none" spellcheck="false" aria-describedby="username_help";
                        p.help #username_help { "Letters, digits, '.', '-', '_' and '@'; not starting with a dot." }
                    }
                    div.field {
                        label for="password" { "Password" }
                        input #password name="password" type="password" autocomplete="new-password" aria-describedby="pw_help";
                        p.help #pw_help { "Leave empty for an account that signs in with SSH keys or access tokens only." }
                    }
                    div.field {
                        label for="role" { "Role" }
                        select #role name="role" {
                            option value="user" selected { "User: files only" }
                            option value="admin" { "Administrator: manages accounts" }
                            @if current.session.role == Role::SystemAdmin {
                                option value="system_admin" { "System administrator: everything" }
                            }
                        }
                    }
                    div.field {
                        label for="group" { "Group" }
                        select #group name="group" {
                            option value="" { "(none)" }
                            @for g in &groups { option value=(g.name) { (g.name) } }
                        }
                    }
                    div.field {
                        label for="home" { "Home folder" }
                        input #home name="home" type="text" placeholder="from the group, else the user name" spellcheck="false";
                    }
                }
                div.field {
                    label for="public_keys" { "SSH public keys" }
                    textarea #public_keys name="public_keys" rows="3" spellcheck="false" placeholder="ssh-ed25519 AAAA… comment (one per line)" {}
                }
                button.primary type="submit" { "Create account" }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(current, Nav::Users, "Users", message.as_deref(), body),
    )
}

fn mfa_badge(a: &AccountView) -> Markup {
    html! {
        @if a.mfa.enrolled { span.badge.good { "on" } }
        @else if a.account.mfa_exempt { span.badge { "exempt" } }
        @else if a.account.mfa_skip { span.badge { "declined" } }
        @else { span.badge.warn { "off" } }
    }
}

fn state_badge(a: &AccountView) -> Markup {
    html! {
        @if a.account.disabled { span.badge.bad { "disabled" } }
        @else if !a.locked.is_empty() || a.code_entry_locked_until.is_some() { span.badge.bad { "locked" } }
        @else { span.badge.good { "active" } }
    }
}

fn failed_page(current: &Current, nav: Nav, title: &str, e: &AuthError) -> Response {
    let status = match e {
        AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        AuthError::NotFound { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    respond(
        status,
        shell(current, nav, title, None, error_box(Some(&say(e)))),
    )
}

fn key_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `POST /admin/users`
pub(crate) async fn user_create(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = admin_only(&current) {
        return *r;
    }
    let f = &posted.fields;
    let role: Role = match f.get("role").parse() {
        Ok(r) => r,
        Err(e) => return failed(&web, &current, &AuthError::Invalid(e), "/admin/users"),
    };
    let name = f.trimmed("username").to_string();
    let new = NewAccount {
        name: name.clone(),
        role,
        group: optional(f.get("group")),
        password: optional(f.get("password")).map(zeroize::Zeroizing::new),
        home: optional(f.get("home")),
        public_keys: key_lines(f.get("public_keys")),
    };
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    match blocking(move || auth.create_account(&actor, new)).await {
        Ok(_) => back(
            &web,
            &current,
            &posted.client,
            false,
            &format!("Account {name:?} created."),
            &format!("/admin/users/{}", enc(&name)),
        ),
        Err(e) => failed(&web, &current, &e, "/admin/users"),
    }
}

/// `GET /admin/users/{name}`
pub(crate) async fn user(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let n = name.clone();
    let loaded = blocking(move || {
        // A session opened with an access token sees no tokens (it may
        // not manage them); the rest of the page stays usable.
        let tokens = match actor.may_manage_credentials() {
            Ok(()) => auth.tokens(&actor, Some(&n))?,
            Err(_) => Vec::new(),
        };
        Ok((auth.account(&actor, &n)?, tokens, auth.groups_for(&actor)?))
    })
    .await;
    let (a, tokens, groups) = match loaded {
        Ok(x) => x,
        Err(e) => return failed_page(current, Nav::Users, "User", &e),
    };
    let csrf = current.csrf.as_str();
    let action = format!("/admin/users/{}", enc(&name));
    let is_self = a.account.name == current.session.account;
    let now = web.now();
    let form_for = |act: &str, label: &str, class: &str, confirm: Option<String>| -> Markup {
        html! {
            form method="post" action=(action) data-confirm=[confirm] {
                (csrf_field(csrf))
                input type="hidden" name="action" value=(act);
                button class=(class) type="submit" { (label) }
            }
        }
    };
    let body = html! {
        p { a href="/admin/users" { "← All accounts" } }
        section.card aria-labelledby="sum-h" {
            h2 #sum-h { "Overview" }
            dl.facts {
                dt { "Role" } dd { (role_name(a.account.role)) }
                dt { "Group" } dd { (a.account.group.as_deref().unwrap_or("none")) }
                dt { "State" } dd { (state_badge(&a)) }
                dt { "Home folder" } dd { code { "/" (a.home_folder) } }
                dt { "Files" } dd {
                    (if a.permissions.write { "read and write" } else { "read only" })
                    (if a.permissions.delete { "" } else { ", no delete" })
                }
                dt { "Password" } dd { (if a.has_password { "set" } else { "none (keys or tokens only)" }) }
                dt { "Two-factor" } dd {
                    (mfa_badge(&a))
                    @if a.mfa.enrolled { " " (a.mfa.recovery_codes_left) " recovery codes left" }
                    @if a.mfa.pending { " (an enrolment is waiting for confirmation)" }
                }
                dt { "Created" } dd { (when(a.account.created_at)) }
                @for (address, until) in &a.locked {
                    dt { "Locked" } dd { "for " (address) " until " (when(*until)) }
                }
                @if let Some(until) = a.code_entry_locked_until {
                    dt { "Locked" } dd { "code entry, from every address, until " (when(until)) " (too many wrong codes)" }
                }
            }
            div.buttons {
                @if !is_self {
                    @if a.account.disabled {
                        (form_for("enable", "Enable", "", None))
                    } @else {
                        (form_for("disable", "Disable", "danger", Some(format!("Disable {:?}? Their sessions end at once.", a.account.name))))
                    }
                }
                @if !a.locked.is_empty() || a.code_entry_locked_until.is_some() {
                    (form_for("unlock", "Unlock", "", None))
                }
                @if !is_self && (a.mfa.enrolled || a.mfa.pending) {
                    (form_for("reset_mfa", "Reset two-factor", "danger", Some(format!("Remove the authenticator and recovery codes of {:?}?", a.account.name))))
                }
                @if a.account.mfa_exempt {
                    (form_for("unexempt", "End MFA exemption", "", None))
                } @else {
                    (form_for("exempt", "Exempt from required MFA", "", None))
                }
            }
            @if is_self {
                p.help { "Your own two-factor sign-in and password are on the " a href="/security" { "Security" } " page." }
            }
        }
        section.card aria-labelledby="set-h" {
            h2 #set-h { "Settings" }
            form method="post" action=(action) {
                (csrf_field(csrf))
                input type="hidden" name="action" value="update";
                div.grid {
                    div.field {
                        label for="role" { "Role" }
                        select #role name="role" {
                            @for r in Role::ALL {
                                @if r != Role::SystemAdmin || current.session.role == Role::SystemAdmin || a.account.role == Role::SystemAdmin {
                                    option value=(r.to_string()) selected[r == a.account.role] { (role_name(r)) }
                                }
                            }
                        }
                    }
                    div.field {
                        label for="group" { "Group" }
                        select #group name="group" {
                            option value="" selected[a.account.group.is_none()] { "(none)" }
                            @for g in &groups {
                                option value=(g.name) selected[a.account.group.as_deref() == Some(g.name.as_str())] { (g.name) }
                            }
                        }
                    }
                    div.field {
                        label for="home" { "Home folder" }
                        input #home name="home" type="text" value=(a.account.home.as_deref().unwrap_or("")) placeholder="from the group" spellcheck="false";
                    }
                    fieldset.field {
                        legend { "Files" }
                        div.check { input #read_only type="checkbox" name="read_only" value="1" checked[a.account.read_only]; label for="read_only" { "Read only" } }
                        div.check { input #no_delete type="checkbox" name="no_delete" value="1" checked[a.account.no_delete]; label for="no_delete" { "No delete" } }
                    }
                }
                div.field {
                    label for="public_keys" { "SSH public keys (one per line)" }
                    textarea #public_keys name="public_keys" rows="3" spellcheck="false" { (a.public_keys.join("\n")) }
                }
                div.field {
                    label for="new_password" { "New password" }
                    input #new_password name="new_password" type="password" autocomplete="new-password" aria-describedby="np_help";
                    p.help #np_help { "Leave empty to keep the current one. A new password signs the account out everywhere." }
                }
                button.primary type="submit" { "Save settings" }
            }
        }
        section.card aria-labelledby="tok-h" {
            h2 #tok-h { "Access tokens" }
            @if tokens.is_empty() {
                p.empty { "No access tokens." }
            } @else {
                div.table-wrap {
                    table.stack {
                        thead { tr { th scope="col" { "Label" } th scope="col" { "Valid for" } th scope="col" { "Expires" } th.hide-narrow scope="col" { "Last used" } th { span.sr { "Actions" } } } }
                        tbody {
                            @for t in &tokens {
                                tr {
                                    td { strong { (t.label) } }
                                    td data-label="Valid for" { (scope_text(&t.scope)) }
                                    td data-label="Expires" { @match t.expires_at { Some(e) if e <= now => span.badge.bad { "expired" }, Some(e) => (when(e)), None => "never" } }
                                    td.hide-narrow data-label="Last used" { (t.last_used.map(when).unwrap_or_else(|| "never".into())) }
                                    td {
                                        form method="post" action=(action) data-confirm=(format!("Revoke the token {:?}?", t.label)) {
                                            (csrf_field(csrf))
                                            input type="hidden" name="action" value="revoke_token";
                                            input type="hidden" name="id" value=(t.id);
                                            button.small.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { "Create a token for this account" }
                form method="post" action=(action) {
                    (csrf_field(csrf))
                    input type="hidden" name="action" value="create_token";
                    (token_fields())
                    button type="submit" { "Create token" }
                }
            }
        }
        section.card aria-labelledby="ren-h" {
            h2 #ren-h { "Rename account" }
            p.help { "Its password, two-factor sign-in, keys, tokens and group follow the new name, and so does a home folder made from the name. The account's sessions end." }
            form method="post" action=(action) {
                (csrf_field(csrf))
                input type="hidden" name="action" value="rename";
                div.field {
                    label for="new_name" { "New user name" }
                    input #new_name name="new_name" type="text" required maxlength="64" spellcheck="false" autocomplete="off";
                }
                button type="submit" { "Rename" }
            }
        }
        @if !is_self {
            section.card.danger-zone aria-labelledby="del-h" {
                h2 #del-h { "Remove account" }
                p.help { "Removes the account with its credentials and tokens. Its files stay on the disk." }
                (form_for("delete", "Remove account", "danger", Some(format!("Remove the account {:?}?", a.account.name))))
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(
            current,
            Nav::Users,
            &format!("User {}", a.account.name),
            message.as_deref(),
            body,
        ),
    )
}

/// `POST /admin/users/{name}`: one of the page's actions.
pub(crate) async fn user_action(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    posted: Posted,
) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = admin_only(&current) {
        return *r;
    }
    let f = &posted.fields;
    let page = format!("/admin/users/{}", enc(&name));
    let is_self = name == current.session.account;
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let n = name.clone();
    let change = |c: AccountChange| {
        let (auth, actor, n) = (auth.clone(), actor.clone(), n.clone());
        async move { blocking(move || auth.update_account(&actor, &n, c).map(|_| ())).await }
    };
    let (result, message, location) = match f.get("action") {
        "disable" => (
            change(AccountChange {
                disabled: Some(true),
                ..AccountChange::default()
            })
            .await,
            format!("{name:?} is disabled; their sessions ended."),
            page.clone(),
        ),
        "enable" => (
            change(AccountChange {
                disabled: Some(false),
                ..AccountChange::default()
            })
            .await,
            format!("{name:?} is enabled."),
            page.clone(),
        ),
        "exempt" => (
            change(AccountChange {
                mfa_exempt: Some(true),
                ..AccountChange::default()
            })
            .await,
            format!("{name:?} is exempt from required two-factor sign-in."),
            page.clone(),
        ),
        "unexempt" => (
            change(AccountChange {
                mfa_exempt: Some(false),
                ..AccountChange::default()
            })
            .await,
            format!("{name:?} is no longer exempt."),
            page.clone(),
        ),
        "unlock" => (
            blocking(move || auth.unlock(&actor, &n).map(|_| ())).await,
            format!("{name:?} is unlocked."),
            page.clone(),
        ),
        "reset_mfa" if !is_self => (
            blocking(move || auth.mfa_reset(&actor, &n, None)).await,
            format!("The two-factor sign-in of {name:?} was reset; they can set it up again."),
            page.clone(),
        ),
        "delete" if !is_self => (
            blocking(move || auth.remove_account(&actor, &n)).await,
            format!("The account {name:?} was removed."),
            "/admin/users".to_string(),
        ),
        "rename" => {
            let new = f.trimmed("new_name").to_string();
            let m = new.clone();
            (
                blocking(move || auth.rename_account(&actor, &n, &m).map(|_| ())).await,
                format!("{name:?} is now {new:?}; their sessions ended."),
                format!("/admin/users/{}", enc(&new)),
            )
        }
        "revoke_token" => {
            let id = f.get("id").to_string();
            let revoked = blocking(move || {
                let owned = auth.tokens(&actor, Some(&n))?;
                if !owned.iter().any(|t| t.id == id) {
                    return Err(AuthError::NotFound {
                        what: "token",
                        name: id,
                    });
                }
                auth.revoke_token(&actor, &id).map(|_| ())
            })
            .await;
            (revoked, "The token was revoked.".to_string(), page.clone())
        }
        "create_token" => {
            let expires = match expiry(f.get("expires"), web.now()) {
                Ok(e) => e,
                Err(m) => return failed(&web, &current, &AuthError::Invalid(m), &page),
            };
            let scope = scope_of(f);
            let label = f.trimmed("label").to_string();
            let l = label.clone();
            return match blocking(move || auth.create_token(&actor, &n, &l, expires, scope)).await {
                Ok(new) => respond(
                    StatusCode::OK,
                    token_shown(&current, Nav::Users, &label, &new.value, &page),
                ),
                Err(e) => failed(&web, &current, &e, &page),
            };
        }
        "update" => {
            let role: Role = match f.get("role").parse() {
                Ok(r) => r,
                Err(e) => return failed(&web, &current, &AuthError::Invalid(e), &page),
            };
            let c = AccountChange {
                role: Some(role),
                group: Some(optional(f.get("group"))),
                home: Some(optional(f.get("home"))),
                read_only: Some(f.ticked("read_only")),
                no_delete: Some(f.ticked("no_delete")),
                ..AccountChange::default()
            };
            let keys = key_lines(f.get("public_keys"));
            let password = optional(f.get("new_password")).map(zeroize::Zeroizing::new);
            let updated = blocking(move || {
                // Only what differs is changed, so an unchanged form does
                // not end the account's sessions.
                let before = auth.account(&actor, &n)?;
                let c = AccountChange {
                    role: c.role.filter(|r| *r != before.account.role),
                    group: c.group.filter(|g| *g != before.account.group),
                    home: c.home.filter(|h| *h != before.account.home),
                    read_only: c.read_only.filter(|v| *v != before.account.read_only),
                    no_delete: c.no_delete.filter(|v| *v != before.account.no_delete),
                    ..AccountChange::default()
                };
                let keys = (keys != before.public_keys).then_some(keys);
                if c.is_empty() && keys.is_none() && password.is_none() {
                    return Ok(());
                }
                auth.update_account_fully(
                    &actor,
                    &n,
                    c,
                    password.as_deref().map(|p| p.as_str()),
                    keys,
                    None,
                )
                .map(|_| ())
            })
            .await;
            (updated, "Settings saved.".to_string(), page.clone())
        }
        _ => {
            return failed(
                &web,
                &current,
                &AuthError::Invalid("unknown action".into()),
                &page,
            );
        }
    };
    match result {
        Ok(()) => back(&web, &current, &posted.client, is_self, &message, &location),
        Err(e) => failed(&web, &current, &e, &page),
    }
}

/// `POST /admin/locks`: clears the lock of an address (`address`).
pub(crate) async fn unlock_address(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = admin_only(&current) {
        return *r;
    }
    let page = "/admin/users";
    let text = posted.fields.get("address").to_string();
    let address = match crate::address::parse(&text) {
        Ok(a) => a,
        Err(e) => return failed(&web, &current, &AuthError::Invalid(e), page),
    };
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    match blocking(move || auth.unlock_address(&actor, address)).await {
        Ok(_) => {
            let message = format!("{} is unlocked.", crate::address::describe(address));
            back(&web, &current, &posted.client, false, &message, page)
        }
        Err(e) => failed(&web, &current, &e, page),
    }
}

// ---------------------------------------------------------------------------
// Groups.

/// `GET /admin/groups`
pub(crate) async fn groups(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let groups = match blocking(move || auth.groups_for(&actor)).await {
        Ok(g) => g,
        Err(e) => return failed_page(current, Nav::Groups, "Groups", &e),
    };
    let csrf = current.csrf.as_str();
    let body = html! {
        p.lead { "Members of a group share its settings: whether they may sign in, their home folder template, file permissions, password changes and allowed addresses." }
        @if groups.is_empty() {
            div.card { p.empty { "No groups yet." } }
        }
        @for g in &groups {
            section.card aria-label=(format!("Group {}", g.name)) {
                h2 { (g.name) " " @if g.enabled { span.badge.good { "enabled" } } @else { span.badge.bad { "disabled" } } }
                (group_form(csrf, Some(g)))
                form.remove-group method="post" action="/admin/groups" data-confirm=(format!("Remove the group {:?}?", g.name)) {
                    (csrf_field(csrf))
                    input type="hidden" name="action" value="delete";
                    input type="hidden" name="name" value=(g.name);
                    button.small.danger type="submit" { "Remove group" }
                }
            }
        }
        section.card aria-labelledby="newg-h" {
            h2 #newg-h { "New group" }
            (group_form(csrf, None))
        }
    };
    respond(
        StatusCode::OK,
        shell(current, Nav::Groups, "Groups", message.as_deref(), body),
    )
}

fn nets(list: &[ipnet::IpNet]) -> String {
    list.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_form(csrf: &str, g: Option<&Group>) -> Markup {
    let fresh = new_group("");
    let g = g.unwrap_or(&fresh);
    let new = g.name.is_empty();
    let id = |field: &str| {
        if new {
            format!("new_{field}")
        } else {
            format!("{}_{field}", g.name)
        }
    };
    html! {
        form method="post" action="/admin/groups" {
            (csrf_field(csrf))
            input type="hidden" name="action" value=(if new { "create" } else { "update" });
            div.grid {
                @if new {
                    div.field {
                        label for=(id("name")) { "Name" }
                        input id=(id("name")) name="name" type="text" required spellcheck="false";
                    }
                } @else {
                    input type="hidden" name="name" value=(g.name);
                }
                div.field {
                    label for=(id("home")) { "Home folder template" }
                    input id=(id("home")) name="home_template" type="text" value=(g.home_template) spellcheck="false";
                    p.help { code { "${USER}" } " becomes the user name." }
                }
                div.field {
                    label for=(id("allow")) { "Allowed addresses" }
                    input id=(id("allow")) name="ip_allow" type="text" value=(nets(&g.ip_allow)) placeholder="any" spellcheck="false";
                }
                div.field {
                    label for=(id("deny")) { "Refused addresses" }
                    input id=(id("deny")) name="ip_deny" type="text" value=(nets(&g.ip_deny)) placeholder="none" spellcheck="false";
                }
            }
            div.checks {
                div.check { input id=(id("enabled")) type="checkbox" name="enabled" value="1" checked[g.enabled]; label for=(id("enabled")) { "Members may sign in" } }
                div.check { input id=(id("mcp")) type="checkbox" name="may_change_password" value="1" checked[g.may_change_password]; label for=(id("mcp")) { "May change own password" } }
                div.check { input id=(id("ro")) type="checkbox" name="read_only" value="1" checked[g.read_only]; label for=(id("ro")) { "Read only" } }
                div.check { input id=(id("nd")) type="checkbox" name="no_delete" value="1" checked[g.no_delete]; label for=(id("nd")) { "No delete" } }
            }
            button.primary type="submit" { (if new { "Create group" } else { "Save group" }) }
        }
    }
}

/// `POST /admin/groups`
pub(crate) async fn group_action(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = admin_only(&current) {
        return *r;
    }
    let f = &posted.fields;
    let name = f.trimmed("name").to_string();
    let mine = current.session.group.as_deref() == Some(name.as_str());
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let (result, message) = match f.get("action") {
        "delete" => {
            let n = name.clone();
            (
                blocking(move || auth.remove_group(&actor, &n)).await,
                format!("Group {name:?} removed."),
            )
        }
        act @ ("create" | "update") => {
            let parsed = (|| {
                let mut g = new_group(&name);
                // Empty means the default template; the core decides.
                g.home_template = f.trimmed("home_template").to_string();
                g.enabled = f.ticked("enabled");
                g.may_change_password = f.ticked("may_change_password");
                g.read_only = f.ticked("read_only");
                g.no_delete = f.ticked("no_delete");
                g.ip_allow = crate::auth::accounts::parse_nets(f.get("ip_allow"))?;
                g.ip_deny = crate::auth::accounts::parse_nets(f.get("ip_deny"))?;
                Ok::<_, AuthError>(g)
            })();
            let g = match parsed {
                Ok(g) => g,
                Err(e) => return failed(&web, &current, &e, "/admin/groups"),
            };
            let create = act == "create";
            (
                blocking(move || {
                    if create {
                        auth.create_group(&actor, g)
                    } else {
                        auth.update_group(&actor, g)
                    }
                })
                .await,
                format!("Group {name:?} saved."),
            )
        }
        _ => {
            return failed(
                &web,
                &current,
                &AuthError::Invalid("unknown action".into()),
                "/admin/groups",
            );
        }
    };
    match result {
        Ok(()) => back(
            &web,
            &current,
            &posted.client,
            mine,
            &message,
            "/admin/groups",
        ),
        Err(e) => failed(&web, &current, &e, "/admin/groups"),
    }
}

// ---------------------------------------------------------------------------
// Policy.

/// `GET /admin/policy`
pub(crate) async fn policy(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let loaded = blocking(move || Ok((auth.policy_for(&actor)?, auth.accounts(&actor)?))).await;
    let (p, accounts) = match loaded {
        Ok(x) => x,
        Err(e) => return failed_page(current, Nav::Policy, "Policy", &e),
    };
    let owner = current.session.role == Role::SystemAdmin;
    let exempt: Vec<&AccountView> = accounts.iter().filter(|a| a.account.mfa_exempt).collect();
    let body = policy_form(&current.csrf, &p, owner, &exempt);
    respond(
        StatusCode::OK,
        shell(current, Nav::Policy, "Policy", message.as_deref(), body),
    )
}

fn policy_form(csrf: &str, p: &Policy, owner: bool, exempt: &[&AccountView]) -> Markup {
    html! {
        @if !owner {
            div.notice role="note" { p { "Only the system administrator can change the policy; it is shown here for reference." } }
        }
        form method="post" action="/admin/policy" {
            (csrf_field(csrf))
            fieldset.card disabled[!owner] {
                legend { "Two-factor sign-in (MFA)" }
                div.check {
                    input #mfa_allowed type="checkbox" name="mfa.allowed" value="1" checked[p.mfa.allowed];
                    label for="mfa_allowed" { "Allowed for everyone: each user may set it up, and is offered it at web sign-in" }
                }
                fieldset.sub {
                    legend { "Required for these roles" }
                    @for r in Role::ALL {
                        div.check {
                            input type="checkbox" id=(format!("req_{r}")) name=(format!("req_{r}")) value="1" checked[p.mfa.required_for.contains(&r)];
                            label for=(format!("req_{r}")) { (role_name(r)) }
                        }
                    }
                    p.help { "A required user who has not set it up must do so at the next web sign-in; other protocols refuse them until then." }
                }
                fieldset.sub {
                    legend { "Ask for the code on" }
                    @for pr in Protocol::ALL {
                        @if OFFERED.contains(&pr) {
                            div.check {
                                input type="checkbox" id=(format!("proto_{pr}")) name=(format!("proto_{pr}")) value="1" checked[p.mfa.protocols.contains(&pr)];
                                label for=(format!("proto_{pr}")) { (pr.as_str().to_uppercase()) }
                            }
                        } @else if p.mfa.protocols.contains(&pr) {
                            // Not offered (no server for it yet): kept as it is.
                            input type="hidden" name=(format!("proto_{pr}")) value="1";
                        }
                    }
                }
                div.check {
                    input #ssh_key type="checkbox" name="mfa.ssh_key_is_enough" value="1" checked[p.mfa.ssh_key_is_enough];
                    label for="ssh_key" { "An SSH key alone is enough (no code after a key)" }
                }
                div.sub {
                    h3 { "Exempt users" }
                    @if exempt.is_empty() {
                        p.help { "Nobody is exempt. Exempt a user from their page under Users." }
                    } @else {
                        ul.inline-list {
                            @for a in exempt {
                                li { a href=(format!("/admin/users/{}", enc(&a.account.name))) { (a.account.name) } }
                            }
                        }
                    }
                }
            }
            fieldset.card disabled[!owner] {
                legend { "Lockout" }
                div.grid {
                    (number("lockout.max_failures", "Failures that lock a sign-in", p.lockout.max_failures, "1", "64", None))
                    (number("lockout.window", "Counted within (seconds)", p.lockout.window, "10", "86400", None))
                    (number("lockout.duration", "Lock lasts (seconds)", p.lockout.duration, "10", "604800", None))
                    (number("lockout.address_max_failures", "Failures from one address that lock it for all accounts", p.lockout.address_max_failures, "0", "64", Some("0 turns this off.")))
                }
            }
            fieldset.card disabled[!owner] {
                legend { "Passwords" }
                div.grid {
                    (number("password.min_length", "Minimum length", p.password.min_length, "8", "200", None))
                    div.field {
                        label for="password.min_score" { "Minimum strength" }
                        select id="password.min_score" name="password.min_score" {
                            @for (s, label) in [(0u8, "0: anything"), (1, "1: weak"), (2, "2: fair"), (3, "3: strong"), (4, "4: very strong")] {
                                option value=(s) selected[s == p.password.min_score] { (label) }
                            }
                        }
                    }
                    (number("password.history", "Earlier passwords that may not be reused", p.password.history, "0", "24", None))
                }
                p.help { "After NIST SP 800-63B: length and a strength estimate, no composition rules, no forced expiry." }
            }
            @if owner {
                div.actions { button.primary type="submit" { "Save policy" } }
            }
        }
    }
}

fn number(
    key: &str,
    label: &str,
    value: impl std::fmt::Display,
    min: &str,
    max: &str,
    help: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(key) { (label) }
            input id=(key) name=(key) type="number" min=(min) max=(max) required value=(value);
            @if let Some(h) = help { p.help { (h) } }
        }
    }
}

/// `POST /admin/policy`
pub(crate) async fn policy_save(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = admin_only(&current) {
        return *r;
    }
    let f = &posted.fields;
    let set = |key: &str, v: String| (key.to_string(), v);
    let list = |prefix: &str, all: Vec<String>| -> String {
        let chosen: Vec<String> = all
            .into_iter()
            .filter(|x| f.ticked(&format!("{prefix}_{x}")))
            .collect();
        if chosen.is_empty() {
            "none".into()
        } else {
            chosen.join(",")
        }
    };
    let changes = vec![
        set("mfa.allowed", f.ticked("mfa.allowed").to_string()),
        set(
            "mfa.required_for",
            list("req", Role::ALL.iter().map(|r| r.to_string()).collect()),
        ),
        set(
            "mfa.protocols",
            list(
                "proto",
                Protocol::ALL.iter().map(|p| p.to_string()).collect(),
            ),
        ),
        set(
            "mfa.ssh_key_is_enough",
            f.ticked("mfa.ssh_key_is_enough").to_string(),
        ),
        set(
            "lockout.max_failures",
            f.trimmed("lockout.max_failures").into(),
        ),
        set("lockout.window", f.trimmed("lockout.window").into()),
        set("lockout.duration", f.trimmed("lockout.duration").into()),
        set(
            "lockout.address_max_failures",
            f.trimmed("lockout.address_max_failures").into(),
        ),
        set(
            "password.min_length",
            f.trimmed("password.min_length").into(),
        ),
        set("password.min_score", f.trimmed("password.min_score").into()),
        set("password.history", f.trimmed("password.history").into()),
    ];
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    match blocking(move || auth.set_policy(&actor, &changes)).await {
        Ok(_) => back(
            &web,
            &current,
            &posted.client,
            false,
            "Policy saved.",
            "/admin/policy",
        ),
        Err(e) => failed(&web, &current, &e, "/admin/policy"),
    }
}

// ---------------------------------------------------------------------------
// Audit.

/// `GET /admin/audit?account=&event=&since=`
pub(crate) async fn audit(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let get = |k: &str| q.get(k).map_or("", |v| v.trim());
    let (account, event, since) = (get("account"), get("event"), get("since"));
    let mut problem = None;
    let events = match event {
        "" => Vec::new(),
        e => match crate::audit::Event::parse(e) {
            Some(ev) => vec![ev],
            None => {
                problem = Some(format!("{e:?} is not an audit event."));
                Vec::new()
            }
        },
    };
    let since_ts = match since {
        "" => None,
        s => match crate::clock::parse_utc(s) {
            Some(t) => Some(t),
            None => {
                problem = Some("Give the date as YYYY-MM-DD.".into());
                None
            }
        },
    };
    let filter = crate::audit::Filter {
        account: (!account.is_empty()).then(|| account.to_string()),
        events,
        since: since_ts,
        limit: 500,
    };
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let records = if problem.is_some() {
        Vec::new()
    } else {
        match blocking(move || auth.audit_log(&actor, &filter)).await {
            Ok(r) => r,
            Err(e) => return failed_page(current, Nav::Audit, "Audit log", &e),
        }
    };
    let body = html! {
        form.filters method="get" action="/admin/audit" {
            div.field {
                label for="f_account" { "Account" }
                input #f_account name="account" type="text" value=(account) spellcheck="false";
            }
            div.field {
                label for="f_event" { "Event" }
                select #f_event name="event" {
                    option value="" { "all events" }
                    @for e in crate::audit::Event::ALL {
                        option value=(e.slug()) selected[e.slug() == event || e.id().to_string() == event] { (e.id()) " " (e.slug().replace('_', " ")) }
                    }
                }
            }
            div.field {
                label for="f_since" { "Since" }
                input #f_since name="since" type="date" value=(since);
            }
            div.field.end {
                button type="submit" { "Filter" }
            }
        }
        (error_box(problem.as_deref()))
        @if records.is_empty() {
            div.card { p.empty { "No events match." } }
        } @else {
            p.help { (records.len()) " events, newest first" @if records.len() >= 500 { " (the newest 500)" } "." }
            // Focusable, so a keyboard can scroll it sideways on a phone.
            div.table-wrap tabindex="0" role="region" aria-label="Audit events" {
                table.audit {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "Account" }
                        th.hide-narrow scope="col" { "Address" } th.hide-narrow scope="col" { "Via" } th scope="col" { "Detail" }
                    } }
                    tbody {
                        @for r in &records {
                            tr {
                                td.nowrap { (when(r.at)) }
                                td { span.event { (r.id) } " " (r.event.slug().replace('_', " ")) }
                                td { (r.account.as_deref().unwrap_or("—")) }
                                td.hide-narrow { (r.address.map(|a| a.to_string()).unwrap_or_else(|| "—".into())) }
                                td.hide-narrow { (r.protocol.as_deref().unwrap_or("")) @if let Some(m) = &r.method { " · " (m) } }
                                td { (r.detail) }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(current, Nav::Audit, "Audit log", None, body),
    )
}

// ---------------------------------------------------------------------------
// System.

/// The owner check of the system pages, asked of the core.
fn owner_only(current: &Current) -> Result<(), Box<Response>> {
    match Actor::session(&current.session).may_administer_box() {
        Ok(()) => Ok(()),
        Err(_) => Err(Box::new(forbidden(
            current,
            "it is for the system administrator",
        ))),
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h {m} min")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// A count of the system page in words ("TOTP enrolments").
fn count_label(key: &str) -> String {
    match key {
        "totp_enrolments" => "TOTP enrolments".into(),
        other => sentence(&other.replace('_', " "))
            .trim_end_matches('.')
            .to_string(),
    }
}

/// `GET /admin/system`
pub(crate) async fn system(State(web): State<Arc<Web>>, signed: Signed) -> Response {
    let current = &signed.current;
    if let Err(r) = owner_only(current) {
        return *r;
    }
    let message = flash(&web, current);
    let w = web.clone();
    let actor = Actor::session(&current.session);
    let view = match blocking(move || crate::web::api::system_view(&w, &actor)).await {
        Ok(v) => v,
        Err(e) => return failed_page(current, Nav::System, "System", &e),
    };
    let csrf = current.csrf.as_str();
    let cert = &view.certificate;
    let body = html! {
        div.cards {
            section.card aria-labelledby="box-h" {
                h2 #box-h { "This box" }
                dl.facts {
                    dt { "Version" } dd { "Coffer " (view.version) }
                    dt { "Running for" } dd { (duration(view.uptime)) " (since " (when(view.started_at)) ")" }
                    dt { "Listening" } dd { @for l in &view.listening { span.chip { (l) } " " } }
                    dt { "Sessions" } dd { (view.sessions) " signed in (web and API)" }
                    @for (k, v) in &view.counts {
                        dt { (count_label(k)) } dd { (v) }
                    }
                }
            }
            section.card aria-labelledby="disk-h" {
                h2 #disk-h { "Storage" }
                @if let Some(s) = &view.storage {
                    @let used = s.total_bytes.saturating_sub(s.available_bytes);
                    @let pct = used.saturating_mul(100).checked_div(s.total_bytes).unwrap_or(0);
                    p { (bytes(used)) " used of " (bytes(s.total_bytes)) "; " (bytes(s.available_bytes)) " free." }
                    meter min="0" max="100" low="80" high="90" optimum="0" value=(pct) aria-label="Disk use" { (pct) "%" }
                } @else {
                    p.help { "The storage use could not be read." }
                }
            }
            section.card aria-labelledby="seal-h" {
                h2 #seal-h { "Secret protection" }
                @if view.tpm {
                    p { span.badge.good { "TPM" } " The TPM protects the key that encrypts the TOTP seeds." }
                } @else {
                    p { span.badge.warn { "no TPM" } " The key that encrypts the TOTP seeds is in a key file readable only by Coffer; a TPM would protect it better." }
                }
                dl.facts {
                    dt { "Backend" } dd { (view.seal_backend) }
                    dt { "Detail" } dd { code { (view.seal_detail) } }
                }
            }
            section.card aria-labelledby="con-h" {
                h2 #con-h { "Serial console" }
                p { (prose(&view.console)) }
            }
        }
        section.card aria-labelledby="tls-h" {
            h2 #tls-h { "TLS certificate" }
            dl.facts {
                dt { "SHA-256 fingerprint" } dd { code.fingerprint { (cert.fingerprint) } }
                dt { "Subject" } dd { (cert.subject) }
                dt { "Issuer" } dd { (cert.issuer) @if cert.self_signed { " " span.badge { "self-signed" } } }
                dt { "Names" } dd { (cert.names.join(", ")) }
                dt { "Valid" } dd {
                    (when(u64::try_from(cert.not_before).unwrap_or(0))) " to "
                    (when(u64::try_from(cert.not_after).unwrap_or(0)))
                }
            }
            details {
                summary { "Replace with your own certificate" }
                form method="post" action="/admin/system/certificate" {
                    (csrf_field(csrf))
                    div.field {
                        label for="certificate" { "Certificate chain (PEM)" }
                        textarea #certificate name="certificate" rows="6" required spellcheck="false" placeholder="-----BEGIN CERTIFICATE-----" {}
                        input type="file" accept=".pem,.crt,.cer" data-fill="certificate" aria-label="Read the certificate from a file";
                    }
                    div.field {
                        label for="private_key" { "Private key (PEM)" }
                        textarea #private_key name="private_key" rows="6" required spellcheck="false" placeholder="-----BEGIN PRIVATE KEY-----" {}
                        input type="file" accept=".pem,.key" data-fill="private_key" aria-label="Read the private key from a file";
                    }
                    p.help { "New connections use it at once; the key is stored readable only by Coffer." }
                    button.primary type="submit" { "Upload certificate" }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(current, Nav::System, "System", message.as_deref(), body),
    )
}

/// `POST /admin/system/certificate`
pub(crate) async fn certificate(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    if let Err(r) = owner_only(&current) {
        return *r;
    }
    let cert = posted.fields.get("certificate").as_bytes().to_vec();
    let key = zeroize::Zeroizing::new(posted.fields.get("private_key").as_bytes().to_vec());
    let certs = web.certs.clone();
    let replaced = tokio::task::spawn_blocking(move || certs.replace(&cert, &key)).await;
    match replaced {
        Ok(Ok(info)) => {
            web.auth
                .certificate_changed(&Actor::session(&current.session), &info.fingerprint);
            web.sessions.set_flash(
                &current.token,
                format!("Certificate installed; fingerprint {}.", info.fingerprint),
            );
            see_other("/admin/system")
        }
        Ok(Err(e)) => {
            let text = match e {
                crate::web::tls::TlsError::Io { .. } | crate::web::tls::TlsError::Generate(_) => {
                    tracing::error!(error = %e, "storing an uploaded certificate failed");
                    "The certificate could not be stored; the administrator can find why in the log."
                        .to_string()
                }
                e => sentence(&e.to_string()),
            };
            web.sessions.set_flash(&current.token, format!("!{text}"));
            see_other("/admin/system")
        }
        Err(_) => see_other("/admin/system"),
    }
}
