//! Administration pages: accounts, groups, policy and the audit log (for
//! admins), and the system page (for the system administrator). Every
//! change goes to the core with the caller as actor; the core decides
//! whether they may.

mod audit;
mod groups;
mod policy;
mod system;
mod users;

pub(crate) use audit::{audit, export as audit_export};
pub(crate) use groups::{group_action, groups};
pub(crate) use policy::{policy, policy_save};
pub(crate) use system::{certificate, system};
pub(crate) use users::{unlock_address, user, user_action, user_create, users};

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::security::{OFFERED, expiry, flash, scope_of, scope_text, token_fields, token_shown};
use super::{
    Nav, Posted, Signed, blocking, bytes, csrf_field, enc, error_box, forbidden, local_time, prose,
    respond, say, see_other, sentence, shell, when, with_cookie,
};
use crate::auth::accounts::{AccountChange, AccountView, NewAccount, new_group};
use crate::auth::policy::Policy;
use crate::auth::{Actor, AuthError, Group, Protocol, Role};
use crate::web::Web;
use crate::web::extract::Client;
use crate::web::session::Current;

fn role_name(role: Role) -> &'static str {
    match role {
        Role::SystemAdmin => "System administrator",
        Role::Admin => "Administrator",
        Role::User => "User",
    }
}

/// The admin check every page makes first, asked of the core (whose
/// methods the page then calls check it again).
fn admin_only(current: &Current) -> Result<(), Box<Response>> {
    match Actor::session(&current.session).may_administer_accounts() {
        Ok(()) => Ok(()),
        Err(_) => Err(Box::new(forbidden(current, "it is for administrators"))),
    }
}

/// After a change: back to `location` with a message. When the change
/// ended the caller's own session (the account's credentials or its group
/// changed), a change to someone else continues under a new value; a change
/// to the caller's own account asks them to sign in again, so no session
/// outlives a change of its own role or state.
fn back(
    web: &Web,
    current: &Current,
    client: &Client,
    touched_self: bool,
    message: &str,
    location: &str,
) -> Response {
    if super::fresh(web, &current.token).is_some() {
        web.sessions.set_flash(&current.token, message);
        return see_other(location);
    }
    if touched_self {
        return super::without_cookie(see_other("/login"));
    }
    match super::reissue(web, current, client) {
        Ok(token) => {
            web.sessions.set_flash(&token, message);
            with_cookie(see_other(location), &token)
        }
        Err(_) => see_other("/login"),
    }
}

fn failed(web: &Web, current: &Current, e: &AuthError, location: &str) -> Response {
    web.sessions
        .set_flash(&current.token, format!("!{}", say(e)));
    see_other(location)
}

fn failed_page(current: &Current, nav: Nav, title: &str, e: &AuthError) -> Response {
    let status = match e {
        AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        AuthError::NotFound { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    respond(
        status,
        shell(current, nav, title, None, error_box(Some(&say(e)))),
    )
}
