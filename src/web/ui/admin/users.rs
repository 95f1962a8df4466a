//! The users pages: the list, one account, and their forms.

use super::*;

/// Accounts on one page of the list.
const PAGE: usize = 50;

/// Which accounts the list shows: `q` matches the name, group or role
/// (any case), `state` one of `locked`, `disabled`, `mfa_off`.
fn matches(a: &AccountView, q: &str, state: &str) -> bool {
    let q = q.to_lowercase();
    let text = q.is_empty()
        || a.account.name.to_lowercase().contains(&q)
        || a.account
            .group
            .as_deref()
            .is_some_and(|g| g.to_lowercase().contains(&q))
        || role_name(a.account.role).to_lowercase().contains(&q);
    let locked = !a.locked.is_empty() || a.code_entry_locked_until.is_some();
    text && match state {
        "locked" => locked,
        "disabled" => a.account.disabled,
        "mfa_off" => !a.mfa.enrolled && !a.account.mfa_exempt,
        _ => true,
    }
}

/// When and from where the account last signed in.
fn last_login(a: &AccountView) -> Markup {
    html! {
        @match &a.account.last_login {
            Some(l) => { (local_time(l.at)) " from " (l.address) " (" (l.protocol) ", " (l.method) ")" }
            None => { "never" }
        }
    }
}

/// An account's source-address rules in a few words.
fn networks(a: &AccountView) -> String {
    let list = |n: &[ipnet::IpNet]| {
        n.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (a.account.ip_allow.is_empty(), a.account.ip_deny.is_empty()) {
        (true, true) => "any".into(),
        (false, true) => format!("only {}", list(&a.account.ip_allow)),
        (true, false) => format!("not {}", list(&a.account.ip_deny)),
        (false, false) => format!(
            "only {}; not {}",
            list(&a.account.ip_allow),
            list(&a.account.ip_deny)
        ),
    }
}

/// `GET /admin/users?q=&state=&page=`
pub(crate) async fn users(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
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
    let q = query.get("q").map_or("", |v| v.trim());
    let q: String = q.chars().take(64).collect();
    let state = query.get("state").map_or("", String::as_str);
    let total = accounts.len();
    let shown: Vec<&AccountView> = accounts.iter().filter(|a| matches(a, &q, state)).collect();
    let pages = shown.len().div_ceil(PAGE).max(1);
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let first = (page - 1) * PAGE;
    let on_page = shown.iter().skip(first).take(PAGE);
    let link = |to: usize| format!("/admin/users?q={}&state={}&page={to}", enc(&q), enc(state));
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
            form.filters method="get" action="/admin/users" role="search" {
                div.field {
                    label for="f_q" { "Search" }
                    input #f_q name="q" type="search" value=(q) maxlength="64" spellcheck="false" autocomplete="off" placeholder="name, group or role";
                }
                div.field {
                    label for="f_state" { "Show" }
                    select #f_state name="state" {
                        option value="" selected[state.is_empty()] { "all accounts" }
                        option value="locked" selected[state == "locked"] { "locked" }
                        option value="disabled" selected[state == "disabled"] { "disabled" }
                        option value="mfa_off" selected[state == "mfa_off"] { "without two-factor sign-in" }
                    }
                }
                div.field.end { button type="submit" { "Search" } }
            }
            p.help role="status" {
                @if shown.is_empty() { "No account matches." }
                @else if shown.len() == total {
                    (total) " accounts" @if pages > 1 { ", " (first + 1) "–" ((first + PAGE).min(shown.len())) " shown" } "."
                } @else {
                    (shown.len()) " of " (total) " accounts match" @if pages > 1 { ", " (first + 1) "–" ((first + PAGE).min(shown.len())) " shown" } "."
                }
            }
            div.table-wrap tabindex="0" role="region" aria-label="Accounts" {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Role" } th.hide-narrow scope="col" { "Group" }
                        th scope="col" { "Two-factor" } th scope="col" { "State" }
                        th.hide-narrow scope="col" { "Networks" } th.hide-narrow scope="col" { "Last sign-in" }
                        th.hide-narrow.num scope="col" { "Tokens" }
                    } }
                    tbody {
                        @for a in on_page {
                            tr {
                                td { a href=(format!("/admin/users/{}", enc(&a.account.name))) { (a.account.name) } }
                                td { (role_name(a.account.role)) }
                                td.hide-narrow { (a.account.group.as_deref().unwrap_or("—")) }
                                td { (mfa_badge(a)) }
                                td { (state_badge(a)) }
                                td.hide-narrow { (networks(a)) }
                                td.hide-narrow { (last_login(a)) }
                                td.hide-narrow.num { (a.tokens) }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages of accounts" {
                    @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
                    span { "Page " (page) " of " (pages) }
                    @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
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
                dt { "Created" } dd { (local_time(a.account.created_at)) }
                dt { "Last sign-in" } dd { (last_login(&a)) }
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
