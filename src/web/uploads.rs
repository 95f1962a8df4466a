//! Resumable uploads: a large file goes up in chunks, so a dropped
//! connection costs one chunk, not the whole transfer.
//!
//! `POST /files/uploads {path, size, overwrite?, parents?}` makes an upload
//! session after the same checks as a plain upload (the right to write, and
//! to delete when replacing; no folder replaced; inside the home; the size
//! within `https.max_upload` and the free space) and a hidden file beside
//! the target (`.NAME.upload-ID`). Each `PATCH /files/uploads/{id}?offset=N`
//! appends its body at `N`, which must be the bytes the server holds: a
//! chunk for another offset is refused with `409 wrong_offset` and the
//! real `offset`, so a client that lost an answer resumes from what the
//! server has. A chunk that breaks off keeps what arrived. The chunk that
//! completes the size moves the file into place atomically (never a half
//! file under the real name); `DELETE` cancels and removes the hidden file.
//!
//! Sessions belong to the account that made them (another account's id is
//! "not found"), every chunk is authorised afresh like any request, and
//! they are bounded: [`MAX_PER_ACCOUNT`] and [`MAX_ALL`] at once, each
//! ended with its file after [`IDLE_LIMIT`] seconds without a chunk. They
//! live in memory: a restart forgets them (their hidden files stay, like
//! those of an upload cut by a power loss).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Web;
use super::error::ApiError;
use super::extract::{ApiUser, JsonBody, PathParam};
use super::transfer::{
    UploadHow, Uploaded, discard_partial, open_partial, open_root, random_hex, too_large,
    upload_error, write_body,
};
use crate::clock::Timestamp;
use crate::files::{FsError, Growth, Root, VPath};

type Result<T> = std::result::Result<T, ApiError>;

/// Upload sessions one account holds at once.
pub const MAX_PER_ACCOUNT: usize = 8;
/// Upload sessions the server holds at once.
pub const MAX_ALL: usize = 256;
/// Seconds without a chunk after which a session ends and its file goes.
pub const IDLE_LIMIT: u64 = 24 * 3600;

/// The largest chunk read and dropped before a `wrong_offset` answer.
const DRAIN_AT_MOST: usize = 1024 * 1024;

/// One upload in progress.
#[derive(Debug)]
struct Upload {
    /// The account that made it.
    account: String,
    /// Where the file goes.
    target: VPath,
    /// The hidden file being written.
    temp: VPath,
    /// The size announced.
    size: u64,
    /// Replace an existing target at the end.
    overwrite: bool,
    /// The home it was made in, kept to remove the file on expiry.
    root: Arc<Root>,
    /// The hidden file, open.
    made: Arc<std::fs::File>,
    /// Bytes held (the hidden file's length).
    offset: AtomicU64,
    /// When the last chunk ended (or the session began).
    touched: AtomicU64,
    /// Bytes written, for the free-space checks.
    growth: Growth,
    /// Held by the chunk being written; a second one at once is refused.
    busy: tokio::sync::Mutex<()>,
    /// Cancelled or expired: the chunk in progress stops and the file goes.
    ended: AtomicBool,
}

/// Every upload session, by id.
#[derive(Default)]
pub struct Uploads {
    by_id: Mutex<HashMap<String, Arc<Upload>>>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").finish_non_exhaustive()
    }
}

impl Uploads {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the sessions idle for longer than [`IDLE_LIMIT`] out of the
    /// table (unless a chunk is being written), marked ended.
    fn expired(&self, now: Timestamp) -> Vec<Arc<Upload>> {
        let mut map = self.map();
        let old: Vec<String> = map
            .iter()
            .filter(|(_, u)| {
                now.saturating_sub(u.touched.load(Ordering::Relaxed)) > IDLE_LIMIT
                    && u.busy.try_lock().is_ok()
            })
            .map(|(id, _)| id.clone())
            .collect();
        old.iter()
            .filter_map(|id| map.remove(id))
            .inspect(|u| u.ended.store(true, Ordering::Relaxed))
            .collect()
    }

