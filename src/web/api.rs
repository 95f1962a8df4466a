//! The REST API under `/api/v1`: JSON in and out, errors as
//! `{error, message}`. The routes are registered through [`Api::add`], which
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

use super::error::ApiError;
use super::extract::{
    ApiUser, Caller, Client, JsonBody, PathParam, caller, object, present, require_objects,
};
use super::session::{Carrier, Stage};
use super::{Web, transfer};
use crate::auth::accounts::{AccountChange, AccountView, MfaView, NewAccount};
use crate::auth::flow::{DenyReason, Login, Step};
use crate::auth::password::Secret;
use crate::auth::{Actor, AuthError, Group, Method as LoginMethod, Permissions, Protocol, Role};

/// The OpenAPI 3.1 document.
pub const OPENAPI: &str = include_str!("openapi.json");

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
    if declared.is_some_and(|n| n > limit) && !request.uri().path().ends_with("/files/content") {
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
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
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

fn actor(current: &super::session::Current) -> Actor {
    Actor::session(&current.session)
}

#[derive(Serialize)]
struct Me {
    #[serde(flatten)]
    account: AccountJson,
    session: SessionView,
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    carrier: Carrier,
    method: &'static str,
    second_factor: Option<&'static str>,
    expires_at: u64,
    enrolment_offered: bool,
}

async fn me(State(web): State<Arc<Web>>, ApiUser(current): ApiUser) -> Result<Json<Me>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let name = current.session.account.clone();
    let account = blocking(move || auth.account(&actor, &name)).await?;
    Ok(Json(Me {
        session: SessionView {
            id: current.id.clone(),
            carrier: current.carrier,
            method: current.session.method.as_str(),
            second_factor: current.session.second_factor.map(|f| f.as_str()),
            expires_at: current.expires_at,
            enrolment_offered: current.session.offer_enrolment
                && !account.mfa.enrolled
                && !account.mfa.skip,
        },
        account: account.into(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: Secret,
    new_password: Secret,
}

async fn change_password(
    State(web): State<Arc<Web>>,
    client: Client,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<serde_json::Value>> {
    rate(&web, &client)?;
    let auth = web.auth.clone();
    let actor = actor(&current);
    let name = current.session.account.clone();
    blocking(move || {
        auth.set_password(
            &actor,
            &name,
            &body.new_password,
            Some(&body.current_password),
        )
    })
    .await?;
    // Every session of the account has ended (the credential epoch moved);
    // the caller gets a fresh one in place of theirs.
    let now = web.now();
    let token = web.sessions.advance(
        &web.auth,
        Stage::Granted(current.session.renewed(&web.auth)),
        current.carrier,
        client.ip,
        &client.agent,
        now,
    )?;
    Ok(Json(json!({
        "token": token.expose(),
        "expires_at": now.saturating_add(web.settings.sessions.lifetime),
    })))
}

/// The TOTP code of a request: JSON `{code}` or the X-Coffer-OTP header.
fn otp_header(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get("x-coffer-otp")
        .and_then(|v| v.to_str().ok())
        .map(|v| Secret::new(v.to_string()))
}

async fn remove_own_mfa(
    State(web): State<Arc<Web>>,
    client: Client,
    headers: HeaderMap,
    ApiUser(current): ApiUser,
) -> Result<StatusCode> {
    rate(&web, &client)?;
    let code = otp_header(&headers);
    let auth = web.auth.clone();
    let actor = actor(&current);
    let name = current.session.account.clone();
    blocking(move || auth.mfa_reset(&actor, &name, code.as_ref().map(|c| c.as_str()))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body `{code?}` of a change that an enrolled account proves with a
/// current code or a recovery code; an empty body is no code. The
/// X-Coffer-OTP header is read when the body has none.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    #[serde(default, deserialize_with = "present")]
    code: Option<Secret>,
}

/// Most bytes of a `{code?}` body.
const PROOF_BODY_LIMIT: usize = 4096;

async fn proof_code(headers: &HeaderMap, body: axum::body::Body) -> Result<Option<Secret>> {
    let bytes = axum::body::to_bytes(body, PROOF_BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is larger than the server accepts",
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(otp_header(headers));
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let ProofBody { code } = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))?;
    Ok(code.or_else(|| otp_header(headers)))
}

#[derive(Serialize)]
struct TotpStart {
    secret: String,
    otpauth_uri: String,
    qr_svg: String,
    config: String,
}

/// `POST /me/mfa/totp`: a granted session, or one that must enrol.
async fn totp_start(
    State(web): State<Arc<Web>>,
    request: axum::extract::Request,
) -> Result<Json<TotpStart>> {
    let (parts, body) = request.into_parts();
    let who = caller(&parts, &web).await?;
    let code = proof_code(&parts.headers, body).await?;
    let start = match who {
        Caller::Granted(current) => {
            let auth = web.auth.clone();
            let actor = actor(&current);
            let name = current.session.account.clone();
            blocking(move || {
                auth.totp_start(&actor, &name, None, code.as_ref().map(|c| c.as_str()))
            })
            .await?
        }
        Caller::MustEnrol(token) => {
            let now = web.now();
            let mut taken = web
                .sessions
                .take(&token, now, &web.auth)
                .ok_or_else(ApiError::unauthenticated)?;
            let Stage::MustEnrol(waiting) = taken.stage else {
                return Err(ApiError::unauthenticated());
            };
            let started = waiting.start(&web.auth);
            // Put the session back under the same value: enrolment has not
            // changed the privilege yet.
            taken.stage = Stage::MustEnrol(waiting);
            web.sessions.restore(&token, taken);
            started?
        }
    };
    Ok(Json(TotpStart {
        qr_svg: super::ui::qr_svg(&start.otpauth_uri),
        secret: start.secret.to_string(),
        otpauth_uri: start.otpauth_uri.to_string(),
        config: start.config,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: Secret,
}

async fn totp_confirm(
    State(web): State<Arc<Web>>,
    client: Client,
    request: axum::extract::Request,
) -> Result<Response> {
    rate(&web, &client)?;
    let (parts, body) = request.into_parts();
    let who = caller(&parts, &web).await?;
    let JsonBody(CodeBody { code }) =
        <JsonBody<CodeBody> as axum::extract::FromRequest<()>>::from_request(
            axum::extract::Request::from_parts(parts, body),
            &(),
        )
        .await?;
    match who {
        Caller::Granted(current) => {
            let auth = web.auth.clone();
            let actor = actor(&current);
            let name = current.session.account.clone();
            let codes = blocking(move || auth.totp_confirm(&actor, &name, &code)).await?;
            // The enrolment ended every session of the account; this one
            // continues under a new value.
            let now = web.now();
            let token = web.sessions.advance(
                &web.auth,
                Stage::Granted(current.session.renewed(&web.auth)),
                current.carrier,
                client.ip,
                &client.agent,
                now,
            )?;
            let mut answer = serde_json::Map::new();
            answer.insert(
                "recovery_codes".into(),
                json!(codes.0.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
            );
            // (An access token never gets here: the core refuses it.)
            match current.carrier {
                Carrier::Bearer => {
                    answer.insert("token".into(), json!(token.expose()));
                    answer.insert(
                        "expires_at".into(),
                        json!(now.saturating_add(web.settings.sessions.lifetime)),
                    );
                    Ok(Json(answer).into_response())
                }
                // A browser's session continues under the new value in its
                // (HttpOnly) cookie, never in the body.
                Carrier::Cookie => Ok(super::ui::with_cookie(Json(answer).into_response(), &token)),
            }
        }
        Caller::MustEnrol(token) => {
            let now = web.now();
            let mut taken = web
                .sessions
                .take(&token, now, &web.auth)
                .ok_or_else(ApiError::unauthenticated)?;
            let Stage::MustEnrol(waiting) = std::mem::replace(&mut taken.stage, Stage::Anonymous)
            else {
                return Err(ApiError::unauthenticated());
            };
            let agent = taken.agent().to_string();
            let auth = web.auth.clone();
            let result = tokio::task::spawn_blocking(move || waiting.confirm(&auth, &code))
                .await
                .map_err(ApiError::internal)?;
            match result {
                Ok((session, codes)) => {
                    let token = web.sessions.advance(
                        &web.auth,
                        Stage::Granted(session),
                        Carrier::Bearer,
                        client.ip,
                        &agent,
                        now,
                    )?;
                    Ok(Json(json!({
                        "recovery_codes": codes.0.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                        "token": token.expose(),
                        "expires_at": now.saturating_add(web.settings.sessions.lifetime),
                    }))
                    .into_response())
                }
                Err((waiting, e)) => {
                    taken.stage = Stage::MustEnrol(*waiting);
                    web.sessions.restore(&token, taken);
                    Err(e.into())
                }
            }
        }
    }
}

async fn new_recovery_codes(
    State(web): State<Arc<Web>>,
    client: Client,
    headers: HeaderMap,
    ApiUser(current): ApiUser,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>> {
    rate(&web, &client)?;
    let code = proof_code(&headers, body).await?;
    let auth = web.auth.clone();
    let actor = actor(&current);
    let name = current.session.account.clone();
    let codes = blocking(move || {
        auth.regenerate_recovery_codes(&actor, &name, code.as_ref().map(|c| c.as_str()))
    })
    .await?;
    Ok(Json(
        json!({"recovery_codes": codes.0.iter().map(|c| c.as_str()).collect::<Vec<_>>()}),
    ))
}

async fn skip_enrolment(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let name = current.session.account.clone();
    blocking(move || {
        auth.update_account(
            &actor,
            &name,
            AccountChange {
                mfa_skip: Some(true),
                ..AccountChange::default()
            },
        )
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    label: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    scope: Option<Vec<Protocol>>,
}

async fn create_token_for(
    web: &Arc<Web>,
    current: &super::session::Current,
    account: String,
    body: TokenRequest,
) -> Result<Response> {
    let auth = web.auth.clone();
    let actor = actor(current);
    let scope: BTreeSet<Protocol> = body.scope.unwrap_or_default().into_iter().collect();
    let now = web.now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::bad_request(
            "expires_at must be in the future (Unix seconds)",
        ));
    }
    let new =
        blocking(move || auth.create_token(&actor, &account, &body.label, body.expires_at, scope))
            .await?;
    let mut value = serde_json::to_value(&new.info).map_err(ApiError::internal)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("token".into(), json!(new.value.as_str()));
    }
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn my_tokens(State(web): State<Arc<Web>>, ApiUser(current): ApiUser) -> Result<Response> {
    let name = current.session.account.clone();
    list_tokens(&web, &current, name).await
}

async fn list_tokens(
    web: &Arc<Web>,
    current: &super::session::Current,
    name: String,
) -> Result<Response> {
    let auth = web.auth.clone();
    let actor = actor(current);
    let tokens = blocking(move || auth.tokens(&actor, Some(&name))).await?;
    Ok(Json(tokens).into_response())
}

async fn create_my_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Response> {
    let name = current.session.account.clone();
    create_token_for(&web, &current, name, body).await
}

async fn revoke_token_of(
    web: &Arc<Web>,
    current: &super::session::Current,
    account: &str,
    id: String,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(current);
    let account = account.to_string();
    blocking(move || {
        let owned = auth.tokens(&actor, Some(&account))?;
        if !owned.iter().any(|t| t.id == id) {
            return Err(AuthError::NotFound {
                what: "token",
                name: id,
            });
        }
        auth.revoke_token(&actor, &id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_my_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    let name = current.session.account.clone();
    revoke_token_of(&web, &current, &name, id).await
}

async fn my_sessions(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<Vec<super::session::SessionInfo>>> {
    actor(&current).may_manage_credentials()?;
    let now = web.now();
    Ok(Json(web.sessions.list(
        &current.session.account,
        Some(&current.token),
        now,
        &web.auth,
    )))
}

async fn end_my_session(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    actor(&current).may_manage_credentials()?;
    if web
        .sessions
        .end_by_id(&web.auth, &current.session.account, &id)
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "there is no session {id:?} of yours"
        )))
    }
}

async fn list_users(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<Vec<AccountJson>>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let accounts = blocking(move || auth.accounts(&actor)).await?;
    Ok(Json(accounts.into_iter().map(AccountJson::from).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(default = "default_role")]
    role: Role,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    home: Option<String>,
    #[serde(default)]
    public_keys: Vec<String>,
}

fn default_role() -> Role {
    Role::User
}

async fn create_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let view = blocking(move || {
        auth.create_account(
            &actor,
            NewAccount {
                name: body.username,
                role: body.role,
                group: body.group,
                password: body.password,
                home: body.home,
                public_keys: body.public_keys,
            },
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(AccountJson::from(view))).into_response())
}

async fn show_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Json<AccountJson>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(
        blocking(move || auth.account(&actor, &name)).await?.into(),
    ))
}

/// `PATCH /users/{name}`: any subset of the account's fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    role: Option<Role>,
    #[serde(default, with = "double_option")]
    group: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
    #[serde(default, with = "double_option")]
    home: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    ip_allow: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    ip_deny: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    read_only: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    no_delete: Option<bool>,
    #[serde(default, with = "double_option")]
    may_change_password: Option<Option<bool>>,
    #[serde(default, deserialize_with = "object")]
    mfa: Option<MfaPatch>,
    #[serde(default, deserialize_with = "present")]
    password: Option<Secret>,
    #[serde(default, deserialize_with = "present")]
    public_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaPatch {
    #[serde(default, deserialize_with = "present")]
    exempt: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    skip: Option<bool>,
}

/// `null` and absent differ: absent leaves the field, `null` clears it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

async fn update_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<UserPatch>,
) -> Result<Json<AccountJson>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let view = blocking(move || {
        let change = AccountChange {
            role: body.role,
            group: body.group,
            disabled: body.disabled,
            home: body.home,
            ip_allow: body.ip_allow,
            ip_deny: body.ip_deny,
            read_only: body.read_only,
            no_delete: body.no_delete,
            may_change_password: body.may_change_password,
            mfa_exempt: body.mfa.as_ref().and_then(|m| m.exempt),
            mfa_skip: body.mfa.as_ref().and_then(|m| m.skip),
        };
        if change.is_empty() && body.password.is_none() && body.public_keys.is_none() {
            return Err(AuthError::Invalid(
                "nothing to change: send at least one field".into(),
            ));
        }
        auth.update_account_fully(
            &actor,
            &name,
            change,
            body.password.as_ref().map(|p| p.as_str()),
            body.public_keys,
        )
    })
    .await?;
    Ok(Json(view.into()))
}

async fn remove_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    blocking(move || auth.remove_account(&actor, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_user_mfa(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    blocking(move || {
        let target = auth.account(&actor, &name)?;
        if actor.account.as_ref().is_some_and(|(n, _)| *n == target.account.name) {
            return Err(AuthError::Invalid(
                "to remove your own two-factor authentication use DELETE /api/v1/me/mfa with a code".into(),
            ));
        }
        auth.mfa_reset(&actor, &name, None)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlock_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Json<serde_json::Value>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let cleared = blocking(move || auth.unlock(&actor, &name)).await?;
    Ok(Json(json!({"cleared": cleared})))
}

/// `GET /locks`: addresses locked for every account, and accounts whose
/// code entry is locked.
async fn show_locks(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<serde_json::Value>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let locks = blocking(move || auth.locks(&actor)).await?;
    Ok(Json(json!({
        "addresses": locks
            .addresses
            .into_iter()
            .map(|(address, until)| json!({"address": address, "until": until}))
            .collect::<Vec<_>>(),
        "code_entry": locks
            .code_entry
            .into_iter()
            .map(|(username, until)| json!({"username": username, "until": until}))
            .collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockAddress {
    address: String,
}

/// `POST /unlock {address}`: clears an address-wide lock.
async fn unlock_address(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<UnlockAddress>,
) -> Result<Json<serde_json::Value>> {
    let address = crate::address::parse(&body.address).map_err(ApiError::bad_request)?;
    let auth = web.auth.clone();
    let actor = actor(&current);
    let cleared = blocking(move || auth.unlock_address(&actor, address)).await?;
    Ok(Json(json!({
        "address": crate::address::describe(address),
        "cleared": cleared,
    })))
}

async fn user_tokens(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Response> {
    list_tokens(&web, &current, name).await
}

async fn create_user_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Response> {
    create_token_for(&web, &current, name, body).await
}

async fn revoke_user_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam((name, id)): PathParam<(String, String)>,
) -> Result<StatusCode> {
    revoke_token_of(&web, &current, &name, id).await
}

async fn list_groups(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<Vec<Group>>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || auth.groups_for(&actor)).await?))
}

/// `POST /groups`: a name and any of the settings (the rest default).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    home_template: Option<String>,
    #[serde(default, deserialize_with = "present")]
    may_change_password: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    ip_allow: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    ip_deny: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    read_only: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    no_delete: Option<bool>,
}

impl NewGroup {
    /// The name and the settings given.
    fn split(self) -> (String, GroupPatch) {
        (
            self.name,
            GroupPatch {
                enabled: self.enabled,
                home_template: self.home_template,
                may_change_password: self.may_change_password,
                ip_allow: self.ip_allow,
                ip_deny: self.ip_deny,
                read_only: self.read_only,
                no_delete: self.no_delete,
            },
        )
    }
}

/// `PATCH /groups/{name}`: any subset of a group's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupPatch {
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    home_template: Option<String>,
    #[serde(default, deserialize_with = "present")]
    may_change_password: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    ip_allow: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    ip_deny: Option<Vec<ipnet::IpNet>>,
    #[serde(default, deserialize_with = "present")]
    read_only: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    no_delete: Option<bool>,
}

impl GroupPatch {
    fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.home_template.is_none()
            && self.may_change_password.is_none()
            && self.ip_allow.is_none()
            && self.ip_deny.is_none()
            && self.read_only.is_none()
            && self.no_delete.is_none()
    }

    fn apply(self, group: &mut Group) {
        let GroupPatch {
            enabled,
            home_template,
            may_change_password,
            ip_allow,
            ip_deny,
            read_only,
            no_delete,
        } = self;
        if let Some(v) = enabled {
            group.enabled = v;
        }
        if let Some(v) = home_template {
            group.home_template = v;
        }
        if let Some(v) = may_change_password {
            group.may_change_password = v;
        }
        if let Some(v) = ip_allow {
            group.ip_allow = v;
        }
        if let Some(v) = ip_deny {
            group.ip_deny = v;
        }
        if let Some(v) = read_only {
            group.read_only = v;
        }
        if let Some(v) = no_delete {
            group.no_delete = v;
        }
    }
}

async fn create_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<NewGroup>,
) -> Result<Response> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let group = blocking(move || {
        let (name, settings) = body.split();
        let mut group = crate::auth::accounts::new_group(&name);
        settings.apply(&mut group);
        auth.create_group(&actor, group)?;
        auth.group(&actor, &name)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(group)).into_response())
}

async fn show_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Json<Group>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || auth.group(&actor, &name)).await?))
}

async fn update_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<GroupPatch>,
) -> Result<Json<Group>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: send at least one field",
        ));
    }
    Ok(Json(
        blocking(move || {
            let mut group = auth.group(&actor, &name)?;
            body.apply(&mut group);
            auth.update_group(&actor, group)?;
            auth.group(&actor, &name)
        })
        .await?,
    ))
}

