//! The file browser: folders with breadcrumbs, download, new folder,
//! rename, delete. Uploads go from the page's script straight to the REST
//! API (`PUT /api/v1/files/content`, with the session's CSRF header), which
//! streams the body to disk with progress in the browser; downloads stream
//! from the file. Nothing holds a whole file in memory.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};

use super::{Nav, Posted, Signed, bytes, csrf_field, enc, local_time, respond, see_other, shell};
use crate::files::VPath;
use crate::web::error::ApiError;
use crate::web::session::Current;
use crate::web::transfer::{self, FolderListing, on_root};
use crate::web::{Web, archive};

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
    let listed = on_root(&web, current, move |root| {
        Ok((transfer::list_folder(root, &p)?, root.room().ok()))
    })
    .await;
    let (listing, room) = match listed {
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
            folder(current, &path, &listing, room, web.settings.upload_chunk),
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

/// The kind of preview a file name gets: `image` or `text`, with the
/// Content-Type it is served with. SVG is text here (it can carry script).
fn preview_kind(name: &str) -> Option<(&'static str, &'static str)> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => ("image", "image/png"),
        "jpg" | "jpeg" => ("image", "image/jpeg"),
        "gif" => ("image", "image/gif"),
        "webp" => ("image", "image/webp"),
        "avif" => ("image", "image/avif"),
        "bmp" => ("image", "image/bmp"),
        "txt" | "md" | "log" | "csv" | "tsv" | "json" | "xml" | "yaml" | "yml" | "toml" | "ini"
        | "conf" | "cfg" | "sh" | "py" | "rs" | "c" | "h" | "js" | "css" | "html" | "htm"
        | "svg" | "sql" | "diff" | "patch" => ("text", "text/plain; charset=utf-8"),
        _ => return None,
    })
}

/// Largest image shown in a preview.
const PREVIEW_IMAGE_MAX: u64 = 20 * 1024 * 1024;
/// Bytes of a text file a preview shows.
const PREVIEW_TEXT_MAX: u64 = 256 * 1024;

/// The disk-space bar: what uploads may still fill of the file system.
fn space_bar(room: Option<crate::files::Room>) -> Markup {
    let Some(room) = room.filter(|r| r.size > 0) else {
        return html! {};
    };
    let used = room.size.saturating_sub(room.free);
    let pct = used.saturating_mul(100) / room.size;
    html! {
        section.space #space aria-labelledby="space-h" {
            h2.sr #space-h { "Disk space" }
            p {
                strong { (bytes(room.usable)) } " free for uploads"
                span.muted { " · " (bytes(used)) " of " (bytes(room.size)) " used (" (pct) " %)" }
            }
            meter #space-meter min="0" max=(room.size) low=(room.size / 100 * 80)
                high=(room.size / 100 * 95) optimum="0" value=(used)
                aria-label="Disk space used" { (pct) " %" }
            @if room.usable == 0 {
                p.help { "The disk is full up to the reserve kept for the system: uploads are refused until files are deleted." }
            }
        }
    }
}

