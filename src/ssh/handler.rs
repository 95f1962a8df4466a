//! One SSH connection: authentication through the core, then file channels.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use russh::server::{Auth, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};
use tokio::time::Instant;

use super::listener::Shared;
use crate::auth::flow::{self, AwaitCode, CODE_PROMPT, Login, PASSWORD_PROMPT, Step};
use crate::auth::live::Registration;
use crate::auth::password::Secret;
use crate::auth::{Method, Protocol};

/// Where a keyboard-interactive exchange stands.
enum Ki {
    /// Nothing asked yet.
    Idle,
    /// `Password:` was asked of this user.
    WantPassword(String),
    /// `Authentication code:` was asked.
    WantCode(AwaitCode),
    /// A refusal was shown as instructions; the next answer ends the attempt.
    Told,
}

/// The russh handler of one connection.
pub(super) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    authed: watch::Sender<bool>,
    /// Tells the connection's task to disconnect; moves into the
    /// registration when the login is granted.
    revoke: Option<oneshot::Sender<()>>,
    /// The connection's place among the live ones, once logged in.
    registration: Option<Registration>,
    /// A login whose key passed and that waits for a code (partial success).
    key_pending: Option<AwaitCode>,
    ki: Ki,
    session: Option<Arc<flow::Session>>,
    /// Channels not yet given a subsystem or command, each with its slot
    /// among the process's channels ([`crate::files::budget::channels`]).
    channels: HashMap<ChannelId, (Channel<Msg>, OwnedSemaphorePermit)>,
    active: Arc<AtomicUsize>,
    /// The connection's span (session id, address): russh runs the handler
    /// on tasks of its own, so the core's work is entered into it by hand.
    span: tracing::Span,
}

fn methods(kinds: &[MethodKind]) -> MethodSet {
    MethodSet::from(kinds)
}

/// The methods Coffer offers (never `none` or `hostbased`).
pub(super) fn offered() -> MethodSet {
    methods(&[
        MethodKind::PublicKey,
        MethodKind::KeyboardInteractive,
        MethodKind::Password,
    ])
}

fn prompt(text: &'static str) -> Auth {
    Auth::Partial {
        name: Cow::Borrowed(""),
        instructions: Cow::Borrowed(""),
        prompts: Cow::Owned(vec![(Cow::Borrowed(text), false)]),
    }
}

fn tell(message: String) -> Auth {
    Auth::Partial {
        name: Cow::Borrowed(""),
        instructions: Cow::Owned(message),
        prompts: Cow::Owned(Vec::new()),
    }
}

fn refusal(step: &Step) -> Option<String> {
    match step {
        Step::Denied(d) => Some(d.message.clone()),
        Step::Locked(l) => Some(l.message()),
        _ => None,
    }
}