async fn remove_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    blocking(move || auth.remove_group(&actor, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn show_policy(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<crate::auth::policy::Policy>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || auth.policy_for(&actor)).await?))
}

async fn replace_policy(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<crate::auth::policy::Policy>> {
    // Refused callers hear so before their body is looked at.
    actor(&current).may_administer_box()?;
    require_objects(
        &body,
        &["/mfa", "/lockout", "/password", "/password/hash_cost"],
    )?;
    if let Some(configs) = body.get("totp").and_then(|t| t.as_array())
        && configs.iter().any(|c| !c.is_object())
    {
        return Err(ApiError::bad_request(
            "each totp configuration must be a JSON object",
        ));
    }
    let body: crate::auth::policy::Policy = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))?;
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(
        blocking(move || auth.replace_policy(&actor, &body)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn audit(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    query: std::result::Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::audit::Record>>> {
    // Refused callers hear so before their query is looked at.
    let actor = actor(&current);
    actor.may_administer_accounts()?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let events = match q.event.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|e| {
                crate::audit::Event::parse(e.trim()).ok_or_else(|| {
                    ApiError::bad_request(format!("{e:?} is not an audit event id or name"))
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let filter = crate::audit::Filter {
        account: q.account.filter(|a| !a.is_empty()),
        events,
        since: q.since,
        limit: match q.limit {
            None => 200,
            Some(n @ 1..=10_000) => n,
            Some(_) => return Err(ApiError::bad_request("limit is a number from 1 to 10000")),
        },
    };
    let auth = web.auth.clone();
    Ok(Json(
        blocking(move || auth.audit_log(&actor, &filter)).await?,
    ))
}

/// What `GET /api/v1/system` answers.
#[derive(Serialize)]
pub struct SystemView {
    /// Coffer's version.
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime: u64,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// Listening addresses.
    pub listening: Vec<String>,
    /// Whether the box has an owner.
    pub claimed: bool,
    /// The sealing backend: `tpm` or `key-file`.
    pub seal_backend: String,
    /// Whether a TPM protects the TOTP seeds.
    pub tpm: bool,
    /// Details of the sealing backend.
    pub seal_detail: String,
    /// The HTTPS certificate.
    pub certificate: super::tls::CertificateInfo,
    /// Storage use of the files root.
    pub storage: Option<Storage>,
    /// The serial console.
    pub console: String,
    /// Counts of accounts, tokens, events.
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    /// Web and API sessions held.
    pub sessions: usize,
}

/// Disk use of the files root.
#[derive(Serialize)]
pub struct Storage {
    /// Bytes in all.
    pub total_bytes: u64,
    /// Bytes free for the server.
    pub available_bytes: u64,
}

/// Gathers the system facts for `actor` (blocking: reads the store and
/// the disk); the core decides who may see them.
pub fn system_view(web: &Web, actor: &Actor) -> std::result::Result<SystemView, AuthError> {
    let counts = web.auth.counts(actor)?;
    let now = web.now();
    let storage = rustix::fs::statvfs(&web.auth.options().files_root)
        .ok()
        .map(|s| Storage {
            total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
            available_bytes: s.f_bavail.saturating_mul(s.f_frsize),
        });
    Ok(SystemView {
        version: env!("CARGO_PKG_VERSION"),
        uptime: now.saturating_sub(web.facts.started_at),
        started_at: web.facts.started_at,
        listening: web.facts.listening.clone(),
        claimed: web.auth.is_claimed()?,
        seal_backend: web.facts.seal.backend.to_string(),
        tpm: web.facts.seal.backend == crate::seal::Backend::Tpm,
        seal_detail: web.facts.seal.detail.clone(),
        certificate: web.certs.info(),
        storage,
        console: web.facts.console.clone(),
        counts,
        sessions: web.sessions.len(),
    })
}

async fn system(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<SystemView>> {
    let w = web.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || system_view(&w, &actor)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateUpload {
    certificate: String,
    private_key: String,
}

async fn replace_certificate(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<CertificateUpload>,
) -> Result<Json<super::tls::CertificateInfo>> {
    actor(&current).may_administer_box()?;
    let info = web
        .certs
        .replace(body.certificate.as_bytes(), body.private_key.as_bytes())
        .map_err(|e| match e {
            super::tls::TlsError::Io { .. } | super::tls::TlsError::Generate(_) => {
                ApiError::internal(e)
            }
            e => ApiError::bad_request(e.to_string()),
        })?;
    web.auth
        .certificate_changed(&actor(&current), &info.fingerprint);
    Ok(Json(info))
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