    /// The account's session `id` (another account's is not found).
    fn find(&self, id: &str, account: &str) -> Result<Arc<Upload>> {
        self.map()
            .get(id)
            .filter(|u| u.account == account)
            .cloned()
            .ok_or_else(|| ApiError::not_found("there is no such upload (it ended or expired)"))
    }

    /// Whether `account` (or the server) holds as many uploads as it may.
    fn full(&self, account: &str) -> bool {
        Self::full_in(&self.map(), account)
    }

    fn full_in(map: &HashMap<String, Arc<Upload>>, account: &str) -> bool {
        map.len() >= MAX_ALL
            || map.values().filter(|u| u.account == account).count() >= MAX_PER_ACCOUNT
    }

    fn remove(&self, id: &str) -> Option<Arc<Upload>> {
        self.map().remove(id)
    }
}

/// 429: the account or the server holds as many uploads as it may.
fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_uploads",
        format!(
            "too many uploads are in progress (at most {MAX_PER_ACCOUNT} per account); finish or cancel one first"
        ),
    )
}

/// Removes the files of ended sessions.
async fn discard_all(gone: Vec<Arc<Upload>>) {
    for u in gone {
        discard_partial(u.root.clone(), u.made.clone(), u.temp.clone()).await;
    }
}

/// `{path, size, overwrite?, parents?}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// The file to make.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Replace an existing file.
    #[serde(default)]
    pub overwrite: bool,
    /// Create missing folders on the way.
    #[serde(default)]
    pub parents: bool,
}

/// An upload session as the API shows it.
#[derive(Debug, Serialize)]
pub struct UploadView {
    /// Its id.
    pub id: String,
    /// The file it makes.
    pub path: String,
    /// The size announced.
    pub size: u64,
    /// Bytes the server holds: the next chunk starts here.
    pub offset: u64,
    /// When it ends unless a chunk arrives (Unix seconds).
    pub expires_at: Timestamp,
}

fn view(id: &str, u: &Upload) -> UploadView {
    UploadView {
        id: id.to_string(),
        path: String::from_utf8_lossy(u.target.as_bytes()).into_owned(),
        size: u.size,
        offset: u.offset.load(Ordering::Relaxed),
        expires_at: u.touched.load(Ordering::Relaxed).saturating_add(IDLE_LIMIT),
    }
}

/// `POST /files/uploads`
pub async fn create(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<NewUpload>,
) -> Result<Response> {
    discard_all(web.uploads.expired(web.now())).await;
    let target = VPath::parse(body.path.as_bytes()).map_err(ApiError::from)?;
    if target.is_root() {
        return Err(ApiError::bad_request("the home folder is not a file"));
    }
    let max = web.settings.max_upload;
    if max > 0 && body.size > max {
        return Err(too_large(max));
    }
    let account = current.session.account.clone();
    if web.uploads.full(&account) {
        return Err(too_many());
    }
    let id = random_hex(16)?;
    let root = open_root(&web, &current).await?;
    let how = UploadHow {
        overwrite: body.overwrite,
        parents: body.parents,
    };
    let (r, t, size) = (root.clone(), target.clone(), body.size);
    let opened = tokio::task::spawn_blocking(move || {
        let (temp, file) = open_partial(&r, &t, how, None)?;
        // The whole size must fit now; each chunk is checked again.
        if r.require_room(&file, size).is_err() {
            let _ = r.discard_made(&file, &temp);
            return Ok(None);
        }
        Ok::<_, FsError>(Some((temp, file)))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(upload_error)?;
    // An announced size the disk cannot take is the request's fault, not a
    // fault of the box: 413, as for a size over `https.max_upload`.
    let Some((temp, file)) = opened else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "no_space",
            format!(
                "the file does not fit: {size} bytes announced, more than the disk has room for (short of its reserve)"
            ),
        ));
    };
    let upload = Arc::new(Upload {
        account,
        target,
        temp,
        size: body.size,
        overwrite: body.overwrite,
        root,
        made: Arc::new(file),
        offset: AtomicU64::new(0),
        touched: AtomicU64::new(web.now()),
        growth: Growth::default(),
        busy: tokio::sync::Mutex::new(()),
        ended: AtomicBool::new(false),
    });
    let shown = view(&id, &upload);
    {
        // Checked again with the table held: two starts at once could
        // both have passed the first look.
        let mut map = web.uploads.map();
        if !Uploads::full_in(&map, &upload.account) {
            map.insert(id, upload);
            return Ok((StatusCode::CREATED, Json(shown)).into_response());
        }
    }
    discard_all(vec![upload]).await;
    Err(too_many())
}

