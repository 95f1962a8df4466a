//! Request extractors: who is asking, from where, and JSON bodies whose
//! every rejection is a JSON error.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::session::{COOKIE, Carrier, Current, Found, Token};
use super::{Peer, Web, peer_ip};
use crate::auth::flow::{Login, Step};
use crate::auth::{Method as LoginMethod, Protocol};

/// The header that carries the CSRF token of a cookie session on API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The client: source address and User-Agent.
#[derive(Clone, Debug)]
pub struct Client {
    /// Source address.
    pub ip: IpAddr,
    /// User-Agent, as sent (shortened when stored).
    pub agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(client(parts))
    }
}

fn client(parts: &Parts) -> Client {
    Client {
        ip: peer_ip(parts.extensions.get::<Peer>()),
        agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    }
}

/// The session cookie's value, if the request has one.
pub fn cookie_token(parts: &Parts) -> Option<Token> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| Token::presented(value))
}

/// The bearer token, if the request has one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A JSON body; any rejection (syntax, unknown field, wrong type, missing
/// content type, too large) answers JSON `{error, message}`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(&rejection)),
        };
        // serde would also fill a struct from an array, field by field; a
        // body is an object.
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an optional
/// field: absent is `None`, a value is `Some`, and `null` is refused (it
/// would otherwise read as "no change" without saying so).
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// For `#[serde(deserialize_with = "object")]` on a nested struct: only a
/// JSON object, never an array filled field by field.
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let value = serde_json::Value::deserialize(d)?;
    if !value.is_object() {
        return Err(D::Error::custom("expected a JSON object"));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(D::Error::custom)
}

/// Refuses arrays where `pointers` (JSON pointers into `value`) should hold
/// objects; for bodies of core types, whose nested structs serde would also
/// fill from arrays.
pub fn require_objects(value: &serde_json::Value, pointers: &[&str]) -> Result<(), ApiError> {
    for p in pointers {
        if let Some(v) = value.pointer(p)
            && !v.is_object()
        {
            return Err(ApiError::bad_request(format!(
                "{} must be a JSON object",
                p.trim_start_matches('/').replace('/', ".")
            )));
        }
    }
    Ok(())
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "too_large",
            "the request body is larger than the server accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ => ApiError::bad_request(text),
    }
}

/// A path parameter; a value that does not decode (bad percent-encoding,
/// not UTF-8) answers JSON `{error, message}` like every other rejection.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParam(v)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "a path parameter is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A logged-in API caller: a bearer session, an access token, or a browser
/// session cookie (which must send `X-CSRF-Token` on changes).
#[derive(Clone, Debug)]
pub struct ApiUser(pub Current);

impl FromRequestParts<Arc<Web>> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, ApiError> {
        match caller(parts, web).await? {
            Caller::Granted(current) => Ok(ApiUser(*current)),
            Caller::MustEnrol(_) => Err(enrolment_required()),
        }
    }
}

/// The API answer for a session that must enrol before anything else.
pub fn enrolment_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "enrolment_required",
        "This account must set up two-factor authentication first: POST /api/v1/me/mfa/totp, then /api/v1/me/mfa/totp/confirm.",
    )
}

/// Who is calling the API.
#[derive(Debug)]
pub enum Caller {
    /// A granted session or access token.
    Granted(Box<Current>),
    /// A bearer session that must enrol TOTP first (its token).
    MustEnrol(Token),
}

/// Finds the caller of an API request.
pub async fn caller(parts: &Parts, web: &Arc<Web>) -> Result<Caller, ApiError> {
    let now = web.now();
    if let Some(value) = bearer(parts) {
        let token = Token::presented(value);
        if value.starts_with("cft_") {
            return access_token(parts, web, token).await;
        }
        return match web.sessions.find(&web.auth, &token, now) {
            Found::Granted(current) => Ok(Caller::Granted(current)),
            Found::Pending {
                stage: "must_enrol",
                ..
            } => Ok(Caller::MustEnrol(token)),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "The token is unknown or has expired; log in again.",
            )),
        };
    }
    if let Some(token) = cookie_token(parts)
        && let Found::Granted(current) = web.sessions.find(&web.auth, &token, now)
    {
        if !safe_method(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !web.sessions.csrf_ok(&token, presented) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "This change needs the page's X-CSRF-Token header; reload the page and try again.",
                ));
            }
        }
        return Ok(Caller::Granted(current));
    }
    Err(ApiError::unauthenticated())
}

/// GET, HEAD and OPTIONS change nothing.
pub fn safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// An access token as bearer: a full login through the core on every
/// request (so a revoked or expired token stops at once).
async fn access_token(parts: &Parts, web: &Arc<Web>, token: Token) -> Result<Caller, ApiError> {
    let client = client(parts);
    let auth = web.auth.clone();
    let step = tokio::task::spawn_blocking(move || {
        let account = auth.token_account(token.expose())?;
        let Some(account) = account else {
            return Ok(None);
        };
        let step = Login::new(&account, client.ip, Protocol::Https).password(
            &auth,
            LoginMethod::Api,
            token.expose(),
        );
        Ok::<_, crate::auth::AuthError>(Some((step, token)))
    })
    .await
    .map_err(ApiError::internal)??;
    match step {
        Some((Step::Granted(session), token)) => Ok(Caller::Granted(Box::new(Current {
            id: format!("token:{}", session.token.clone().unwrap_or_default()),
            expires_at: web.now(),
            csrf: String::new(),
            carrier: Carrier::Bearer,
            token,
            session,
        }))),
        Some((Step::Locked(l), _)) => {
            Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "locked", l.message())
                    .retry_after(l.retry_after),
            )
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The access token is unknown, expired, revoked or not valid for HTTPS.",
        )),
    }
}
