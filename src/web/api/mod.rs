//! The REST API under `/api/v1`: JSON in and out, errors as
//! `{error, message}`. The routes are registered through `Api::add`, which
//! records each method and path, so a test can hold the list against the
//! OpenAPI document (`openapi.json`, served at `/api/v1/openapi.json`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod admin;
mod me;

pub use admin::system_view;
use admin::*;
use me::*;

use super::error::ApiError;
use super::extract::{
    ApiUser, Caller, Client, JsonBody, PathParam, caller, object, present, require_objects,
};
use super::session::{Carrier, Stage};
use super::{Web, transfer, uploads};
use crate::auth::accounts::{AccountChange, AccountView, MfaView, NewAccount};
use crate::auth::flow::{DenyReason, Login, Step};
use crate::auth::password::Secret;
use crate::auth::{Actor, AuthError, Group, Method as LoginMethod, Permissions, Protocol, Role};

/// The OpenAPI 3.1 document.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The API router and the list of what it serves.
pub struct Api {
    /// The routes.
    pub router: Router<Arc<Web>>,
    /// `(METHOD, /path)` of every route, paths in OpenAPI form (`{name}`).
    pub routes: Vec<(&'static str, &'static str)>,
}

impl Api {
    fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    /// Adds a route; `methods` names the methods `handler` answers.
    fn add(
        mut self,
        methods: &[&'static str],
        path: &'static str,
        handler: MethodRouter<Arc<Web>>,
    ) -> Self {
        for m in methods {
            self.routes.push((m, path));
        }
        self.router = self.router.route(path, handler);
        self
    }
}

/// Every API route.
pub fn routes() -> Api {
    use axum::routing::{delete, post, put};
    Api::new()
        .add(&["GET"], "/openapi.json", get(openapi))
        .add(&["GET"], "/health", get(health))
        .add(&["POST"], "/claim", post(claim))
        .add(&["POST"], "/auth/login", post(login))
        .add(&["POST"], "/auth/logout", post(logout))
        .add(&["GET"], "/me", get(me))
        .add(&["PUT"], "/me/password", put(change_password))
        .add(&["DELETE"], "/me/mfa", delete(remove_own_mfa))
        .add(&["POST"], "/me/mfa/totp", post(totp_start))
        .add(&["POST"], "/me/mfa/totp/confirm", post(totp_confirm))
        .add(
            &["POST"],
            "/me/mfa/recovery-codes",
            post(new_recovery_codes),
        )
        .add(&["POST"], "/me/mfa/skip", post(skip_enrolment))
        .add(
            &["GET", "POST"],
            "/me/tokens",
            get(my_tokens).post(create_my_token),
        )
        .add(&["DELETE"], "/me/tokens/{id}", delete(revoke_my_token))
        .add(&["GET"], "/me/sessions", get(my_sessions))
        .add(&["DELETE"], "/me/sessions/{id}", delete(end_my_session))
        .add(
            &["GET", "POST"],
            "/users",
            get(list_users).post(create_user),
        )
        .add(
            &["GET", "PATCH", "DELETE"],
            "/users/{name}",
            get(show_user).patch(update_user).delete(remove_user),
        )
        .add(&["DELETE"], "/users/{name}/mfa", delete(reset_user_mfa))
        .add(&["POST"], "/users/{name}/unlock", post(unlock_user))
        .add(&["GET"], "/locks", get(show_locks))
        .add(&["POST"], "/unlock", post(unlock_address))
        .add(
            &["GET", "POST"],
            "/users/{name}/tokens",
            get(user_tokens).post(create_user_token),
        )
        .add(
            &["DELETE"],
            "/users/{name}/tokens/{id}",
            delete(revoke_user_token),
        )
        .add(
            &["GET", "POST"],
            "/groups",
            get(list_groups).post(create_group),
        )
        .add(
            &["GET", "PATCH", "DELETE"],
            "/groups/{name}",
            get(show_group).patch(update_group).delete(remove_group),
        )
        .add(
            &["GET", "PUT"],
            "/policy",
            get(show_policy).put(replace_policy),
        )
        .add(&["GET"], "/audit", get(audit))
        .add(&["GET"], "/system", get(system))
        .add(&["PUT"], "/system/certificate", put(replace_certificate))
        .add(
            &["GET", "DELETE"],
            "/files",
            get(transfer::list).delete(transfer::remove),
        )
        .add(
            &["GET", "PUT"],
            "/files/content",
            get(transfer::download)
                .put(transfer::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .add(&["POST"], "/files/uploads", post(uploads::create))
        .add(
            &["GET", "PATCH", "DELETE"],
            "/files/uploads/{id}",
            get(uploads::show)
                .patch(uploads::append)
                .delete(uploads::cancel)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .add(&["POST"], "/files/mkdir", post(transfer::mkdir))
        .add(&["POST"], "/files/rename", post(transfer::rename))
        .add_fallback()
}

impl Api {
    fn add_fallback(mut self) -> Self {
        self.router = self
            .router
            .fallback(api_not_found)
            .layer(axum::middleware::from_fn(json_errors));
        self
    }
}

/// The largest refused body that is still read before the 413 answer.
const DRAIN_AT_MOST: u64 = 1024 * 1024;

/// Turns the router's own error answers (405, an undecodable path, a body
/// refused before a handler ran) into JSON `{error, message}`, so every
/// error of the API has one shape. Answers that are JSON already pass.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let has_body = request
        .headers()
        .contains_key(axum::http::header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = super::Settings::default().max_body as u64;
    // File bodies (an upload, a chunk of a resumable one) stream to disk.
    let path = request.uri().path();
    let file_body = path.ends_with("/files/content")
        || (request.method() == axum::http::Method::PATCH && path.contains("/files/uploads/"));
    if declared.is_some_and(|n| n > limit) && !file_body {
        // Too large for any JSON route. Read (and drop) a moderate body
        // before answering, so the client, still sending, sees the answer
        // rather than a reset connection.
        if declared.is_some_and(|n| n <= DRAIN_AT_MOST) {
            let _ = axum::body::to_bytes(request.into_body(), DRAIN_AT_MOST as usize).await;
        }
        let mut answer = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than the server accepts",
        )
        .into_response();
        answer.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return answer;
    }
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if has_body {
        // A refused request's body may be left unread, and then the
        // connection ends after the answer: say so, so the client does not
        // send its next request into a closed connection.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (error, fallback) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not answer that method; the Allow header lists the ones it does",
        ),
        StatusCode::NOT_FOUND => ("not_found", "there is no such API route"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "the request body is larger than the server accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        s if s.is_server_error() => ("internal", "the request failed on the server"),
        _ => ("invalid", "the request is not valid"),
    };
    let message = if text.is_empty() || status.is_server_error() {
        fallback.to_string()
    } else {
        text
    };
    let mut answer = ApiError::new(status, error, message).into_response();
    for name in [
        axum::http::header::ALLOW,
        axum::http::header::RETRY_AFTER,
        axum::http::header::CONNECTION,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, v.clone());
        }
    }
    answer
}

/// An account as the API shows it (`username` names it).
#[derive(Serialize)]
struct AccountJson {
    username: String,
    role: Role,
    group: Option<String>,
    disabled: bool,
    /// The account's own home folder, if it overrides the group's template.
    home: Option<String>,
    /// The effective home folder, relative to the files root.
    home_folder: String,
    ip_allow: Vec<ipnet::IpNet>,
    ip_deny: Vec<ipnet::IpNet>,
    read_only: bool,
    no_delete: bool,
    may_change_password: Option<bool>,
    permissions: Permissions,
    has_password: bool,
    public_keys: Vec<String>,
    mfa: MfaView,
    tokens: usize,
    locked: Vec<LockJson>,
    /// Code entry is locked from every address until then (too many wrong
    /// codes); `null` when it is not.
    code_entry_locked_until: Option<u64>,
    created_at: u64,
    /// The last login granted: when, from where, on which protocol, with
    /// which method; `null` before the first.
    last_login: Option<crate::auth::LastLogin>,
}

/// A lock of an account for one source address.
#[derive(Serialize)]
struct LockJson {
    address: String,
    until: u64,
}

impl From<AccountView> for AccountJson {
    fn from(v: AccountView) -> Self {
        let a = v.account;
        Self {
            username: a.name,
            role: a.role,
            group: a.group,
            disabled: a.disabled,
            home: a.home,
            home_folder: v.home_folder,
            ip_allow: a.ip_allow,
            ip_deny: a.ip_deny,
            read_only: a.read_only,
            no_delete: a.no_delete,
            may_change_password: a.may_change_password,
            permissions: v.permissions,
            has_password: v.has_password,
            public_keys: v.public_keys,
            mfa: v.mfa,
            tokens: v.tokens,
            locked: v
                .locked
                .into_iter()
                .map(|(address, until)| LockJson { address, until })
                .collect(),
            code_entry_locked_until: v.code_entry_locked_until,
            created_at: a.created_at,
            last_login: a.last_login,
        }
    }
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("there is no such API route; see /api/v1/openapi.json")
}

type Result<T> = std::result::Result<T, ApiError>;

/// Runs a blocking core call (hashing, store writes) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, AuthError> + Send + 'static,
) -> Result<T> {
    crate::auth::blocking(f).await.map_err(ApiError::from)
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    claimed: bool,
    version: &'static str,
}

