//! `/api`: the REST API for people, from the OpenAPI document the server
//! publishes at `/api/v1/openapi.json` (so the page and the document cannot
//! disagree). When the box has the interactive viewer (Swagger UI, in
//! `[https] apidoc_dir`; see [`super::viewer`]), the page is that viewer,
//! started by `/assets/apidoc.js`; otherwise, and at `/api?view=plain`, it
//! is rendered here: every path and method with its summary, parameters,
//! request body and responses, then the schemas.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde_json::Value;

use super::viewer::{self, Installed};
use super::{Nav, Visitor, bare, prose, respond, shell};
use crate::web::Web;
use crate::web::api::OPENAPI;

/// The starter of the interactive API viewer.
const STARTER: &str = include_str!("../assets/apidoc.js");

/// `/api`, the viewer's files and its starter.
pub(super) fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/api", get(page))
        .route("/api/viewer/{file}", get(viewer::file))
        .route(
            "/assets/apidoc.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    STARTER,
                )
            }),
        )
}

const METHODS: [&str; 7] = ["get", "put", "post", "patch", "delete", "head", "options"];

/// `GET /api`: for everyone (the document is public too). The viewer
/// when installed, else (and with `?view=plain`) the rendered reference.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    visitor: Visitor,
    RawQuery(query): RawQuery,
) -> Response {
    let plain = query.is_some_and(|q| q.split('&').any(|p| p == "view=plain"));
    let body = if plain {
        reference(html! {
            p.help { "The plain reference; the " a href="/api" { "interactive viewer" } " shows the same document and can try the operations out, where installed." }
        })
    } else {
        match viewer::find(web.settings.apidoc_dir.clone()).await {
            Some(installed) => interactive(&installed),
            None => reference(html! {
                p.help { "The interactive viewer is not installed on this box; this plain reference lists the same operations." }
            }),
        }
    };
    match visitor {
        Visitor::Granted(current) => {
            respond(StatusCode::OK, shell(&current, Nav::Api, "API", None, body))
        }
        _ => respond(
            StatusCode::OK,
            bare("API", "", html! { div.card.wide { h1 { "API" } (body) } }),
        ),
    }
}

/// The server-rendered reference under a note.
fn reference(note: Markup) -> Markup {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
    html! { (note) (render(&doc)) }
}

/// The page that holds Swagger UI: its stylesheet and script from the
/// viewer's directory, Coffer's starter script, and no inline script.
fn interactive(installed: &Installed) -> Markup {
    html! {
        p.lead {
            "Every operation of the REST API, from "
            a href="/api/v1/openapi.json" { "/api/v1/openapi.json" } ". "
            "To try one out, choose Authorize and paste a token: a session token from "
            code { "POST /auth/login" } " (which you can try below) or an access token from the Security page."
        }
        p.help {
            a href="/api?view=plain" { "Plain reference" } " (no script). "
            "The viewer is Swagger UI ("
            a href=(format!("{}LICENSE", viewer::VIEWER_PREFIX)) { "Apache-2.0 licence" } ")."
        }
        link rel="stylesheet" href=(installed.style);
        div #swagger-ui data-spec="/api/v1/openapi.json" {}
        noscript { p { "The interactive viewer needs JavaScript; the " a href="/api?view=plain" { "plain reference" } " does not." } }
        script src=(installed.script) defer {}
        script src="/assets/apidoc.js" defer {}
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The short name of a schema: its `$ref` tail, its type, or its shape.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "array of {}",
                schema.get("items").map_or("any".into(), schema_name)
            )
        }
        Some(Value::String(t)) => match schema.get("format").and_then(Value::as_str) {
            Some(f) => format!("{t} ({f})"),
            None => t.clone(),
        },
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            for key in ["oneOf", "anyOf", "allOf"] {
                if let Some(Value::Array(parts)) = schema.get(key) {
                    return parts
                        .iter()
                        .map(schema_name)
                        .collect::<Vec<_>>()
                        .join(" | ");
                }
            }
            "any".into()
        }
    }
}