impl Connection {
    pub(super) fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        authed: watch::Sender<bool>,
        revoke: oneshot::Sender<()>,
    ) -> Self {
        Self {
            shared,
            peer,
            authed,
            revoke: Some(revoke),
            registration: None,
            key_pending: None,
            ki: Ki::Idle,
            session: None,
            channels: HashMap::new(),
            active: Arc::new(AtomicUsize::new(0)),
            span: tracing::Span::current(),
        }
    }

    /// Runs a blocking step of the flow (argon2, store) off the async threads.
    async fn blocking<F>(&self, f: F) -> Step
    where
        F: FnOnce(&crate::auth::Auth) -> Step + Send + 'static,
    {
        let auth = self.shared.auth.clone();
        let span = self.span.clone();
        match tokio::task::spawn_blocking(move || span.in_scope(|| f(&auth))).await {
            Ok(step) => step,
            Err(e) => {
                tracing::error!(error = %e, "login step failed");
                Step::Denied(flow::Denied {
                    reason: flow::DenyReason::Internal,
                    message: "Login failed because of an internal error.".into(),
                })
            }
        }
    }

    /// Runs a step that may hash a password: admitted first, so a flood of
    /// logins waits here rather than in blocking threads.
    async fn hashing<F>(&self, f: F) -> Step
    where
        F: FnOnce(&crate::auth::Auth) -> Step + Send + 'static,
    {
        let Some(admission) = self.shared.auth.admit_hashing().await else {
            return Step::Denied(flow::DenyReason::Busy.denied());
        };
        self.blocking(move |auth| {
            let step = f(auth);
            drop(admission);
            step
        })
        .await
    }

    /// Failures are answered no sooner than `failure_delay` after they came.
    async fn delay_failure(&self, started: Instant) {
        tokio::time::sleep_until(started + self.shared.limits.failure_delay).await;
    }

    fn granted(&mut self, session: flow::Session) -> Auth {
        let Some(revoke) = self.revoke.take() else {
            return Auth::reject();
        };
        let registered = self
            .shared
            .live
            .register(&self.shared.auth, &session, move || {
                let _ = revoke.send(());
            });
        match registered {
            Ok(r) => self.registration = Some(r),
            Err(e) => {
                tracing::info!(peer = %self.peer, account = %session.account, "login refused: {e}");
                return Auth::reject();
            }
        }
        tracing::info!(
            peer = %self.peer,
            account = %session.account,
            method = session.method.as_str(),
            "logged in"
        );
        self.session = Some(Arc::new(session));
        Auth::Accept
    }

    fn login(&self, user: &str) -> Login {
        Login::new(user, self.peer.ip(), Protocol::Ssh)
    }

    async fn password_step(&mut self, user: &str, password: Secret, started: Instant) -> Auth {
        let login = self.login(user);
        let step = self
            .hashing(move |auth| login.password(auth, Method::KeyboardInteractive, &password))
            .await;
        match step {
            Step::Granted(s) => self.granted(s),
            Step::NeedCode(code) => {
                self.ki = Ki::WantCode(code);
                prompt(CODE_PROMPT)
            }
            other => {
                self.delay_failure(started).await;
                self.ki = Ki::Told;
                tell(refusal(&other).unwrap_or_else(|| "Permission denied.".into()))
            }
        }
    }

    async fn code_step(&mut self, code: AwaitCode, answer: Secret, started: Instant) -> Auth {
        let step = self.blocking(move |auth| code.code(auth, &answer)).await;
        match step {
            Step::Granted(s) => self.granted(s),
            other => {
                self.delay_failure(started).await;
                self.ki = Ki::Told;
                tell(refusal(&other).unwrap_or_else(|| "Permission denied.".into()))
            }
        }
    }

    fn refuse_channel(&self, id: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        session.channel_success(id)?;
        session.extended_data(id, 1, super::NO_SHELL.as_bytes().to_vec())?;
        session.exit_status_request(id, 1)?;
        session.eof(id)?;
        session.close(id)
    }

    fn start_files(
        &mut self,
        id: ChannelId,
        kind: FilesKind,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let (Some((channel, slot)), Some(login)) =
            (self.channels.remove(&id), self.session.clone())
        else {
            return session.channel_failure(id);
        };
        session.channel_success(id)?;
        let handle = session.handle();
        let active = self.active.clone();
        active.fetch_add(1, Ordering::SeqCst);
        let peer = self.peer;
        let auth = self.shared.auth.clone();
        tokio::spawn(async move {
            let (code, stream) = super::files::run(channel, kind, &login, auth).await;
            tracing::info!(peer = %peer, account = %login.account, status = code, "file session ended");
            let _ = handle.exit_status_request(id, code).await;
            let _ = handle.eof(id).await;
            let _ = handle.close(id).await;
            drop(stream);
            drop(slot);
            active.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }
}

/// What a file channel serves.
pub(super) enum FilesKind {
    /// The `sftp` subsystem.
    Sftp,
    /// A legacy `scp -t|-f ...` command.
    Scp(String),
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(Some(super::BANNER.to_string()))
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(offered()),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        let login = self.login(user);
        let password = Secret::new(password.to_string());
        let step = self
            .hashing(move |auth| login.password(auth, Method::Password, &password))
            .await;
        match step {
            Step::Granted(s) => Ok(self.granted(s)),
            Step::Denied(d) if d.reason == flow::DenyReason::CodeUnsupported => {
                tracing::info!(peer = %self.peer, user, "password method refused: the account needs a code");
                self.delay_failure(started).await;
                // Steer the client to the method that can carry the code.
                Ok(Auth::Reject {
                    proceed_with_methods: Some(methods(&[
                        MethodKind::KeyboardInteractive,
                        MethodKind::PublicKey,
                    ])),
                    partial_success: false,
                })
            }
            _ => {
                self.delay_failure(started).await;
                // Keep every method on offer (russh would drop `password`), so
                // a client may retry as OpenSSH's does; lockout bounds retries.
                Ok(Auth::Reject {
                    proceed_with_methods: Some(offered()),
                    partial_success: false,
                })
            }
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let Ok(blob) = offer.public_key.to_bytes() else {
            return Ok(Auth::reject());
        };
        let auth = self.shared.auth.clone();
        let user = user.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            auth.key_is_authorized(&user, &blob).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        Ok(if ok { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        let Ok(blob) = key.public_key.to_bytes() else {
            return Ok(Auth::reject());
        };
        let login = self.login(user);
        let step = self
            .blocking(move |auth| login.public_key(auth, &blob))
            .await;
        match step {
            Step::Granted(s) => Ok(self.granted(s)),
            Step::NeedCode(code) => {
                // Partial success: the key passed; keyboard-interactive asks the code.
                self.key_pending = Some(code);
                Ok(Auth::Reject {
                    proceed_with_methods: Some(methods(&[MethodKind::KeyboardInteractive])),
                    partial_success: true,
                })
            }
            _ => {
                self.delay_failure(started).await;
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        let Some(mut response) = response else {
            // A new exchange. After a key's partial success, only the code is asked.
            if let Some(code) = self.key_pending.take()
                && code.user() == user
            {
                self.ki = Ki::WantCode(code);
                return Ok(prompt(CODE_PROMPT));
            }
            self.ki = Ki::WantPassword(user.to_string());
            return Ok(prompt(PASSWORD_PROMPT));
        };
        let answer = Secret::new(
            response
                .next()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        );
        match std::mem::replace(&mut self.ki, Ki::Idle) {
            Ki::WantPassword(asked) if asked == user => {
                Ok(self.password_step(user, answer, started).await)
            }
            Ki::WantCode(code) if code.user() == user => {
                Ok(self.code_step(code, answer, started).await)
            }
            Ki::Told => Ok(Auth::reject()),
            _ => {
                // The user name changed mid-exchange, or an answer nobody asked for.
                self.delay_failure(started).await;
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        let _ = self.authed.send(true);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.session.is_none() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        if self.active.load(Ordering::SeqCst) + self.channels.len()
            >= self.shared.limits.max_channels
        {
            tracing::warn!(peer = %self.peer, "too many channels on one connection");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        // A slot among the process's channels, for as long as it is open:
        // each may hold packets its queue took (files::budget).
        let Ok(slot) = self.shared.channel_slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %self.peer, "too many channels open in the process");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        self.channels.insert(channel.id(), (channel, slot));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Accepted so that an interactive `ssh` reaches the shell request and
        // is told plainly that there is no shell.
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.refuse_channel(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        if command == "scp" || command.starts_with("scp ") {
            return self.start_files(channel, FilesKind::Scp(command), session);
        }
        tracing::info!(peer = %self.peer, "refused a command");
        self.channels.remove(&channel);
        self.refuse_channel(channel, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            return self.start_files(channel, FilesKind::Sftp, session);
        }
        session.channel_failure(channel)
    }
}
