//! The groups page and its forms.

use super::*;

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
