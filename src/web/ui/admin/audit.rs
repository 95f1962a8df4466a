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
    let (filter, problem) = match filter_of(account, event, since, 500) {
        Ok(f) => (f, None),
        Err(p) => (crate::audit::Filter::default(), Some(p)),
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
            p.help {
                (records.len()) " events, newest first" @if records.len() >= 500 { " (the newest 500)" } ". "
                "Export these filters (up to " (EXPORT_LIMIT) " events): "
                a href=(export_link("csv", account, event, since)) download { "CSV" } ", "
                a href=(export_link("json", account, event, since)) download { "JSON" } "."
            }
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
                                td.nowrap { (local_time(r.at)) }
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

/// Most events in one export (as `GET /api/v1/audit` allows).
const EXPORT_LIMIT: usize = 10_000;

/// The page's filters as the core's, or what is wrong with them.
fn filter_of(
    account: &str,
    event: &str,
    since: &str,
    limit: usize,
) -> Result<crate::audit::Filter, String> {
    let events = match event {
        "" => Vec::new(),
        e => match crate::audit::Event::parse(e) {
            Some(ev) => vec![ev],
            None => return Err(format!("{e:?} is not an audit event.")),
        },
    };
    let since = match since {
        "" => None,
        s => Some(crate::clock::parse_utc(s).ok_or("Give the date as YYYY-MM-DD.")?),
    };
    Ok(crate::audit::Filter {
        account: (!account.is_empty()).then(|| account.to_string()),
        events,
        since,
        limit,
    })
}

fn export_link(format: &str, account: &str, event: &str, since: &str) -> String {
    format!(
        "/admin/audit/export?format={format}&account={}&event={}&since={}",
        enc(account),
        enc(event),
        enc(since)
    )
}

/// `GET /admin/audit/export?format=csv|json&account=&event=&since=`: the
/// filtered events as a download, newest first.
pub(crate) async fn export(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    if let Err(r) = admin_only(current) {
        return *r;
    }
    let get = |k: &str| q.get(k).map_or("", |v| v.trim());
    let filter = match filter_of(get("account"), get("event"), get("since"), EXPORT_LIMIT) {
        Ok(f) => f,
        Err(p) => return failed_page(current, Nav::Audit, "Audit log", &AuthError::Invalid(p)),
    };
    let format = get("format");
    if !matches!(format, "csv" | "json") {
        let e = AuthError::Invalid("the export format is csv or json".into());
        return failed_page(current, Nav::Audit, "Audit log", &e);
    }
    let auth = web.auth.clone();
    let actor = Actor::session(&current.session);
    let records = match blocking(move || auth.audit_log(&actor, &filter)).await {
        Ok(r) => r,
        Err(e) => return failed_page(current, Nav::Audit, "Audit log", &e),
    };
    let stamp = crate::clock::format_utc(web.now()).replace(':', "");
    let (body, kind) = if format == "json" {
        match serde_json::to_vec_pretty(&records) {
            Ok(b) => (b, "application/json"),
            Err(e) => {
                return failed_page(
                    current,
                    Nav::Audit,
                    "Audit log",
                    &AuthError::Internal(e.to_string()),
                );
            }
        }
    } else {
        (csv(&records).into_bytes(), "text/csv; charset=utf-8")
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = axum::http::HeaderValue::from_str(kind) {
        headers.insert(axum::http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"coffer-audit-{stamp}.{format}\""
    )) {
        headers.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Events as CSV (RFC 4180), one row each, with a header row. A cell that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) gets a
/// leading apostrophe: names and details come from outside.
fn csv(records: &[crate::audit::Record]) -> String {
    fn cell(text: &str) -> String {
        let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text.to_string()
        };
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    }
    let mut out = String::from(
        "seq,time_utc,event_id,event,account,address,protocol,method,detail,repeated,last_utc\r\n",
    );
    for r in records {
        let row = [
            r.seq.to_string(),
            crate::clock::format_utc(r.at),
            r.id.to_string(),
            r.event.slug().to_string(),
            r.account.clone().unwrap_or_default(),
            r.address.map(|a| a.to_string()).unwrap_or_default(),
            r.protocol.clone().unwrap_or_default(),
            r.method.clone().unwrap_or_default(),
            r.detail.clone(),
            r.repeated.to_string(),
            r.last_at.map(crate::clock::format_utc).unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes_and_defuses_what_comes_from_outside() {
        let record = crate::audit::Record {
            seq: 7,
            at: 0,
            id: crate::audit::Event::LoginFailed.id(),
            event: crate::audit::Event::LoginFailed,
            account: Some("=cmd|' /c calc'!A1".into()),
            address: None,
            protocol: Some("ssh".into()),
            method: None,
            detail: "a, \"quoted\"\nline".into(),
            repeated: 0,
            last_at: None,
        };
        let text = super::csv(&[record]);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with(&format!(
                "7,1970-01-01T00:00:00Z,{},login_failed,",
                crate::audit::Event::LoginFailed.id()
            )),
            "{row}"
        );
        assert!(row.contains(",'=cmd|' /c calc'!A1,"), "{row}");
        assert!(text.contains("\"a, \"\"quoted\"\"\nline\""), "{text}");
    }
}
