//! The caller's own account: profile, password, second factor, recovery
//! codes, access tokens and sessions (`/me/...`).

use super::*;

pub(super) fn actor(current: &crate::web::session::Current) -> Actor {
    Actor::session(&current.session)
}

#[derive(Serialize)]
pub(super) struct Me {
    #[serde(flatten)]
    account: AccountJson,
    session: SessionView,
}

#[derive(Serialize)]
pub(super) struct SessionView {
    id: String,
    carrier: Carrier,
    method: &'static str,
    second_factor: Option<&'static str>,
    expires_at: u64,
    enrolment_offered: bool,
}

pub(super) async fn me(State(web): State<Arc<Web>>, ApiUser(current): ApiUser) -> Result<Json<Me>> {
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
pub(super) struct PasswordChange {
    current_password: Secret,
    new_password: Secret,
}

pub(super) async fn change_password(
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
pub(super) fn otp_header(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get("x-coffer-otp")
        .and_then(|v| v.to_str().ok())
        .map(|v| Secret::new(v.to_string()))
}

pub(super) async fn remove_own_mfa(
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
pub(super) struct ProofBody {
    #[serde(default, deserialize_with = "present")]
    code: Option<Secret>,
}

/// Most bytes of a `{code?}` body.
pub(super) const PROOF_BODY_LIMIT: usize = 4096;

pub(super) async fn proof_code(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Option<Secret>> {
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
pub(super) struct TotpStart {
    secret: String,
    otpauth_uri: String,
    qr_svg: String,
    config: String,
}

/// `POST /me/mfa/totp`: a granted session, or one that must enrol.
pub(super) async fn totp_start(
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
        qr_svg: crate::web::ui::qr_svg(&start.otpauth_uri),
        secret: start.secret.to_string(),
        otpauth_uri: start.otpauth_uri.to_string(),
        config: start.config,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CodeBody {
    code: Secret,
}

pub(super) async fn totp_confirm(
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
                Carrier::Cookie => Ok(crate::web::ui::with_cookie(
                    Json(answer).into_response(),
                    &token,
                )),
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

pub(super) async fn new_recovery_codes(
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

pub(super) async fn skip_enrolment(
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
pub(super) struct TokenRequest {
    label: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    scope: Option<Vec<Protocol>>,
}

pub(super) async fn create_token_for(
    web: &Arc<Web>,
    current: &crate::web::session::Current,
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

pub(super) async fn my_tokens(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Response> {
    let name = current.session.account.clone();
    list_tokens(&web, &current, name).await
}

pub(super) async fn list_tokens(
    web: &Arc<Web>,
    current: &crate::web::session::Current,
    name: String,
) -> Result<Response> {
    let auth = web.auth.clone();
    let actor = actor(current);
    let tokens = blocking(move || auth.tokens(&actor, Some(&name))).await?;
    Ok(Json(tokens).into_response())
}

pub(super) async fn create_my_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Response> {
    let name = current.session.account.clone();
    create_token_for(&web, &current, name, body).await
}

pub(super) async fn revoke_token_of(
    web: &Arc<Web>,
    current: &crate::web::session::Current,
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

pub(super) async fn revoke_my_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    let name = current.session.account.clone();
    revoke_token_of(&web, &current, &name, id).await
}

pub(super) async fn my_sessions(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<Vec<crate::web::session::SessionInfo>>> {
    actor(&current).may_manage_credentials()?;
    let now = web.now();
    Ok(Json(web.sessions.list(
        &current.session.account,
        Some(&current.token),
        now,
        &web.auth,
    )))
}

pub(super) async fn end_my_session(
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
