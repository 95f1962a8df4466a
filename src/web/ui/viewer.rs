//! The interactive API viewer's files: Swagger UI, served from a directory
//! on disk (`[https] apidoc_dir`) and not from the binary, whose budget
//! its 2 MB would break. `tools/install-apidoc` puts them there from npm,
//! at the version and integrity hash its lock file pins.
//!
//! `/api/viewer/{file}` serves only the names in [`FILES`]. Each is opened
//! beneath the directory without following a link (`O_NOFOLLOW` on a name
//! without a slash; the directory itself may be a link), and served only
//! when it is a regular file of at most [`MAX_FILE`] bytes. The page links
//! them with a version stamp in the URL (size and modification time), so a
//! browser keeps them for a year and a reinstalled viewer gets new URLs.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rustix::fs::{FileType, Mode, OFlags, Stat};

use crate::web::Web;
use crate::web::error::ApiError;

/// Where the viewer's files are served.
pub(crate) const VIEWER_PREFIX: &str = "/api/viewer/";

/// Swagger UI's script.
const BUNDLE: &str = "swagger-ui-bundle.js";
/// Swagger UI's stylesheet.
const STYLE: &str = "swagger-ui.css";
/// Swagger UI's licence, which travels with its code.
const LICENSE: &str = "LICENSE";

/// Every file served, with its type.
const FILES: [(&str, &str); 5] = [
    (BUNDLE, "text/javascript; charset=utf-8"),
    (STYLE, "text/css; charset=utf-8"),
    (LICENSE, "text/plain; charset=utf-8"),
    ("NOTICE", "text/plain; charset=utf-8"),
    // The licences of the code bundled into the script.
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
    ),
];

/// Largest file served (the script is about 1.8 MB).
pub(crate) const MAX_FILE: u64 = 8 << 20;

/// How long a browser keeps a file (its URL changes with its version).
const CACHE: &str = "public, max-age=31536000, immutable";

/// An installed viewer: the URLs of the files the page links.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Installed {
    /// The script, with its version stamp.
    pub script: String,
    /// The stylesheet, with its version stamp.
    pub style: String,
}

/// The viewer in `dir`, or `None` when its script, stylesheet or licence
/// is missing or refused there.
pub(crate) fn installed(dir: &Path) -> Option<Installed> {
    let dir = open_dir(dir).ok()?;
    let url = |name: &str| -> Option<String> {
        let (_, st) = open(&dir, name).ok()?;
        Some(format!(
            "{VIEWER_PREFIX}{name}?v={:x}.{:x}.{:x}",
            st.st_size, st.st_mtime, st.st_mtime_nsec
        ))
    };
    url(LICENSE)?;
    Some(Installed {
        script: url(BUNDLE)?,
        style: url(STYLE)?,
    })
}

/// [`installed`] off the async threads.
pub(crate) async fn find(dir: PathBuf) -> Option<Installed> {
    tokio::task::spawn_blocking(move || installed(&dir))
        .await
        .ok()
        .flatten()
}

/// `GET /api/viewer/{file}`: one of [`FILES`], or 404.
pub(crate) async fn file(State(web): State<Arc<Web>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(&(name, mime)) = FILES.iter().find(|(n, _)| *n == name) else {
        return missing();
    };
    let dir = web.settings.apidoc_dir.clone();
    match tokio::task::spawn_blocking(move || read(&dir, name)).await {
        Ok(Ok(body)) => (
            [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, CACHE)],
            body,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::debug!(file = name, error = %e, "API viewer file not served");
            missing()
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

fn missing() -> Response {
    ApiError::not_found("the interactive API viewer has no such file; see /api").into_response()
}

fn open_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// Opens `name`, one of [`FILES`] (no slash), beneath `dir`: not through a
/// link, only a regular file of at most [`MAX_FILE`] bytes. `NONBLOCK`
/// keeps a FIFO in its place from stalling the open.
fn open(dir: &OwnedFd, name: &str) -> std::io::Result<(std::fs::File, Stat)> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > MAX_FILE {
        return Err(std::io::Error::other(
            "larger than the viewer's files may be",
        ));
    }
    Ok((std::fs::File::from(fd), st))
}

/// The content of `name` beneath `dir`, within [`MAX_FILE`] even if it
/// grows while read.
fn read(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (file, st) = open(&open_dir(dir)?, name)?;
    let mut body = Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0));
    file.take(MAX_FILE + 1).read_to_end(&mut body)?;
    if body.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(
            "larger than the viewer's files may be",
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(dir: &Path) {
        for name in [BUNDLE, STYLE, LICENSE] {
            std::fs::write(dir.join(name), format!("/* {name} */")).unwrap();
        }
    }

    #[test]
    fn the_viewer_is_installed_only_with_script_style_and_licence() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(installed(tmp.path()), None);
        assert_eq!(installed(&tmp.path().join("absent")), None);
        viewer(tmp.path());
        let found = installed(tmp.path()).unwrap();
        assert!(
            found
                .script
                .starts_with("/api/viewer/swagger-ui-bundle.js?v=")
        );
        assert!(found.style.starts_with("/api/viewer/swagger-ui.css?v="));
        std::fs::remove_file(tmp.path().join(LICENSE)).unwrap();
        assert_eq!(installed(tmp.path()), None, "no licence, no viewer");
    }

    #[test]
    fn links_fifos_directories_and_large_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        viewer(tmp.path());
        assert_eq!(read(tmp.path(), STYLE).unwrap(), b"/* swagger-ui.css */");

        // A link in a file's place, even to a file of the same name.
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        std::fs::remove_file(tmp.path().join(STYLE)).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join(STYLE)).unwrap();
        assert!(read(tmp.path(), STYLE).is_err());
        assert_eq!(installed(tmp.path()), None);

        // A FIFO (must not hang), a directory.
        std::fs::remove_file(tmp.path().join(STYLE)).unwrap();
        nix::unistd::mkfifo(&tmp.path().join(STYLE), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read(tmp.path(), STYLE).is_err());
        std::fs::remove_file(tmp.path().join(STYLE)).unwrap();
        std::fs::create_dir(tmp.path().join(STYLE)).unwrap();
        assert!(read(tmp.path(), STYLE).is_err());

        // Over the cap (sparse, so the test writes nothing).
        let big = std::fs::File::create(tmp.path().join(BUNDLE)).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        assert!(read(tmp.path(), BUNDLE).is_err());
        big.set_len(MAX_FILE).unwrap();
        assert_eq!(read(tmp.path(), BUNDLE).unwrap().len() as u64, MAX_FILE);
    }

    #[test]
    fn the_directory_itself_may_be_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        viewer(&real);
        std::os::unix::fs::symlink(&real, tmp.path().join("apidoc")).unwrap();
        assert!(installed(&tmp.path().join("apidoc")).is_some());
    }

    #[test]
    fn only_listed_names_are_files() {
        for name in [
            "../LICENSE",
            "..",
            ".",
            "",
            "index.html",
            "swagger-ui.css.map",
            "license",
        ] {
            assert!(!FILES.iter().any(|(n, _)| *n == name), "{name}");
        }
        assert!(FILES.iter().all(|(n, _)| !n.contains('/')));
    }
}
