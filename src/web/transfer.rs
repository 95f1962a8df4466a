//! File operations over HTTPS, for the REST API and the web file browser.
//!
//! Every path is a virtual path inside the caller's home folder, resolved by
//! the same confined [`Root`] as SFTP (no `..`, no symlink leads out).
//! Downloads stream from the file in 64 KiB chunks; uploads stream to a
//! hidden temporary file beside the target and are renamed into place only
//! when the whole body arrived, so a broken upload never leaves half a file
//! under the real name. Neither ever holds a whole file in memory.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use super::Web;
use super::error::ApiError;
use super::extract::{ApiUser, JsonBody};
use super::session::Current;
use crate::files::{Follow, FsError, OpenHow, Root, VPath};

type Result<T> = std::result::Result<T, ApiError>;

/// Most entries a listing returns.
const MAX_ENTRIES: usize = 10_000;
/// Deepest folder tree a recursive delete walks.
const MAX_DEPTH: usize = 64;

/// Opens the caller's home (creating it on first use) through the core,
/// which refuses (and audits) a home with a symbolic link on its path.
pub async fn open_root(web: &Web, current: &Current) -> Result<Arc<Root>> {
    let auth = web.auth.clone();
    let session = current.session.clone();
    match tokio::task::spawn_blocking(move || auth.open_home(&session))
        .await
        .map_err(ApiError::internal)?
    {
        Ok(root) => Ok(Arc::new(root)),
        Err(e) if e.is_refusal() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "home_refused",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Runs a blocking file operation on the caller's home folder.
pub(crate) async fn on_root<T: Send + 'static>(
    web: &Web,
    current: &Current,
    f: impl FnOnce(&Root) -> std::result::Result<T, FsError> + Send + 'static,
) -> Result<T> {
    let root = open_root(web, current).await?;
    tokio::task::spawn_blocking(move || f(&root))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

fn vpath(text: &str) -> Result<VPath> {
    VPath::parse(text.as_bytes()).map_err(ApiError::from)
}

/// `?path=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// A path inside the home folder (`/` is the home itself).
    #[serde(default)]
    pub path: Option<String>,
    /// Replace an existing file (upload).
    #[serde(default)]
    pub overwrite: Option<bool>,
    /// Delete a folder with everything in it.
    #[serde(default)]
    pub recursive: Option<bool>,
    /// Create missing folders on the way to an uploaded file.
    #[serde(default)]
    pub parents: Option<bool>,
}

fn query(
    q: std::result::Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PathQuery> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// One entry of a listing.
#[derive(Clone, Debug, Serialize)]
pub struct FileEntry {
    /// The name (invalid UTF-8 shown with replacement characters).
    pub name: String,
    /// `file`, `directory`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Last change, Unix seconds.
    pub modified: i64,
}

/// A folder listing.
#[derive(Clone, Debug, Serialize)]
pub struct FolderListing {
    /// The folder.
    pub path: String,
    /// Folders first, then files, each by name.
    pub entries: Vec<FileEntry>,
    /// More entries exist than were returned.
    pub truncated: bool,
}

/// Lists a folder (blocking).
pub fn list_folder(root: &Root, path: &VPath) -> std::result::Result<FolderListing, FsError> {
    let mut listing = root.open_dir(path)?;
    let mut entries = Vec::new();
    let mut truncated = false;
    loop {
        let batch = listing.next_batch(root, false, 256, 64 * 1024)?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if entries.len() >= MAX_ENTRIES {
                truncated = true;
                break;
            }
            let kind = if e.stat.is_dir() {
                "directory"
            } else if e.stat.is_file() {
                "file"
            } else if e.stat.is_symlink() {
                "symlink"
            } else {
                "other"
            };
            entries.push(FileEntry {
                name: String::from_utf8_lossy(&e.name).into_owned(),
                kind,
                size: e.stat.size,
                modified: e.stat.mtime,
            });
        }
        if truncated {
            break;
        }
    }
    entries.sort_by(|a, b| {
        (a.kind != "directory", a.name.to_lowercase(), &a.name).cmp(&(
            b.kind != "directory",
            b.name.to_lowercase(),
            &b.name,
        ))
    });
    Ok(FolderListing {
        path: String::from_utf8_lossy(path.as_bytes()).into_owned(),
        entries,
        truncated,
    })
}

/// `GET /files?path=`: a folder listing.
pub async fn list(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    q: std::result::Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FolderListing>> {
    let q = query(q)?;
    let path = vpath(q.path.as_deref().unwrap_or("/"))?;
    Ok(Json(
        on_root(&web, &current, move |root| list_folder(root, &path)).await?,
    ))
}

/// `GET /files/content?path=`: streams a file.
pub async fn download(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    q: std::result::Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let q = query(q)?;
    let text = q
        .path
        .ok_or_else(|| ApiError::bad_request("path is required"))?;
    let path = vpath(&text)?;
    if path.is_root() {
        return Err(ApiError::bad_request("the home folder is not a file"));
    }
    download_response(&web, &current, path).await
}

/// The streaming answer for a file (shared with the file browser).
pub async fn download_response(web: &Web, current: &Current, path: VPath) -> Result<Response> {
    let name = String::from_utf8_lossy(path.file_name().unwrap_or(b"download")).into_owned();
    let (file, size) = on_root(web, current, move |root| {
        let file = root.open_file(
            &path,
            &OpenHow {
                read: true,
                ..OpenHow::default()
            },
        )?;
        let size = file.metadata().map_err(FsError::Io)?.len();
        Ok((file, size))
    })
    .await?;
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 64 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266).
pub(crate) fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// What an upload created.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The file.
    pub path: String,
    /// Bytes written.
    pub size: u64,
}

/// `PUT /files/content?path=[&overwrite=true][&parents=true]`: the body
/// becomes the file.
pub async fn upload(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    q: std::result::Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response> {
    let q = query(q)?;
    let text = q
        .path
        .ok_or_else(|| ApiError::bad_request("path is required"))?;
    let path = vpath(&text)?;
    let how = UploadHow {
        overwrite: q.overwrite.unwrap_or(false),
        parents: q.parents.unwrap_or(false),
    };
    let uploaded = store_upload(&web, &current, path, how, body).await?;
    Ok((StatusCode::CREATED, Json(uploaded)).into_response())
}

/// Streams `body` into `path` (shared with the file browser).
pub async fn store_upload(
    web: &Web,
    current: &Current,
    path: VPath,
    how: UploadHow,
    body: Body,
) -> Result<Uploaded> {
    if path.is_root() {
        return Err(ApiError::bad_request("the home folder is not a file"));
    }
    let root = open_root(web, current).await?;
    let (r, target) = (root.clone(), path.clone());
    let (temp, file) = tokio::task::spawn_blocking(move || open_partial(&r, &target, how, None))
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)?;
    // The upload keeps its own handle on the file it made, so the last
    // step can check that it moves (or discards) that file and no other.
    let made = Arc::new(
        file.try_clone()
            .map_err(|e| ApiError::from(FsError::Io(e)))?,
    );
    let growth = crate::files::Growth::default();
    let limit = (web.settings.max_upload > 0).then_some(web.settings.max_upload);
    let written = write_body(file, body, limit, &root, &made, &growth).await;
    let size = match written.and_then(|(size, broken)| broken.map_or(Ok(size), Err)) {
        Ok(size) => size,
        Err(e) => {
            discard_partial(root, made, temp).await;
            return Err(e);
        }
    };
    let (r, m, t, p) = (root.clone(), made.clone(), temp.clone(), path.clone());
    let placed = tokio::task::spawn_blocking(move || r.place_made(&m, &t, &p, how.overwrite))
        .await
        .map_err(ApiError::internal)?;
    if let Err(e) = placed {
        discard_partial(root, made, temp).await;
        return Err(upload_error(e));
    }
    Ok(Uploaded {
        path: String::from_utf8_lossy(path.as_bytes()).into_owned(),
        size,
    })
}

/// How an upload treats what is already there.
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadHow {
    /// Replace an existing file (needs the right to delete).
    pub overwrite: bool,
    /// Create missing folders on the way to the file.
    pub parents: bool,
}

/// The answer for a refused upload: an existing file is a conflict.
pub(crate) fn upload_error(e: FsError) -> ApiError {
    match e {
        FsError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            "a file of that name exists; send overwrite=true to replace it",
        ),
        e => ApiError::from(e),
    }
}

