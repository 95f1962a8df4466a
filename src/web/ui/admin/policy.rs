//! The policy page: MFA, lockout and password rules.

use super::*;

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
                    h2.minor { "Exempt users" }
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
                    (span_field("lockout.window", "Failures count within", p.lockout.window, "10 seconds to 1 day, e.g. 90s, 15m, 1h."))
                    (span_field("lockout.duration", "A lock lasts", p.lockout.duration, "10 seconds to 7 days, e.g. 15m, 2h, 1d."))
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

/// A duration setting as people write it (`15m`, `1h`, `90s`); the core
/// reads the same units (`auth::policy::parse_duration`).
fn span_field(key: &str, label: &str, secs: u64, help: &str) -> Markup {
    let help_id = format!("{key}_help");
    html! {
        div.field {
            label for=(key) { (label) }
            input id=(key) name=(key) type="text" required value=(span(secs))
                inputmode="text" spellcheck="false" autocomplete="off" pattern="[0-9]+[smhd]?"
                aria-describedby=(help_id);
            p.help id=(help_id) { (help) }
        }
    }
}

/// Seconds in the largest unit that divides them: 900 → `15m`, 86400 → `1d`.
pub(super) fn span(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_read_back_as_the_core_parses_them() {
        for secs in [10, 59, 60, 90, 900, 3600, 5400, 86_400, 604_800] {
            let text = super::span(secs);
            assert_eq!(
                crate::auth::policy::parse_duration(&text),
                Some(secs),
                "{text}"
            );
        }
        assert_eq!(super::span(900), "15m");
        assert_eq!(super::span(86_400), "1d");
        assert_eq!(super::span(90), "90s");
    }
}
