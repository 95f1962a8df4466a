//! The audit page: events, filtered and paged.

use super::*;

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