/// Removes an upload's hidden file (best effort: it is hidden and was
/// never placed).
pub(crate) async fn discard_partial(root: Arc<Root>, made: Arc<std::fs::File>, temp: VPath) {
    let _ = tokio::task::spawn_blocking(move || root.discard_made(&made, &temp)).await;
}

/// The checks an upload passes before its first byte (blocking), then its
/// hidden file beside `target` (`.NAME.upload-RANDOM`, or `tag` for the
/// random part), created exclusively. With `how.parents`, missing folders
/// on the way are created first, inside the home like everything else.
pub(crate) fn open_partial(
    root: &Root,
    target: &VPath,
    how: UploadHow,
    tag: Option<&str>,
) -> std::result::Result<(VPath, std::fs::File), FsError> {
    root.require_write()?;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(FsError::Refused("the home folder is not a file"));
    };
    if how.parents {
        make_parents(root, &parent)?;
    }
    let existing = root.stat(target, Follow::No).ok();
    // A folder is never replaced by a file: said before the body is
    // read, whether or not overwrite was asked for.
    if existing.as_ref().is_some_and(|s| s.is_dir()) {
        return Err(FsError::Io(std::io::Error::from_raw_os_error(
            nix::libc::EISDIR,
        )));
    }
    if existing.is_some() {
        if !how.overwrite {
            return Err(FsError::Io(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        // Refused before the body is read, not after.
        root.require_delete()?;
    }
    let tag = match tag {
        Some(t) => t.to_string(),
        None => random_hex(6).map_err(|_| FsError::Refused("no randomness"))?,
    };
    let mut temp_name = b".".to_vec();
    temp_name.extend_from_slice(name);
    temp_name.extend_from_slice(format!(".upload-{tag}").as_bytes());
    let temp = parent.child(&temp_name)?;
    let file = root.open_file(
        &temp,
        &OpenHow {
            write: true,
            create: true,
            exclusive: true,
            ..OpenHow::default()
        },
    )?;
    Ok((temp, file))
}

/// Creates the folders of `dir` that are missing (`mkdir -p` inside the
/// home); something other than a folder on the way refuses.
fn make_parents(root: &Root, dir: &VPath) -> std::result::Result<(), FsError> {
    root.require_write()?;
    let mut chain = Vec::new();
    let mut at = Some(dir.clone());
    while let Some(p) = at {
        if p.is_root() {
            break;
        }
        match root.stat(&p, Follow::No) {
            Ok(st) if st.is_dir() => break,
            Ok(_) => {
                return Err(FsError::Io(std::io::Error::from_raw_os_error(
                    nix::libc::ENOTDIR,
                )));
            }
            Err(_) => {
                at = p.parent();
                chain.push(p);
            }
        }
    }
    for p in chain.iter().rev() {
        match root.mkdir(p, None) {
            Ok(()) => {}
            // Made meanwhile by another upload of the same folder.
            Err(FsError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes a request body to `file` (`made` is the same file) at its
/// current position, up to `limit` bytes and short of the file system's
/// reserve. Answers the bytes written and, if the body broke off or was
/// refused part way, the error: what was written before it stays written
/// (a resumable upload goes on from there).
pub(crate) async fn write_body(
    file: std::fs::File,
    body: Body,
    limit: Option<u64>,
    root: &Root,
    made: &std::fs::File,
    growth: &crate::files::Growth,
) -> Result<(u64, Option<ApiError>)> {
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    let mut broken = None;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            broken = Some(ApiError::bad_request("the upload was interrupted"));
            break;
        };
        if let Some(max) = limit
            && size.saturating_add(chunk.len() as u64) > max
        {
            broken = Some(too_large(max));
            break;
        }
        if let Err(e) = root.room_for_write(growth, made, chunk.len() as u64) {
            broken = Some(e.into());
            break;
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::from(FsError::Io(e)))?;
        size = size.saturating_add(chunk.len() as u64);
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::from(FsError::Io(e)))?;
    Ok((size, broken))
}

/// 413: more than `max` bytes.
pub(crate) fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("uploads are limited to {max} bytes"),
    )
}

/// `n` random bytes in hex.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n.min(64)];
    getrandom::fill(&mut b).map_err(ApiError::internal)?;
    Ok(data_encoding::HEXLOWER.encode(&b))
}

/// `{path}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    /// The folder to create.
    pub path: String,
    /// Create missing folders on the way, and accept an existing folder.
    #[serde(default)]
    pub parents: bool,
}