async fn health(State(web): State<Arc<Web>>) -> Result<Json<Health>> {
    let auth = web.auth.clone();
    let claimed = blocking(move || auth.is_claimed()).await?;
    Ok(Json(Health {
        status: "ok",
        claimed,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Counts an attempt from this address; 429 when over the rate.
pub fn rate(web: &Web, client: &Client) -> Result<()> {
    web.limiter.attempt(client.ip, web.now()).map_err(|wait| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many attempts from this address; try again in {wait} seconds."),
        )
        .retry_after(wait)
    })
}

fn web_actor(client: &Client) -> Actor {
    Actor {
        account: None,
        protocol: "https",
        address: Some(client.ip),
        access_token: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimRequest {
    claim_code: Secret,
    username: String,
    password: Secret,
}

async fn claim(
    State(web): State<Arc<Web>>,
    client: Client,
    JsonBody(body): JsonBody<ClaimRequest>,
) -> Result<Response> {
    rate(&web, &client)?;
    let auth = web.auth.clone();
    let actor = web_actor(&client);
    let username = body.username.clone();
    blocking(move || {
        auth.claim_with_code(
            &actor,
            &body.claim_code,
            &body.username,
            &body.password,
            None,
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"username": username, "role": Role::SystemAdmin})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: Secret,
    #[serde(default)]
    code: Option<Secret>,
}

#[derive(Serialize)]
struct LoginAnswer {
    token: String,
    expires_at: u64,
    /// The account must enrol TOTP before anything else.
    must_enrol: bool,
    /// MFA is offered (allowed, not required, not enrolled, not skipped).
    enrolment_offered: bool,
}

fn login_failed(error: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, error, message)
}

async fn login(
    State(web): State<Arc<Web>>,
    client: Client,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<LoginAnswer>> {
    rate(&web, &client)?;
    let code = body.code.clone().or_else(|| {
        headers
            .get("x-coffer-otp")
            .and_then(|v| v.to_str().ok())
            .map(|v| Secret::new(v.to_string()))
    });
    let auth = web.auth.clone();
    let ip = client.ip;
    let admission = web.auth.admit_hashing().await;
    let step = tokio::task::spawn_blocking(move || {
        if admission.is_none() {
            return (Step::Denied(DenyReason::Busy.denied()), false);
        }
        let step = Login::new(&body.username, ip, Protocol::Https).password(
            &auth,
            LoginMethod::Api,
            &body.password,
        );
        drop(admission);
        match (step, code) {
            (Step::NeedCode(waiting), Some(code)) => (waiting.code(&auth, &code), true),
            (step, _) => (step, false),
        }
    })
    .await
    .map_err(ApiError::internal)?;
    let now = web.now();
    let lifetime = web.settings.sessions.lifetime;
    let granted = |stage: Stage, must_enrol: bool, offered: bool| -> Result<Json<LoginAnswer>> {
        let token = web.sessions.advance(
            &web.auth,
            stage,
            Carrier::Bearer,
            client.ip,
            &client.agent,
            now,
        )?;
        Ok(Json(LoginAnswer {
            token: token.expose().to_string(),
            expires_at: now.saturating_add(if must_enrol {
                web.settings.sessions.pending
            } else {
                lifetime
            }),
            must_enrol,
            enrolment_offered: offered,
        }))
    };
    match step {
        (Step::Granted(session), _) => {
            let offered = session.offer_enrolment;
            granted(Stage::Granted(session), false, offered)
        }
        (Step::MustEnrol(waiting), _) => granted(Stage::MustEnrol(waiting), true, false),
        (Step::NeedCode(_), _) => Err(login_failed(
            "otp_required",
            "This account needs an authentication code: send it as \"code\" or in the X-Coffer-OTP header, with the password.",
        )),
        (Step::Locked(l), _) => Err(login_failed("locked", l.message()).retry_after(l.retry_after)),
        (Step::Denied(d), _) => {
            use crate::auth::flow::DenyReason;
            match d.reason {
                DenyReason::Busy => {
                    Err(
                        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", d.message)
                            .retry_after(5),
                    )
                }
                DenyReason::Internal => {
                    Err(ApiError::internal("login failed on an internal error"))
                }
                _ => Err(login_failed("invalid_credentials", d.message)),
            }
        }
    }
}

async fn logout(State(web): State<Arc<Web>>, ApiUser(current): ApiUser) -> StatusCode {
    web.sessions.end(&web.auth, &current.token, "signed out");
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(METHOD, path)` of every operation in the OpenAPI document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let served: BTreeSet<(String, String)> = routes()
            .routes
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "not in openapi.json: {undocumented:?}"
        );
        assert!(missing.is_empty(), "documented but not served: {missing:?}");
    }

    #[test]
    fn every_operation_documents_its_errors_and_every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.contains_key("default"),
                    "{method} {path}: no default (error) response"
                );
                let public = operation.get("security") == Some(&json!([]));
                if !public {
                    assert!(
                        responses.contains_key("401"),
                        "{method} {path}: needs a login but documents no 401"
                    );
                }
                if operation
                    .get("requestBody")
                    .is_some_and(|b| b["content"].get("application/json").is_some())
                {
                    for code in ["400", "413", "415"] {
                        assert!(
                            responses.contains_key(code),
                            "{method} {path}: takes JSON but documents no {code}"
                        );
                    }
                }
            }
        }
        // Every $ref points at something that exists.
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                            _ => refs(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
    }
}
