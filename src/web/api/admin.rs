//! Administration: accounts, locks, groups, policy, the audit log, system
//! facts and the HTTPS certificate.

use super::*;
use crate::auth::GroupChange;

pub(super) async fn list_users(
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
pub(super) struct NewUser {
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

pub(super) fn default_role() -> Role {
    Role::User
}

pub(super) async fn create_user(
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

pub(super) async fn show_user(
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
pub(super) struct UserPatch {
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
    /// A new name for the account ([`crate::auth::Auth::rename_account`]).
    #[serde(default, deserialize_with = "present")]
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaPatch {
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

pub(super) async fn update_user(
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
        if change.is_empty()
            && body.password.is_none()
            && body.public_keys.is_none()
            && body.username.is_none()
        {
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
            body.username.as_deref(),
        )
    })
    .await?;
    Ok(Json(view.into()))
}

pub(super) async fn remove_user(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    blocking(move || auth.remove_account(&actor, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn reset_user_mfa(
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

pub(super) async fn unlock_user(
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
pub(super) async fn show_locks(
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
pub(super) struct UnlockAddress {
    address: String,
}

/// `POST /unlock {address}`: clears an address-wide lock.
pub(super) async fn unlock_address(
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

pub(super) async fn user_tokens(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Response> {
    list_tokens(&web, &current, name).await
}

pub(super) async fn create_user_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Response> {
    create_token_for(&web, &current, name, body).await
}

pub(super) async fn revoke_user_token(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam((name, id)): PathParam<(String, String)>,
) -> Result<StatusCode> {
    revoke_token_of(&web, &current, &name, id).await
}

pub(super) async fn list_groups(
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
pub(super) struct NewGroup {
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
    fn split(self) -> (String, GroupChange) {
        (
            self.name,
            GroupChange {
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
pub(super) struct GroupPatch {
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

impl From<GroupPatch> for GroupChange {
    fn from(p: GroupPatch) -> Self {
        GroupChange {
            enabled: p.enabled,
            home_template: p.home_template,
            may_change_password: p.may_change_password,
            ip_allow: p.ip_allow,
            ip_deny: p.ip_deny,
            read_only: p.read_only,
            no_delete: p.no_delete,
        }
    }
}

pub(super) async fn create_group(
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

pub(super) async fn show_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<Json<Group>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || auth.group(&actor, &name)).await?))
}

pub(super) async fn update_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<GroupPatch>,
) -> Result<Json<Group>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    let change = GroupChange::from(body);
    if change.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: send at least one field",
        ));
    }
    Ok(Json(
        blocking(move || auth.change_group(&actor, &name, change)).await?,
    ))
}

pub(super) async fn remove_group(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    PathParam(name): PathParam<String>,
) -> Result<StatusCode> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    blocking(move || auth.remove_group(&actor, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn show_policy(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<crate::auth::policy::Policy>> {
    let auth = web.auth.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || auth.policy_for(&actor)).await?))
}

pub(super) async fn replace_policy(
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
pub(super) struct AuditQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

pub(super) async fn audit(
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
    pub certificate: crate::web::tls::CertificateInfo,
    /// Storage use of the files root.
    pub storage: Option<Storage>,
    /// The serial console.
    pub console: String,
    /// Counts of accounts, tokens, events.
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    /// Live signed-in web and API sessions (not anonymous ones, not ended ones).
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
        sessions: web.sessions.signed_in(&web.auth, now),
    })
}

pub(super) async fn system(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
) -> Result<Json<SystemView>> {
    let w = web.clone();
    let actor = actor(&current);
    Ok(Json(blocking(move || system_view(&w, &actor)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CertificateUpload {
    certificate: String,
    private_key: String,
}

pub(super) async fn replace_certificate(
    State(web): State<Arc<Web>>,
    ApiUser(current): ApiUser,
    JsonBody(body): JsonBody<CertificateUpload>,
) -> Result<Json<crate::web::tls::CertificateInfo>> {
    actor(&current).may_administer_box()?;
    let info = web
        .certs
        .replace(body.certificate.as_bytes(), body.private_key.as_bytes())
        .map_err(|e| match e {
            crate::web::tls::TlsError::Io { .. } | crate::web::tls::TlsError::Generate(_) => {
                ApiError::internal(e)
            }
            e => ApiError::bad_request(e.to_string()),
        })?;
    web.auth
        .certificate_changed(&actor(&current), &info.fingerprint);
    Ok(Json(info))
}
