//! The server-rendered web UI: setup wizard, login, files, security,
//! administration and system pages. Pages are maud templates (escaped by
//! default); one stylesheet and one small script ship inside the binary.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::Web;

/// The stylesheet.
const STYLE: &str = include_str!("../assets/style.css");
/// The script (upload progress, confirmations); no inline script anywhere.
const SCRIPT: &str = include_str!("../assets/app.js");

/// The page routes and assets.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
}

/// The answer for an unknown path: JSON under `/api/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return super::error::ApiError::not_found(
            "there is no such API route; see /api/v1/openapi.json",
        )
        .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>Not found</title><p>Not found.</p>"),
    )
        .into_response()
}

/// A QR code of `text` as an SVG element (dark modules on white).
pub fn qr_svg(text: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
        Err(_) => String::new(),
    }
}