fn properties(schema: &Value) -> Markup {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        @if let Some(Value::Object(props)) = schema.get("properties") {
            ul.props {
                @for (name, p) in props {
                    li {
                        code { (name) } " "
                        span.type { (schema_name(p)) }
                        @if required.contains(&name.as_str()) { " " span.badge { "required" } }
                        @let d = text(p, "description");
                        @if !d.is_empty() { " — " (prose(d)) }
                    }
                }
            }
        }
    }
}

fn render(doc: &Value) -> Markup {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    html! {
        p.lead {
            (text(info, "title")) ", version " (text(info, "version")) ". JSON in and out under "
            code { "/api/v1" } "; errors are " code { "{error, message}" } ". "
            "The machine-readable document is " a href="/api/v1/openapi.json" { "/api/v1/openapi.json" } " (OpenAPI " (text(doc, "openapi")) ")."
        }
        @let description = text(info, "description");
        @if !description.is_empty() { p { (prose(description)) } }
        @if paths.is_empty() {
            div.card { p.empty { "The document lists no routes yet." } }
        }
        @if !paths.is_empty() {
            nav.toc aria-label="Routes" {
                ul {
                    @for (path, item) in paths {
                        @for m in METHODS {
                            @if item.get(m).is_some() {
                                li { a href=(format!("#{}", anchor(m, path))) { span class=(format!("method {m}")) { (m.to_uppercase()) } " " code { (path) } } }
                            }
                        }
                    }
                }
            }
        }
        @for (path, item) in paths {
            @for m in METHODS {
                @if let Some(op) = item.get(m) {
                    section.card.route id=(anchor(m, path)) {
                        h2 { span class=(format!("method {m}")) { (m.to_uppercase()) } " " code { (path) } }
                        @let summary = text(op, "summary");
                        @if !summary.is_empty() { p.summary { (prose(summary)) } }
                        @let d = text(op, "description");
                        @if !d.is_empty() { p { (prose(d)) } }
                        @let params: Vec<&Value> = item.get("parameters").and_then(Value::as_array).into_iter().flatten()
                            .chain(op.get("parameters").and_then(Value::as_array).into_iter().flatten()).collect();
                        @if !params.is_empty() {
                            h3 { "Parameters" }
                            ul.props {
                                @for p in params {
                                    li {
                                        code { (text(p, "name")) } " "
                                        span.type { "in " (text(p, "in")) ", " (p.get("schema").map_or("any".into(), schema_name)) }
                                        @if p.get("required").and_then(Value::as_bool).unwrap_or(false) { " " span.badge { "required" } }
                                        @let pd = text(p, "description");
                                        @if !pd.is_empty() { " — " (prose(pd)) }
                                    }
                                }
                            }
                        }
                        @if let Some(body) = op.get("requestBody") {
                            h3 { "Request body" }
                            @if let Some(Value::Object(content)) = body.get("content") {
                                @for (ctype, media) in content {
                                    p { code { (ctype) } @if let Some(s) = media.get("schema") { ": " span.type { (schema_name(s)) } } }
                                    @if let Some(s) = media.get("schema") { (properties(s)) }
                                }
                            }
                        }
                        @if let Some(Value::Object(responses)) = op.get("responses") {
                            h3 { "Responses" }
                            ul.responses {
                                @for (code, r) in responses {
                                    li {
                                        span class=(format!("status s{}", code.chars().next().unwrap_or('x'))) { (code) } " "
                                        (prose(text(r, "description")))
                                        @if let Some(Value::Object(content)) = r.get("content") {
                                            @for (_, media) in content {
                                                @if let Some(s) = media.get("schema") { " → " span.type { (schema_name(s)) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !schemas.is_empty() {
            h2 #schemas { "Schemas" }
            @for (name, s) in schemas {
                section.card id=(format!("schema-{name}")) {
                    h3 { code { (name) } " " span.type { (schema_name(s)) } }
                    @let d = text(s, "description");
                    @if !d.is_empty() { p { (prose(d)) } }
                    (properties(s))
                }
            }
        }
    }
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{method}{slug}")
}
