//! The file browser: folders with breadcrumbs, download, new folder,
//! rename, delete. Uploads go from the page's script straight to the REST
//! API (`PUT /api/v1/files/content`, with the session's CSRF header), which
//! streams the body to disk with progress in the browser; downloads stream
//! from the file. Nothing holds a whole file in memory.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};

use super::{Nav, Posted, Signed, bytes, csrf_field, enc, respond, see_other, shell, when};
use crate::files::VPath;
use crate::web::Web;
use crate::web::error::ApiError;
use crate::web::session::Current;
use crate::web::transfer::{self, FolderListing, on_root};

const FOLDER_ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false"><path d="M3 6.5A1.5 1.5 0 0 1 4.5 5h4.2l2 2h8.8A1.5 1.5 0 0 1 21 8.5v9a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 17.5z" fill="currentColor"/></svg>"#;
const FILE_ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false"><path d="M6 3h8l5 5v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M14 3v5h5" fill="none" stroke="currentColor" stroke-width="1.8"/></svg>"#;

fn text(path: &VPath) -> String {
    String::from_utf8_lossy(path.as_bytes()).into_owned()
}

fn folder_link(path: &VPath) -> String {
    format!("/files?path={}", enc(&text(path)))
}

fn error_page(current: &Current, e: &ApiError) -> Response {
    let body = html! {
        div.notice.error role="alert" { p { (super::sentence(&e.message)) } }
        p { a.button href="/files" { "Back to your files" } }
    };
    respond(e.status, shell(current, Nav::Files, "Files", None, body))
}

/// `GET /files?path=`
pub(crate) async fn browse(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    let flash = super::security::flash(&web, current);
    let raw = q.get("path").map_or("/", String::as_str);
    let path = match VPath::parse(raw.as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(current, &ApiError::from(e)),
    };
    let p = path.clone();
    let listing = match on_root(&web, current, move |root| transfer::list_folder(root, &p)).await {
        Ok(l) => l,
        Err(e) => return error_page(current, &e),
    };
    respond(
        StatusCode::OK,
        shell(
            current,
            Nav::Files,
            "Files",
            flash.as_deref(),
            folder(current, &path, &listing),
        ),
    )
}

fn breadcrumbs(path: &VPath) -> Markup {
    let mut trail: Vec<VPath> = Vec::new();
    let mut at = Some(path.clone());
    while let Some(p) = at {
        at = p.parent();
        trail.push(p);
    }
    trail.reverse();
    html! {
        nav.crumbs aria-label="Folder" {
            ol {
                @for (i, p) in trail.iter().enumerate() {
                    @let name = if p.is_root() { "Home".to_string() } else { String::from_utf8_lossy(p.file_name().unwrap_or_default()).into_owned() };
                    li {
                        @if i + 1 == trail.len() {
                            span aria-current="page" { (name) }
                        } @else {
                            a href=(folder_link(p)) { (name) }
                        }
                    }
                }
            }
        }
    }
}