/// `GET /files/uploads/{id}`
pub async fn show(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
) -> Result<Json<UploadView>> {
    discard_all(web.uploads.expired(web.now())).await;
    let u = web.uploads.find(&id, &current.session.account)?;
    Ok(Json(view(&id, &u)))
}

/// `DELETE /files/uploads/{id}`: cancels; the hidden file goes.
pub async fn cancel(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    let u = web.uploads.find(&id, &current.session.account)?;
    web.uploads.remove(&id);
    u.ended.store(true, Ordering::Relaxed);
    // A chunk still arriving removes the file itself when it ends (it
    // sees `ended`); one that ends soon is waited for.
    let wait = std::time::Duration::from_secs(5);
    if let Ok(_held) = tokio::time::timeout(wait, u.busy.lock()).await {
        discard_partial(u.root.clone(), u.made.clone(), u.temp.clone()).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `?offset=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkQuery {
    /// Where the chunk starts: the bytes the server holds.
    pub offset: u64,
}

/// `409 wrong_offset` with the offset the server holds (also in the
/// `Upload-Offset` header).
fn wrong_offset(held: u64) -> Response {
    let mut r = (
        StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": "wrong_offset",
            "message": format!("the server holds {held} bytes of this upload; send the chunk that starts there"),
            "offset": held,
        })),
    )
        .into_response();
    r.headers_mut()
        .insert("upload-offset", HeaderValue::from(held));
    r
}

/// `PATCH /files/uploads/{id}?offset=N`: appends the body at `N`.
pub async fn append(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
    q: std::result::Result<Query<ChunkQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let u = web.uploads.find(&id, &current.session.account)?;
    let Ok(_held) = u.busy.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload_busy",
            "another chunk of this upload is still arriving; ask for the offset and try again shortly",
        )
        .retry_after(2));
    };
    let held = u.offset.load(Ordering::Relaxed);
    if q.offset != held {
        // Read (and drop) a moderate chunk first, so the client, still
        // sending, sees the answer rather than a closed connection.
        let _ = axum::body::to_bytes(body, DRAIN_AT_MOST).await;
        return Ok(wrong_offset(held));
    }
    // Authorised afresh: the permissions may have changed since the start.
    let root = open_root(&web, &current).await?;
    root.require_write().map_err(ApiError::from)?;
    let written = write_chunk(&u, &root, held, body).await;
    u.touched.store(web.now(), Ordering::Relaxed);
    if u.ended.load(Ordering::Relaxed) {
        discard_partial(u.root.clone(), u.made.clone(), u.temp.clone()).await;
        return Err(ApiError::not_found("the upload was cancelled"));
    }
    let offset = written?;
    if offset < u.size {
        return Ok(Json(view(&id, &u)).into_response());
    }
    // Complete: into place, or gone.
    web.uploads.remove(&id);
    let (m, t, p, overwrite) = (
        u.made.clone(),
        u.temp.clone(),
        u.target.clone(),
        u.overwrite,
    );
    let r = root.clone();
    let placed = tokio::task::spawn_blocking(move || {
        m.sync_all().map_err(FsError::Io)?;
        r.place_made(&m, &t, &p, overwrite)
    })
    .await
    .map_err(ApiError::internal)?;
    if let Err(e) = placed {
        discard_partial(root, u.made.clone(), u.temp.clone()).await;
        return Err(upload_error(e));
    }
    let done = Uploaded {
        path: String::from_utf8_lossy(u.target.as_bytes()).into_owned(),
        size: u.size,
    };
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Writes one chunk at `start` and records what the file then holds.
/// Answers the new offset, or the error that stopped the chunk (what
/// arrived before it is kept and counted).
async fn write_chunk(u: &Upload, root: &Root, start: u64, body: Body) -> Result<u64> {
    let mut file = u
        .made
        .try_clone()
        .map_err(|e| ApiError::from(FsError::Io(e)))?;
    {
        use std::io::Seek as _;
        file.seek(std::io::SeekFrom::Start(start))
            .map_err(|e| ApiError::from(FsError::Io(e)))?;
    }
    let room = u.size.saturating_sub(start);
    let result = write_body(file, body, Some(room), root, &u.made, &u.growth).await;
    // The file's length is what the server holds, whatever happened.
    let held = u
        .made
        .metadata()
        .map_err(|e| ApiError::from(FsError::Io(e)))?
        .len();
    u.offset.store(held, Ordering::Relaxed);
    match result {
        Ok((_, None)) => Ok(held),
        Ok((_, Some(e))) if e.error == "too_large" => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the chunk goes past the upload's size ({} bytes); the server holds {held}",
                u.size
            ),
        )),
        Ok((_, Some(e))) | Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(dir: &std::path::Path, account: &str, touched: u64) -> Arc<Upload> {
        let root = Arc::new(
            Root::open(
                dir,
                account,
                crate::files::Access {
                    write: true,
                    delete: true,
                },
            )
            .unwrap(),
        );
        let target = VPath::parse(b"/big.bin").unwrap();
        let (temp, file) = open_partial(&root, &target, UploadHow::default(), Some("t1")).unwrap();
        Arc::new(Upload {
            account: account.into(),
            target,
            temp,
            size: 10,
            overwrite: false,
            root,
            made: Arc::new(file),
            offset: AtomicU64::new(0),
            touched: AtomicU64::new(touched),
            growth: Growth::default(),
            busy: tokio::sync::Mutex::new(()),
            ended: AtomicBool::new(false),
        })
    }

    #[test]
    fn another_accounts_upload_is_not_found() {
        let t = tempfile::tempdir().unwrap();
        let uploads = Uploads::default();
        uploads.map().insert("a".into(), upload(t.path(), "ann", 0));
        assert!(uploads.find("a", "ann").is_ok());
        assert_eq!(
            uploads.find("a", "bob").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            uploads.find("b", "ann").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn an_idle_upload_expires_and_its_hidden_file_goes() {
        let t = tempfile::tempdir().unwrap();
        let uploads = Uploads::default();
        uploads
            .map()
            .insert("a".into(), upload(t.path(), "ann", 1000));
        let hidden = t.path().join(".big.bin.upload-t1");
        assert!(hidden.exists());
        assert!(uploads.expired(1000 + IDLE_LIMIT).is_empty());
        // Not while a chunk is being written.
        let u = uploads.find("a", "ann").unwrap();
        let held = u.busy.try_lock().unwrap();
        assert!(uploads.expired(1001 + IDLE_LIMIT).is_empty());
        drop(held);
        let gone = uploads.expired(1001 + IDLE_LIMIT);
        assert_eq!(gone.len(), 1);
        assert!(gone.iter().all(|u| u.ended.load(Ordering::Relaxed)));
        discard_all(gone).await;
        assert!(!hidden.exists());
        assert!(uploads.find("a", "ann").is_err());
    }
}