/// `POST /files/mkdir`
pub async fn mkdir(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<MkdirRequest>,
) -> Result<Response> {
    let path = vpath(&body.path)?;
    if path.is_root() && !body.parents {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            "the home folder exists",
        ));
    }
    let shown = String::from_utf8_lossy(path.as_bytes()).into_owned();
    let parents = body.parents;
    on_root(&web, &current, move |root| {
        if parents {
            make_parents(root, &path)
        } else {
            root.mkdir(&path, None)
        }
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"path": shown})),
    )
        .into_response())
}

/// `{from, to, overwrite?}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// What to rename.
    pub from: String,
    /// The new path.
    pub to: String,
    /// Replace an existing `to`.
    #[serde(default)]
    pub overwrite: bool,
}

/// `POST /files/rename`
pub async fn rename(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<RenameRequest>,
) -> Result<Json<serde_json::Value>> {
    let from = vpath(&body.from)?;
    let to = vpath(&body.to)?;
    if from.is_root() || to.is_root() {
        return Err(ApiError::bad_request(
            "the home folder itself cannot be renamed",
        ));
    }
    let shown = String::from_utf8_lossy(to.as_bytes()).into_owned();
    on_root(&web, &current, move |root| {
        root.rename(&from, &to, body.overwrite)
    })
    .await?;
    Ok(Json(serde_json::json!({"path": shown})))
}