fn folder(current: &Current, path: &VPath, listing: &FolderListing) -> Markup {
    let csrf = current.csrf.as_str();
    let dir = text(path);
    let can_write = current.session.permissions.write;
    let can_delete = current.session.permissions.delete;
    html! {
        (breadcrumbs(path))
        @if can_write {
            div.toolbar {
                form.upload #upload-form data-dir=(dir) {
                    label.button.primary for="upload-files" { "Upload files" }
                    input #upload-files.visually-hidden type="file" multiple;
                    noscript { p.help { "Uploading from the browser needs JavaScript; SFTP and the API work without it." } }
                }
                form.inline method="post" action="/files/mkdir" {
                    (csrf_field(csrf))
                    input type="hidden" name="dir" value=(dir);
                    label.sr for="new-folder" { "New folder name" }
                    input #new-folder name="name" type="text" required placeholder="New folder name" maxlength="255";
                    button type="submit" { "Create folder" }
                }
            }
            div #upload-status.upload-status hidden {
                p #upload-label { "Uploading…" }
                progress #upload-progress max="100" value="0" { "0%" }
                ul #upload-errors.upload-errors hidden {}
                p #upload-done hidden { a.button href=(folder_link(path)) { "Show the folder" } }
            }
        }
        @if listing.entries.is_empty() {
            div.empty-state {
                p { "This folder is empty." }
                @if can_write { p.help { "Upload files or create a folder to get started." } }
            }
        } @else {
            div.table-wrap {
                table.files {
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th.num scope="col" { "Size" }
                            th.hide-narrow scope="col" { "Modified" }
                            th scope="col" { span.sr { "Actions" } }
                        }
                    }
                    tbody {
                        @for e in &listing.entries {
                            @let child = path.child(e.name.as_bytes()).ok();
                            @let is_dir = e.kind == "directory";
                            tr {
                                td.name {
                                    @if let (Some(c), true) = (&child, is_dir) {
                                        a.entry href=(folder_link(c)) { (PreEscaped(FOLDER_ICON)) span { (e.name) } }
                                    } @else if let (Some(c), "file") = (&child, e.kind) {
                                        a.entry href=(format!("/files/download?path={}", enc(&text(c)))) download=(e.name) { (PreEscaped(FILE_ICON)) span { (e.name) } }
                                    } @else {
                                        span.entry { (PreEscaped(FILE_ICON)) span { (e.name) } }
                                    }
                                }
                                td.num { @if is_dir { "—" } @else { (bytes(e.size)) } }
                                td.hide-narrow { (when(u64::try_from(e.modified).unwrap_or(0))) }
                                td.actions { div.row-actions {
                                    @if can_write {
                                        details.rename {
                                            summary { "Rename" span.sr { " " (e.name) } }
                                            form method="post" action="/files/rename" {
                                                (csrf_field(csrf))
                                                input type="hidden" name="dir" value=(dir);
                                                input type="hidden" name="from" value=(e.name);
                                                label.sr for=(format!("rename-{}", e.name)) { "New name for " (e.name) }
                                                input id=(format!("rename-{}", e.name)) name="to" type="text" required value=(e.name) maxlength="255";
                                                button.small type="submit" { "Save" }
                                            }
                                        }
                                    }
                                    @if can_delete {
                                        form method="post" action="/files/delete"
                                            data-confirm=(if is_dir { format!("Delete the folder {:?} and everything in it?", e.name) } else { format!("Delete {:?}?", e.name) }) {
                                            (csrf_field(csrf))
                                            input type="hidden" name="dir" value=(dir);
                                            input type="hidden" name="name" value=(e.name);
                                            button.small.danger type="submit" { "Delete" span.sr { " " (e.name) } }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
            @if listing.truncated {
                p.help { "This folder has more entries than the page shows; use SFTP to see them all." }
            }
        }
    }
}

/// `GET /files/download?path=`
pub(crate) async fn download(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    let raw = q.get("path").map_or("", String::as_str);
    let path = match VPath::parse(raw.as_bytes()) {
        Ok(p) if !p.is_root() => p,
        Ok(_) => {
            return error_page(
                current,
                &ApiError::bad_request("the home folder is not a file"),
            );
        }
        Err(e) => return error_page(current, &ApiError::from(e)),
    };
    match transfer::download_response(&web, current, path).await {
        Ok(r) => r.into_response(),
        Err(e) => error_page(current, &e),
    }
}

/// The folder and one child name of a form; a name must be one plain
/// component.
fn target(fields: &super::Fields, name_field: &str) -> Result<(VPath, VPath), ApiError> {
    let dir = VPath::parse(fields.get("dir").as_bytes()).map_err(ApiError::from)?;
    let name = fields.trimmed(name_field);
    if name.is_empty() {
        return Err(ApiError::bad_request("enter a name"));
    }
    if name.contains('/') {
        return Err(ApiError::bad_request("a name cannot contain \"/\""));
    }
    let child = dir.child(name.as_bytes()).map_err(ApiError::from)?;
    Ok((dir, child))
}

/// Back to the folder with a message.
fn done(web: &Web, current: &Current, dir: &VPath, message: Result<String, ApiError>) -> Response {
    let text = match message {
        Ok(m) => m,
        Err(e) => format!("!{}", super::sentence(&e.message)),
    };
    web.sessions.set_flash(&current.token, text);
    see_other(&folder_link(dir))
}

/// `POST /files/mkdir`
pub(crate) async fn mkdir(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let home = VPath::root();
    let (dir, path) = match target(&posted.fields, "name") {
        Ok(x) => x,
        Err(e) => return done(&web, &current, &home, Err(e)),
    };
    let name = posted.fields.trimmed("name").to_string();
    let made = on_root(&web, &current, move |root| root.mkdir(&path, None)).await;
    done(
        &web,
        &current,
        &dir,
        made.map(|()| format!("Folder {name:?} created.")),
    )
}

/// `POST /files/rename`
pub(crate) async fn rename(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let home = VPath::root();
    let (dir, from) = match target(&posted.fields, "from") {
        Ok(x) => x,
        Err(e) => return done(&web, &current, &home, Err(e)),
    };
    let (_, to) = match target(&posted.fields, "to") {
        Ok(x) => x,
        Err(e) => return done(&web, &current, &dir, Err(e)),
    };
    if from == to {
        return see_other(&folder_link(&dir));
    }
    let name = posted.fields.trimmed("to").to_string();
    // Without replace, the rename itself refuses an existing target.
    let renamed = on_root(&web, &current, move |root| root.rename(&from, &to, false))
        .await
        .map_err(|e| {
            if e.error == "exists" {
                ApiError::bad_request("something of that name exists already")
            } else {
                e
            }
        });
    done(
        &web,
        &current,
        &dir,
        renamed.map(|()| format!("Renamed to {name:?}.")),
    )
}

/// `POST /files/delete`
pub(crate) async fn delete(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let home = VPath::root();
    let (dir, path) = match target(&posted.fields, "name") {
        Ok(x) => x,
        Err(e) => return done(&web, &current, &home, Err(e)),
    };
    let name = posted.fields.trimmed("name").to_string();
    let removed = on_root(&web, &current, move |root| {
        transfer::delete_path(root, &path, true, 0)
    })
    .await;
    done(
        &web,
        &current,
        &dir,
        removed.map(|()| format!("{name:?} deleted.")),
    )
}
