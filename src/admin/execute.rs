//! [`execute`]: one request, one call on the core.

use std::path::Path;

use crate::audit;
use crate::auth::Auth;
use crate::auth::accounts::{NewAccount, new_group};
use crate::auth::password::HashCost;
use crate::seal::SealStatus;

use super::status::{ServerInfo, report};
use super::vocabulary::lock_rows;
use super::{AdminError, Answer, Caller, Expiry, Request};

/// What an operation runs against: an open core and what the status
/// shows besides.
pub struct Core<'a> {
    /// The core.
    pub auth: &'a Auth,
    /// The data dir.
    pub data_dir: &'a Path,
    /// How the data key is protected.
    pub seal: &'a SealStatus,
    /// The server, when it runs the operation.
    pub server: Option<ServerInfo>,
    /// The certificate the server serves, when it runs the operation
    /// (`None`: the one in the data dir).
    pub certs: Option<&'a crate::web::tls::Certificates>,
}

/// Runs one request for `caller` on an open core. [`Request::FactoryReset`]
/// is not run here: it needs the store closed (see [`super::Link`] and
/// [`super::host`]).
pub fn execute(core: &Core<'_>, caller: Caller, request: Request) -> Result<Answer, AdminError> {
    let me = caller.actor();
    let auth = core.auth;
    Ok(match request {
        Request::Claim {
            admin,
            password,
            hash_cost,
        } => {
            let cost = hash_cost
                .as_deref()
                .map(|c| {
                    c.parse::<HashCost>()
                        .map_err(|e| AdminError::invalid(format!("hash cost: {e}")))
                })
                .transpose()?;
            auth.claim(&me, &admin, &password, cost)?;
            Answer::Claimed {
                owner: admin,
                sealing: core.seal.backend,
            }
        }
        Request::Status => Answer::Status(Box::new(report(core)?)),
        Request::CreateAccount {
            name,
            role,
            group,
            password,
            home,
            keys,
        } => {
            auth.create_account(
                &me,
                NewAccount {
                    name,
                    role,
                    group,
                    password,
                    home,
                    public_keys: keys,
                },
            )?;
            Answer::Done
        }
        Request::ListAccounts => Answer::Accounts(auth.accounts(&me)?),
        Request::ShowAccount { name } => {
            let view = auth.account(&me, &name)?;
            // Address-wide locks keep this account out from there too.
            account(view, auth.locks(&me)?.addresses)
        }
        Request::ChangeAccount { name, change } => {
            if change.is_empty() {
                return Err(AdminError::invalid("nothing to change"));
            }
            account(auth.update_account(&me, &name, change)?, Vec::new())
        }
        Request::RemoveAccount { name } => {
            auth.remove_account(&me, &name)?;
            Answer::Done
        }
        Request::RenameAccount { name, new_name } => {
            account(auth.rename_account(&me, &name, &new_name)?, Vec::new())
        }
        Request::SetPassword { name, password } => {
            auth.set_password(&me, &name, &password, None)?;
            Answer::Done
        }
        Request::AddKey { name, key } => Answer::Key(auth.add_public_key(&me, &name, &key)?),
        Request::RemoveKey { name, key } => Answer::Key(auth.remove_public_key(&me, &name, &key)?),
        Request::CreateGroup { name, settings } => {
            let mut group = new_group(&name);
            settings.apply(&mut group);
            auth.create_group(&me, group)?;
            Answer::Group(auth.group(&me, &name)?)
        }
        Request::ChangeGroup { name, change } => {
            if change.is_empty() {
                return Err(AdminError::invalid("nothing to change"));
            }
            Answer::Group(auth.change_group(&me, &name, change)?)
        }
        Request::ListGroups => Answer::Groups(auth.groups_for(&me)?),
        Request::RemoveGroup { name } => {
            auth.remove_group(&me, &name)?;
            Answer::Done
        }
        Request::StartTotp { name, config } => {
            let start = auth.totp_start(&me, &name, config.as_deref(), None)?;
            Answer::TotpStarted {
                secret: start.secret,
                uri: start.otpauth_uri,
            }
        }
        Request::ConfirmTotp { name, code } => {
            Answer::RecoveryCodes(auth.totp_confirm(&me, &name, &code)?.0)
        }
        Request::ResetMfa { name } => {
            auth.mfa_reset(&me, &name, None)?;
            Answer::Done
        }
        Request::NewRecoveryCodes { name } => {
            Answer::RecoveryCodes(auth.regenerate_recovery_codes(&me, &name, None)?.0)
        }
        Request::CreateToken {
            name,
            label,
            expires,
            scope,
        } => {
            let expires = expires.map(|e| match e {
                Expiry::At(at) => at,
                Expiry::In(secs) => auth.now().saturating_add(secs),
            });
            let t = auth.create_token(&me, &name, &label, expires, scope)?;
            Answer::TokenCreated {
                value: t.value,
                info: t.info,
            }
        }
        Request::ListTokens { name } => Answer::Tokens(auth.tokens(&me, name.as_deref())?),
        Request::RevokeToken { id } => Answer::TokenRevoked(auth.revoke_token(&me, &id)?),
        Request::Unlock { name } => Answer::Unlocked {
            cleared: auth.unlock(&me, &name)?,
        },
        Request::UnlockAddress { address } => Answer::Unlocked {
            cleared: auth.unlock_address(&me, address)?,
        },
        Request::Locks => Answer::Locks(lock_rows(auth.accounts(&me)?, auth.locks(&me)?)),
        Request::ShowPolicy => Answer::Policy(Box::new(auth.policy_for(&me)?)),
        Request::SetPolicy { changes } => Answer::Policy(Box::new(auth.set_policy(&me, &changes)?)),
        Request::Audit {
            account,
            events,
            since,
            limit,
        } => Answer::Audit(auth.audit_log(
            &me,
            &audit::Filter {
                account,
                events,
                since,
                limit,
            },
        )?),
        Request::ResetOwner { password } => Answer::OwnerReset {
            owner: auth.console_reset_owner(&me, &password)?,
        },
        Request::PinIsSet => Answer::PinIsSet(auth.console_pin_is_set(&me)?),
        Request::CheckPin { pin } => Answer::Pin(auth.console_pin_check(&pin)?),
        Request::SetPin { pin } => {
            auth.console_pin_set(&me, &pin)?;
            Answer::Done
        }
        Request::ClearPin => {
            auth.console_pin_clear(&me)?;
            Answer::Done
        }
        Request::Record { event, detail } => {
            auth.console_record(&me, event, &detail)?;
            Answer::Done
        }
        Request::FactoryReset { .. } => {
            return Err(AdminError::Unavailable(
                "a factory reset cannot run on an open store".into(),
            ));
        }
    })
}

fn account(view: crate::auth::accounts::AccountView, address_locks: Vec<(String, u64)>) -> Answer {
    Answer::Account {
        view: Box::new(view),
        address_locks,
    }
}