/// `DELETE /files?path=[&recursive=true]`
pub async fn remove(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    q: std::result::Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode> {
    let q = query(q)?;
    let text = q
        .path
        .ok_or_else(|| ApiError::bad_request("path is required"))?;
    let path = vpath(&text)?;
    if path.is_root() {
        return Err(ApiError::forbidden(
            "the home folder itself cannot be deleted",
        ));
    }
    let recursive = q.recursive.unwrap_or(false);
    on_root(&web, &current, move |root| {
        delete_path(root, &path, recursive, 0)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a file, an empty folder, or (recursive) a folder tree.
pub fn delete_path(
    root: &Root,
    path: &VPath,
    recursive: bool,
    depth: usize,
) -> std::result::Result<(), FsError> {
    let stat = root.stat(path, Follow::No)?;
    if !stat.is_dir() {
        return root.remove(path);
    }
    if recursive {
        if depth >= MAX_DEPTH {
            return Err(FsError::Refused(
                "the folder tree is too deep to delete at once",
            ));
        }
        each_child(root, path, |child, _| {
            delete_path(root, &child, true, depth + 1)
        })?;
    }
    root.rmdir(path)
}

/// Calls `f` with the path and name of every entry of the folder `path`,
/// read in batches (blocking); the first error stops the walk.
pub(crate) fn each_child(
    root: &Root,
    path: &VPath,
    mut f: impl FnMut(VPath, &[u8]) -> std::result::Result<(), FsError>,
) -> std::result::Result<(), FsError> {
    let mut listing = root.open_dir(path)?;
    loop {
        let batch = listing.next_batch(root, false, 256, 64 * 1024)?;
        if batch.is_empty() {
            return Ok(());
        }
        for e in batch {
            f(path.child(&e.name)?, &e.name)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_is_safe_and_keeps_the_exact_name() {
        assert_eq!(
            content_disposition("report 2026.pdf"),
            "attachment; filename=\"report 2026.pdf\"; filename*=UTF-8''report%202026%2Epdf"
        );
        let crafted = content_disposition("a\"b\r\nSet-Cookie: x.txt");
        assert!(!crafted.contains('\r') && !crafted.contains('\n'));
        assert!(crafted.starts_with("attachment; filename=\"a_b__Set-Cookie: x.txt\""));
        assert!(content_disposition("résumé.txt").ends_with("r%C3%A9sum%C3%A9%2Etxt"));
    }
}