fn folder(
    current: &Current,
    path: &VPath,
    listing: &FolderListing,
    room: Option<crate::files::Room>,
    chunk: u64,
) -> Markup {
    let csrf = current.csrf.as_str();
    let dir = text(path);
    let can_write = current.session.permissions.write;
    let can_delete = current.session.permissions.delete;
    let folders: Vec<&str> = listing
        .entries
        .iter()
        .filter(|e| e.kind == "directory")
        .map(|e| e.name.as_str())
        .collect();
    html! {
        (breadcrumbs(path))
        (space_bar(room))
        @if can_write {
            div.toolbar {
                form.upload #upload-form data-dir=(dir) data-chunk=(chunk) {
                    label.button.primary for="upload-files" { "Upload files" }
                    input #upload-files.visually-hidden type="file" multiple;
                    label.button for="upload-folder" { "Upload a folder" }
                    input #upload-folder.visually-hidden type="file" multiple webkitdirectory;
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
            p #drop-zone.drop-zone hidden { "Drop files or folders anywhere on this page to upload them here." }
            div #upload-status.upload-status hidden {
                p #upload-label aria-live="polite" { "Uploading…" }
                progress #upload-progress max="100" value="0" { "0%" }
                ul #upload-queue.upload-queue aria-label="Transfers" {}
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
            div.file-tools {
                label for="filter" { "Filter" }
                input #filter type="search" placeholder="Name contains…" autocomplete="off";
                form #zip-form method="post" action="/files/zip" {
                    (csrf_field(csrf))
                    input type="hidden" name="dir" value=(dir);
                }
                div #selection.selection role="group" aria-label="Selected items" {
                    span #selected-count aria-live="polite" { "None selected" }
                    button.small type="submit" form="zip-form" #zip-selected { "Download as zip" }
                    @if can_delete {
                        label.sr for="move-to" { "Move the selected items to the folder" }
                        input #move-to type="text" list="move-targets" value=(dir) maxlength="4096";
                        datalist #move-targets {
                            @if let Some(up) = path.parent() { option value=(text(&up)) {} }
                            @for f in &folders {
                                @if let Ok(c) = path.child(f.as_bytes()) { option value=(text(&c)) {} }
                            }
                        }
                        button.small type="button" #move-selected { "Move" }
                        button.small.danger type="button" #delete-selected { "Delete" }
                    }
                }
            }
            div.table-wrap {
                table.files #file-table data-dir=(dir) {
                    thead {
                        tr {
                            th.pick scope="col" { input #select-all type="checkbox" aria-label="Select all"; }
                            th scope="col" aria-sort="ascending" { button.sort type="button" data-sort="name" { "Name" } }
                            th.num scope="col" { button.sort type="button" data-sort="size" { "Size" } }
                            th.hide-narrow scope="col" { button.sort type="button" data-sort="mtime" { "Modified" } }
                            th scope="col" { span.sr { "Actions" } }
                        }
                    }
                    tbody {
                        @for e in &listing.entries {
                            @let child = path.child(e.name.as_bytes()).ok();
                            @let is_dir = e.kind == "directory";
                            @let stamp = u64::try_from(e.modified).unwrap_or(0);
                            tr data-name=(e.name) data-kind=(e.kind) data-size=(if is_dir { 0 } else { e.size }) data-mtime=(stamp) {
                                td.pick { input.pick type="checkbox" form="zip-form" name="name" value=(e.name) aria-label=(format!("Select {}", e.name)); }
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
                                td.hide-narrow { (local_time(stamp)) }
                                td.actions { div.row-actions {
                                    @if let (Some(c), Some((kind, _)), "file") = (&child, preview_kind(&e.name), e.kind) {
                                        button.small type="button" data-preview=(text(c)) data-preview-kind=(kind) { "Preview" span.sr { " " (e.name) } }
                                    }
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
            p #filter-empty.help hidden { "No name in this folder matches the filter." }
            @if listing.truncated {
                p.help { "This folder has more entries than the page shows; use SFTP to see them all." }
            }
            dialog #preview.preview aria-labelledby="preview-h" {
                div.preview-head {
                    h2 #preview-h { "Preview" }
                    a.button.small #preview-download href="#" { "Download" }
                    button.small type="button" #preview-close { "Close" }
                }
                div #preview-body.preview-body {}
            }
        }
        script src="/assets/files.js" defer {}
    }
}

/// The file named by `?path=` (not the home itself), or the error page.
fn file_path(current: &Current, q: &HashMap<String, String>) -> Result<VPath, Box<Response>> {
    let raw = q.get("path").map_or("", String::as_str);
    match VPath::parse(raw.as_bytes()) {
        Ok(p) if !p.is_root() => Ok(p),
        Ok(_) => Err(Box::new(error_page(
            current,
            &ApiError::bad_request("the home folder is not a file"),
        ))),
        Err(e) => Err(Box::new(error_page(current, &ApiError::from(e)))),
    }
}

/// `GET /files/download?path=`
pub(crate) async fn download(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    let path = match file_path(current, &q) {
        Ok(p) => p,
        Err(r) => return *r,
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

impl super::Fields {
    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `POST /files/zip`: the ticked entries (`name`, repeated) of `dir` as
/// one ZIP archive, streamed.
pub(crate) async fn zip(State(web): State<Arc<Web>>, posted: Posted) -> Response {
    let current = match posted.granted() {
        Ok(c) => c.clone(),
        Err(r) => return *r,
    };
    let dir = match VPath::parse(posted.fields.get("dir").as_bytes()) {
        Ok(d) => d,
        Err(e) => return error_page(&current, &ApiError::from(e)),
    };
    let names: Vec<String> = posted.fields.all("name").map(str::to_string).collect();
    if names.is_empty() {
        return done(
            &web,
            &current,
            &dir,
            Err(ApiError::bad_request(
                "tick the files and folders to download first",
            )),
        );
    }
    let Some(slot) = archive::slot() else {
        return error_page(
            &current,
            &ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "other archives are being made; try again in a minute",
            ),
        );
    };
    let root = match transfer::open_root(&web, &current).await {
        Ok(r) => r,
        Err(e) => return error_page(&current, &e),
    };
    let (r, d, n) = (root.clone(), dir.clone(), names.clone());
    let items = match tokio::task::spawn_blocking(move || archive::plan(&r, &d, &n)).await {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => return error_page(&current, &ApiError::from(e)),
        Err(e) => return error_page(&current, &ApiError::internal(e)),
    };
    let name = match names.as_slice() {
        [one] => format!("{one}.zip"),
        _ => match dir.file_name() {
            Some(f) => format!("{}.zip", String::from_utf8_lossy(f)),
            None => "files.zip".to_string(),
        },
    };
    let mut response = Response::new(archive::stream(root, items, slot));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&transfer::content_disposition(&name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /files/preview?path=`: an image as itself, or the start of a text
/// file as plain text, for the page's preview. Only known kinds, within a
/// size, with a policy that runs no script even when opened on its own.
pub(crate) async fn preview(
    State(web): State<Arc<Web>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let current = &signed.current;
    let path = match file_path(current, &q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let name = String::from_utf8_lossy(path.file_name().unwrap_or_default()).into_owned();
    let Some((kind, content_type)) = preview_kind(&name) else {
        return error_page(
            current,
            &ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "no_preview",
                "this kind of file has no preview; download it",
            ),
        );
    };
    let opened = on_root(&web, current, move |root| {
        let file = root.open_file(
            &path,
            &crate::files::OpenHow {
                read: true,
                ..Default::default()
            },
        )?;
        let size = file.metadata().map_err(crate::files::FsError::Io)?.len();
        Ok((file, size))
    })
    .await;
    let (file, size) = match opened {
        Ok(x) => x,
        Err(e) => return error_page(current, &e),
    };
    let sent = if kind == "image" {
        if size > PREVIEW_IMAGE_MAX {
            return error_page(
                current,
                &ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the image is too large to preview; download it",
                ),
            );
        }
        size
    } else {
        size.min(PREVIEW_TEXT_MAX)
    };
    use tokio::io::AsyncReadExt as _;
    let reader = tokio::fs::File::from_std(file).take(sent);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024);
    let mut response = Response::new(axum::body::Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    if sent < size {
        headers.insert("x-coffer-truncated", HeaderValue::from(size));
    }
    response
}
