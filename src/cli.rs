//! The command line: `coffer setup|status|user|group|mfa|token|unlock|policy|audit`.
//!
//! A thin front end over [`crate::auth`]: each command parses its arguments,
//! opens the store (directly, as the local operator), makes one call on the
//! core and prints the answer. Errors are one line on stderr and exit status 2;
//! a refused command writes nothing.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use serde::{Deserialize, Serialize};

use crate::audit::{self, Event};
use crate::auth::accounts::{AccountChange, AccountView, NewAccount, new_group, parse_nets};
use crate::auth::password::HashCost;
use crate::auth::{Actor, Auth, Options, Protocol, Role};
use crate::clock::{SystemClock, Timestamp, format_utc, parse_utc};
use crate::seal::{self, SealOptions, SealStatus};
use crate::store::{OpenMode, STORE_FILE, Store};

macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out.stdout, $($arg)*);
    }};
}

macro_rules! errln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out.stderr, $($arg)*);
    }};
}

/// Coffer: a file-transfer appliance with strong multi-factor authentication.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// Data directory [default: $STATE_DIRECTORY, else ./coffer-data]
    #[arg(long, global = true, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How the data key is sealed when it is first created: auto, tpm or keyfile [default: auto]
    #[arg(long, global = true, env = "COFFER_SEAL", value_name = "BACKEND")]
    seal: Option<String>,
    /// TPM 2.0 connection, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321
    #[arg(long, global = true, env = "COFFER_TCTI", value_name = "TCTI")]
    tcti: Option<String>,
    /// Bind the sealed data key to PCR 7 (secure-boot state) when it is created
    #[arg(long, global = true)]
    pcr7: bool,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
/// The commands, as parsed and as sent over the control socket.
pub(crate) enum Command {
    /// Run the server (SFTP/SCP, and HTTPS: web UI and REST API) until SIGTERM.
    Serve {
        /// Configuration file (TOML; see the README)
        #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// SFTP listen address [default: 0.0.0.0:2022]
        #[arg(long, value_name = "ADDR")]
        sftp_listen: Option<String>,
        /// HTTPS listen address: web UI and REST API [default: 0.0.0.0:8443]
        #[arg(long, value_name = "ADDR")]
        https_listen: Option<String>,
        /// Root of the home folders [default: DATA_DIR/files]
        #[arg(long, value_name = "DIR")]
        files_root: Option<PathBuf>,
        /// Log filter, e.g. info or coffer=debug [default: info; RUST_LOG wins]
        #[arg(long, value_name = "FILTER")]
        log_level: Option<String>,
    },
    /// Claim the box without a browser: create the store, the data key and the owner.
    Setup {
        /// The owner's (system_admin) user name
        #[arg(long, value_name = "NAME")]
        admin: String,
        /// File holding the owner's password ("-": standard input)
        #[arg(long, value_name = "FILE")]
        password_file: PasswordArg,
        /// argon2id cost for password hashes, m=KiB,t=passes,p=lanes
        #[arg(long, value_name = "COST")]
        hash_cost: Option<String>,
    },
    /// Show version, data dir, store, sealing backend and counts.
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage TOTP enrolment and recovery codes.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Clear an account's lockouts, or an address's.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "address"])))]
    Unlock {
        /// User name: clears its locks from every address and its code-entry lock
        name: Option<String>,
        /// Clear the lock of this source address for every account (an IPv6
        /// address stands for its /64)
        #[arg(long, value_name = "ADDR")]
        address: Option<String>,
    },
    /// Show or change the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show audit events, newest first.
    Audit {
        /// At most this many events
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only events of this account
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only these events (id or name, e.g. 1001 or login_failed); repeatable
        #[arg(long, value_name = "EVENT")]
        event: Vec<String>,
        /// Only events since this date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The technician console (for a serial line; see the README).
    Console {
        /// Configuration file (TOML; see the README)
        #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Set or remove the technician PIN the console asks before any change.
    #[command(subcommand)]
    ConsolePin(crate::console::PinCommand),
    /// Serve SFTP on standard input and output, like OpenSSH's sftp-server.
    #[command(hide = true)]
    SftpServer(crate::files::stdio::ServerArgs),
    /// Serve one legacy SCP command (`scp -t`/`scp -f`) on standard input and output.
    #[command(hide = true)]
    ScpServer(crate::files::stdio::ScpServerArgs),
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum UserCommand {
    /// Create an account.
    Add {
        /// User name
        name: String,
        /// system_admin, admin or user
        #[arg(long, default_value = "user")]
        role: String,
        /// Group
        #[arg(long)]
        group: Option<String>,
        /// File holding the password ("-": standard input); without it the
        /// account logs in with keys or tokens only
        #[arg(long, value_name = "FILE")]
        password_file: Option<PasswordArg>,
        /// Home folder relative to the files root [default: from the group's template]
        #[arg(long)]
        home: Option<String>,
        /// An authorized_keys line; repeatable
        #[arg(long = "key", value_name = "PUBLIC_KEY")]
        keys: Vec<String>,
    },
    /// List accounts.
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show an account.
    Show {
        /// User name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Disable an account (it can no longer log in).
    Disable {
        /// User name
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// User name
        name: String,
    },
    /// Remove an account and its credentials (its files stay).
    Remove {
        /// User name
        name: String,
    },
    /// Rename an account: its credentials, tokens and locks follow, and so
    /// does a home folder derived from the name (its sessions end).
    Rename {
        /// The current user name (it may be one from before the name rules)
        name: String,
        /// The new user name
        new_name: String,
    },
    /// Set an account's password.
    Password {
        /// User name
        name: String,
        /// File holding the new password ("-": standard input)
        #[arg(long, value_name = "FILE")]
        password_file: PasswordArg,
    },
    /// Change an account's settings.
    Set(UserSet),
    /// Manage an account's SSH public keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub(crate) struct UserSet {
    /// User name
    name: String,
    /// system_admin, admin or user
    #[arg(long)]
    role: Option<String>,
    /// Group ("none" to leave the group)
    #[arg(long)]
    group: Option<String>,
    /// Home folder ("default" for the group's template)
    #[arg(long)]
    home: Option<String>,
    /// Allowed source networks, comma-separated CIDRs ("none": any)
    #[arg(long, value_name = "NETS")]
    ip_allow: Option<String>,
    /// Refused source networks, comma-separated CIDRs ("none")
    #[arg(long, value_name = "NETS")]
    ip_deny: Option<String>,
    /// Files are read-only: true|false
    #[arg(long, value_name = "BOOL")]
    read_only: Option<String>,
    /// Files may not be deleted: true|false
    #[arg(long, value_name = "BOOL")]
    no_delete: Option<String>,
    /// May change own password: true|false|group
    #[arg(long, value_name = "BOOL")]
    may_change_password: Option<String>,
    /// Exempt from a required MFA policy: true|false
    #[arg(long, value_name = "BOOL")]
    mfa_exempt: Option<String>,
    /// Never offer MFA enrolment: true|false
    #[arg(long, value_name = "BOOL")]
    mfa_skip: Option<String>,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum KeyCommand {
    /// Add an authorized_keys line.
    Add {
        /// User name
        name: String,
        /// The key, e.g. "ssh-ed25519 AAAA... comment" ("-": standard input)
        key: String,
    },
    /// Remove a key by fingerprint (SHA256:...) or comment.
    Remove {
        /// User name
        name: String,
        /// Fingerprint or comment
        key: String,
    },
    /// List keys.
    List {
        /// User name
        name: String,
    },
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum GroupCommand {
    /// Create a group.
    Add {
        /// Group name
        name: String,
        #[command(flatten)]
        settings: GroupSettings,
    },
    /// Change a group.
    Set {
        /// Group name
        name: String,
        #[command(flatten)]
        settings: GroupSettings,
    },
    /// List groups.
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a group without members.
    Remove {
        /// Group name
        name: String,
    },
}

#[derive(Debug, Args, Serialize, Deserialize)]
pub(crate) struct GroupSettings {
    /// Members can log in: true|false
    #[arg(long, value_name = "BOOL")]
    enabled: Option<String>,
    /// Home folder template relative to the files root, with ${USER}
    #[arg(long, value_name = "TEMPLATE")]
    home_template: Option<String>,
    /// Members may change their own password: true|false
    #[arg(long, value_name = "BOOL")]
    may_change_password: Option<String>,
    /// Allowed source networks ("none": any)
    #[arg(long, value_name = "NETS")]
    ip_allow: Option<String>,
    /// Refused source networks ("none")
    #[arg(long, value_name = "NETS")]
    ip_deny: Option<String>,
    /// Members' files are read-only: true|false
    #[arg(long, value_name = "BOOL")]
    read_only: Option<String>,
    /// Members may not delete: true|false
    #[arg(long, value_name = "BOOL")]
    no_delete: Option<String>,
}

impl Command {
    /// The command's first word, e.g. `user`.
    fn name(&self) -> &'static str {
        match self {
            Command::Serve { .. } => "serve",
            Command::SftpServer(_) => "sftp-server",
            Command::ScpServer(_) => "scp-server",
            Command::Setup { .. } => "setup",
            Command::Status { .. } => "status",
            Command::User(_) => "user",
            Command::Group(_) => "group",
            Command::Mfa(_) => "mfa",
            Command::Token(_) => "token",
            Command::Unlock { .. } => "unlock",
            Command::Policy(_) => "policy",
            Command::Audit { .. } => "audit",
            Command::Console { .. } => "console",
            Command::ConsolePin(_) => "console-pin",
        }
    }
}

impl GroupSettings {
    fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.home_template.is_none()
            && self.may_change_password.is_none()
            && self.ip_allow.is_none()
            && self.ip_deny.is_none()
            && self.read_only.is_none()
            && self.no_delete.is_none()
    }
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum MfaCommand {
    /// Start a TOTP enrolment: prints the secret and the otpauth:// URI.
    Enroll {
        /// User name
        name: String,
        /// TOTP configuration [default: the policy's default]
        #[arg(long)]
        config: Option<String>,
    },
    /// Confirm the enrolment with a code: prints the recovery codes.
    Confirm {
        /// User name
        name: String,
        /// The code the authenticator app shows
        code: String,
    },
    /// Remove TOTP and recovery codes from an account.
    Reset {
        /// User name
        name: String,
    },
    /// Issue new recovery codes (the old ones stop working).
    RecoveryCodes {
        /// User name
        name: String,
    },
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum TokenCommand {
    /// Create an access token: prints its value once.
    Add {
        /// User name
        name: String,
        /// What it is for
        #[arg(long)]
        label: String,
        /// Expiry: a date (YYYY-MM-DD) or a duration from now (30d, 12h)
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Protocols it works on, comma-separated (ssh,https,ftps) [default: all]
        #[arg(long, value_name = "PROTOCOLS")]
        scope: Option<String>,
    },
    /// List tokens (of one account, or all).
    List {
        /// User name
        name: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id
        id: String,
    },
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
pub(crate) enum PolicyCommand {
    /// Show every setting as KEY = VALUE.
    Show {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change settings: KEY=VALUE ... (all or none are applied).
    Set {
        /// Settings, e.g. mfa.required_for=admin,system_admin lockout.max_failures=5
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
}

/// Parses the command line, runs it, and maps errors to one line and exit 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // clap's first paragraph (the error and what it names) as one line.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("coffer: {first} (see coffer --help)");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Serve { .. } | Command::Console { .. }) {
        init_logging("coffer=warn");
    }
    let mut out = Output::default();
    let result = run(cli, &mut out);
    // Names and details come from outside: escape sequences in them are
    // shown as text, never sent to the terminal.
    let written = write_all(std::io::stdout(), &crate::audit::for_terminal(&out.stdout));
    let _ = write_all(std::io::stderr(), &crate::audit::for_terminal(&out.stderr));
    match (result, written) {
        (Err(e), _) => {
            let line = format!("coffer: {}\n", one_line(&e));
            let _ = write_all(std::io::stderr(), &crate::audit::for_terminal(&line));
            ExitCode::from(2)
        }
        // A reader that stopped early (`coffer user list | head -1`) is not
        // an error of the command.
        (Ok(()), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        (Ok(()), Err(e)) => {
            let _ = write_all(
                std::io::stderr(),
                &format!("coffer: cannot write the output: {e}\n"),
            );
            ExitCode::from(2)
        }
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
    }
}

/// Writes `text` and flushes, returning the error where `print!` would panic
/// (stdout closed or a full disk behind a redirect).
fn write_all(mut to: impl std::io::Write, text: &str) -> std::io::Result<()> {
    to.write_all(text.as_bytes())?;
    to.flush()
}

/// Logs to stderr with `default` as the filter unless RUST_LOG says otherwise.
fn init_logging(default: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = match crate::system::logging::env_filter() {
        Some(Ok(filter)) => filter,
        _ => crate::system::logging::parse_filter(default)
            .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new()),
    };
    let layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

/// An error as one line, with its causes.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// What a command printed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error (notes, not the error line).
    pub stderr: String,
}

/// What a command runs against.
pub struct Ctx<'a> {
    /// The core.
    pub auth: &'a Auth,
    /// The data dir.
    pub data_dir: &'a Path,
    /// How the data key is protected.
    pub seal: &'a SealStatus,
    /// Set when a running server executes the command.
    pub server: Option<ServerInfo>,
    /// The certificate a running server serves (`None`: read the one in
    /// the data dir).
    pub certs: Option<&'a crate::web::tls::Certificates>,
}

/// A running server, as `status` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Process id.
    pub pid: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// Listening addresses, e.g. `sftp 0.0.0.0:2022`.
    pub listening: Vec<String>,
    /// The HTTPS port, for the setup URL.
    #[serde(default)]
    pub https_port: Option<u16>,
}

/// A password given on the command line as a file ("-": standard input);
/// read by the command-line process, so a server never opens the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PasswordArg {
    path: PathBuf,
    #[serde(default)]
    value: Option<Zeroizing<String>>,
}

impl std::str::FromStr for PasswordArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self {
            path: PathBuf::from(s),
            value: None,
        })
    }
}

impl PasswordArg {
    fn resolve(&mut self) -> anyhow::Result<()> {
        if self.value.is_none() {
            self.value = Some(read_password(&self.path)?);
        }
        Ok(())
    }

    pub(crate) fn value(&self) -> anyhow::Result<&str> {
        self.value
            .as_deref()
            .map(String::as_str)
            .ok_or_else(|| anyhow!("the password was not read"))
    }
}

/// Reads what the command names from files and standard input, before the
/// command goes anywhere.
fn resolve(command: &mut Command) -> anyhow::Result<()> {
    match command {
        Command::Setup { password_file, .. }
        | Command::User(UserCommand::Password { password_file, .. })
        | Command::ConsolePin(crate::console::PinCommand::Set {
            pin_file: password_file,
        }) => password_file.resolve(),
        Command::User(UserCommand::Add {
            password_file: Some(p),
            ..
        }) => p.resolve(),
        Command::User(UserCommand::Key(KeyCommand::Add { key, .. })) if key == "-" => {
            let mut line = String::new();
            std::io::stdin()
                .take(16 * 1024 + 1)
                .read_to_string(&mut line)
                .context("cannot read the key from standard input")?;
            *key = line;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn run(mut cli: Cli, out: &mut Output) -> anyhow::Result<()> {
    resolve(&mut cli.command)?;
    crate::store::set_holder_name(&format!("coffer {}", cli.command.name()));
    let g = &cli.global;
    if let Command::Serve {
        config,
        sftp_listen,
        https_listen,
        files_root,
        log_level,
    } = &cli.command
    {
        let flags = crate::config::Overrides {
            config: config.clone(),
            data_dir: g.data_dir.clone(),
            sftp_listen: sftp_listen.clone(),
            https_listen: https_listen.clone(),
            files_root: files_root.clone(),
            log_level: log_level.clone(),
            seal: g.seal.clone(),
            tcti: g.tcti.clone(),
            pcr7: g.pcr7,
        };
        let file = match config {
            Some(path) => crate::config::FileConfig::load(path)?,
            None => crate::config::FileConfig::default(),
        };
        let resolved = file.resolve(&flags, data_dir(None))?;
        crate::system::logging::init(&resolved.log_level, resolved.log_target)?;
        return crate::server::run(resolved);
    }
    if let Command::Console { config } = &cli.command {
        return crate::console::main(crate::config::Overrides {
            config: config.clone(),
            data_dir: g.data_dir.clone(),
            seal: g.seal.clone(),
            tcti: g.tcti.clone(),
            pcr7: g.pcr7,
            ..Default::default()
        });
    }
    match cli.command {
        Command::SftpServer(args) => return crate::files::stdio::sftp_server(args),
        Command::ScpServer(args) => return crate::files::stdio::scp_server(args),
        _ => {}
    }
    let dir = data_dir(g.data_dir.clone());
    if let Some(reply) = crate::control::request(&dir, &cli.command)? {
        out.stdout = reply.output.stdout;
        out.stderr = reply.output.stderr;
        return match reply.error {
            Some(e) => Err(anyhow!(e)),
            None => Ok(()),
        };
    }
    let options = seal_options(g)?;
    let me = Actor::cli();
    match cli.command {
        Command::Setup { .. } => {
            // Validate every input before anything is created.
            if let Command::Setup {
                admin,
                password_file,
                hash_cost,
            } = &cli.command
            {
                if let Some(c) = hash_cost {
                    c.parse::<HashCost>()
                        .map_err(|e| anyhow!("--hash-cost: {e}"))?;
                }
                crate::auth::accounts::check_new_owner(admin, password_file.value()?)?;
            }
            setup_direct(&dir, &options, &me, cli.command, out)
        }
        Command::Status { json } => {
            let store = Store::open(&dir, OpenMode::Existing, &crate::auth::SCHEMA)?;
            match seal::open(&dir, &options, false) {
                Ok((key, seal)) => {
                    let auth = Auth::new(
                        store,
                        key,
                        Arc::new(SystemClock),
                        Options::for_data_dir(&dir),
                    );
                    let ctx = Ctx {
                        auth: &auth,
                        data_dir: &dir,
                        seal: &seal,
                        server: None,
                        certs: None,
                    };
                    status(&ctx, json, out)
                }
                Err(e) => {
                    // Show what can be known without the data key, then fail.
                    let report = status_without_key(&store, &dir, &e.to_string())?;
                    if json {
                        print_json(out, &report.0)?;
                    } else {
                        for l in report.1 {
                            outln!(out, "{l}");
                        }
                    }
                    Err(e.into())
                }
            }
        }
        command => {
            let store = Store::open(&dir, OpenMode::Existing, &crate::auth::SCHEMA)?;
            let (key, seal) = seal::open(&dir, &options, false)?;
            let auth = Auth::new(
                store,
                key,
                Arc::new(SystemClock),
                Options::for_data_dir(&dir),
            );
            let ctx = Ctx {
                auth: &auth,
                data_dir: &dir,
                seal: &seal,
                server: None,
                certs: None,
            };
            execute(&ctx, &me, command, out)
        }
    }
}

/// Claims the box with no server running: creates the data dir, the store
/// and the data key, then the owner. When a fresh setup fails, what it
/// created is removed again, so a retry starts from nothing.
fn setup_direct(
    dir: &Path,
    options: &SealOptions,
    me: &Actor,
    command: Command,
    out: &mut Output,
) -> anyhow::Result<()> {
    let dir_existed = dir.exists();
    let store_existed = dir.join(STORE_FILE).exists();
    let keys_existed = [seal::KEY_FILE_NAME, seal::TPM_BLOB_NAME].map(|f| dir.join(f).exists());
    let result = (|| {
        let store = Store::open(dir, OpenMode::Create, &crate::auth::SCHEMA)?;
        if crate::auth::owner_of(&store)?.is_some() {
            bail!("this box is already claimed (data dir {})", dir.display());
        }
        let (key, seal) = seal::open(dir, options, true)?;
        let auth = Auth::new(
            store,
            key,
            Arc::new(SystemClock),
            Options::for_data_dir(dir),
        );
        let ctx = Ctx {
            auth: &auth,
            data_dir: dir,
            seal: &seal,
            server: None,
            certs: None,
        };
        execute(&ctx, me, command, out)
    })();
    if result.is_err() && !store_existed {
        let mut created = vec![dir.join(STORE_FILE), dir.join(crate::store::LOCK_FILE)];
        for (name, existed) in [seal::KEY_FILE_NAME, seal::TPM_BLOB_NAME]
            .iter()
            .zip(keys_existed)
        {
            if !existed {
                created.push(dir.join(name));
            }
        }
        for path in created {
            let _ = std::fs::remove_file(path);
        }
        if !dir_existed {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

/// The data dir: the flag, else `$STATE_DIRECTORY` (systemd), else `./coffer-data`.
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|state| {
            let text = state.to_string_lossy();
            text.split(':')
                .next()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("coffer-data"))
}

fn seal_options(g: &Global) -> anyhow::Result<SealOptions> {
    Ok(SealOptions {
        choice: g
            .seal
            .as_deref()
            .unwrap_or("auto")
            .parse()
            .map_err(|e| anyhow!("--seal: {e}"))?,
        tcti: g.tcti.clone(),
        bind_pcr7: g.pcr7,
    })
}

/// Reads a password from a file or standard input ("-"); one trailing
/// newline is dropped.
fn read_password(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    const LIMIT: u64 = 4096;
    let mut raw = Zeroizing::new(Vec::new());
    let what = if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    if path == Path::new("-") {
        std::io::stdin().take(LIMIT + 1).read_to_end(&mut raw)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(LIMIT + 1).read_to_end(&mut raw))
    }
    .with_context(|| format!("cannot read the password from {what}"))?;
    if raw.len() as u64 > LIMIT {
        bail!("the password in {what} is longer than {LIMIT} bytes");
    }
    let text = String::from_utf8(raw.to_vec())
        .map_err(|_| anyhow!("the password in {what} is not UTF-8 text"))?;
    let mut text = Zeroizing::new(text);
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        bail!("the password in {what} is empty");
    }
    Ok(text)
}

fn parse_bool(flag: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => bail!("--{flag}: {v:?} is not true or false"),
    }
}

fn opt_bool(flag: &str, v: &Option<String>) -> anyhow::Result<Option<bool>> {
    v.as_deref().map(|v| parse_bool(flag, v)).transpose()
}

fn parse_scope(text: &str) -> anyhow::Result<BTreeSet<Protocol>> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<Protocol>()
                .map_err(|e| anyhow!("--scope: {e}"))
        })
        .collect()
}

fn parse_expiry(text: &str, now: u64) -> anyhow::Result<u64> {
    if let Some(ts) = parse_utc(text) {
        return Ok(ts);
    }
    match crate::auth::policy::parse_duration(text) {
        Some(secs) if secs > 0 => Ok(now.saturating_add(secs)),
        _ => bail!("--expires: {text:?} is neither a date (YYYY-MM-DD) nor a duration (30d, 12h)"),
    }
}

fn print_json(out: &mut Output, value: &impl serde::Serialize) -> anyhow::Result<()> {
    out.stdout.push_str(&serde_json::to_string_pretty(value)?);
    out.stdout.push('\n');
    Ok(())
}

/// Runs one command on an open core, writing what it prints into `out`.
/// The same function serves the command line and the control socket, so the
/// output is the same either way.
pub(crate) fn execute(
    ctx: &Ctx<'_>,
    me: &Actor,
    command: Command,
    out: &mut Output,
) -> anyhow::Result<()> {
    match command {
        Command::Setup {
            admin,
            password_file,
            hash_cost,
        } => {
            let cost = hash_cost
                .as_deref()
                .map(|c| {
                    c.parse::<HashCost>()
                        .map_err(|e| anyhow!("--hash-cost: {e}"))
                })
                .transpose()?;
            ctx.auth.claim(me, &admin, password_file.value()?, cost)?;
            outln!(
                out,
                "claimed by {admin} (system_admin, the owner) in {}",
                ctx.data_dir.display()
            );
            outln!(out, "sealing: {}", ctx.seal.backend);
            Ok(())
        }
        Command::Status { json } => status(ctx, json, out),
        Command::Serve { .. } => bail!("a server is already running on this data dir"),
        Command::Console { .. } => bail!("the console runs on its own terminal"),
        Command::ConsolePin(cmd) => crate::console::pin_command(ctx, me, cmd, out),
        Command::SftpServer(_) | Command::ScpServer(_) => {
            bail!("the file servers run on standard input and output, not through a server")
        }
        Command::User(cmd) => user(ctx, me, cmd, out),
        Command::Group(cmd) => group(ctx, me, cmd, out),
        Command::Mfa(cmd) => mfa(ctx, me, cmd, out),
        Command::Token(cmd) => token(ctx, me, cmd, out),
        Command::Unlock { name, address } => {
            if let Some(text) = address {
                let address =
                    crate::address::parse(&text).map_err(|e| anyhow!("--address: {e}"))?;
                let n = ctx.auth.unlock_address(me, address)?;
                outln!(
                    out,
                    "unlocked address {} ({n} lock record(s) cleared)",
                    crate::address::describe(address)
                );
                return Ok(());
            }
            let Some(name) = name else {
                bail!("name an account or --address ADDR");
            };
            let n = ctx.auth.unlock(me, &name)?;
            outln!(out, "unlocked {name} ({n} lock record(s) cleared)");
            Ok(())
        }
        Command::Policy(PolicyCommand::Show { json }) => {
            let policy = ctx.auth.policy_for(me)?;
            if json {
                return print_json(out, &policy);
            }
            for (k, v) in policy.entries() {
                outln!(out, "{k} = {v}");
            }
            Ok(())
        }
        Command::Policy(PolicyCommand::Set { settings }) => {
            let changes = settings
                .iter()
                .map(|s| {
                    s.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| anyhow!("{s:?}: expected KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let policy = ctx.auth.set_policy(me, &changes)?;
            let entries = policy.entries();
            for (k, _) in &changes {
                if let Some((_, v)) = entries.iter().find(|(key, _)| key == k) {
                    outln!(out, "{k} = {v}");
                } else {
                    outln!(out, "{k}: removed");
                }
            }
            Ok(())
        }
        Command::Audit {
            limit,
            user,
            event,
            since,
            json,
        } => {
            let events = event
                .iter()
                .map(|e| {
                    Event::parse(e).ok_or_else(|| {
                        anyhow!("--event: {e:?} is not an event id or name (see the README)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let since = since
                .map(|s| {
                    parse_utc(&s)
                        .ok_or_else(|| anyhow!("--since: {s:?} is not a date (YYYY-MM-DD)"))
                })
                .transpose()?;
            let auth = ctx.auth;
            let records = auth.audit_log(
                me,
                &audit::Filter {
                    account: user,
                    events,
                    since,
                    limit,
                },
            )?;
            if json {
                return print_json(out, &records);
            }
            for r in records {
                outln!(
                    out,
                    "{}  {} {}  account={} address={} protocol={} method={}{}{}",
                    format_utc(r.at),
                    r.id,
                    r.event.slug(),
                    r.account.as_deref().unwrap_or("-"),
                    r.address.map_or_else(|| "-".to_string(), |a| a.to_string()),
                    r.protocol.as_deref().unwrap_or("-"),
                    r.method.as_deref().unwrap_or("-"),
                    if r.detail.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", r.detail)
                    },
                    match (r.repeated, r.last_at) {
                        (0, _) => String::new(),
                        (n, Some(last)) => format!("  (and {n} more until {})", format_utc(last)),
                        (n, None) => format!("  (and {n} more)"),
                    }
                );
            }
            Ok(())
        }
    }
}

fn seal_line(seal: &SealStatus) -> String {
    match seal.backend {
        seal::Backend::Tpm => format!(
            "TPM 2.0: the data key is sealed by the TPM ({})",
            seal.detail
        ),
        seal::Backend::KeyFile => format!(
            "key file, NO TPM: the TOTP seeds are protected only by the permissions of {}",
            seal.detail
        ),
    }
}

fn store_lines(store: &Store, dir: &Path) -> anyhow::Result<(serde_json::Value, Vec<String>)> {
    let schema = store.schema_version()?;
    let size = std::fs::metadata(dir.join(STORE_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let json = serde_json::json!({
        "file": dir.join(STORE_FILE),
        "bytes": size,
        "schema_version": schema,
        "schema_version_supported": crate::auth::SCHEMA.version(),
    });
    let lines = vec![
        format!("coffer {}", env!("CARGO_PKG_VERSION")),
        format!("data dir:  {}", dir.display()),
        format!(
            "store:     {} ({} KiB), schema version {schema} (this coffer: {})",
            STORE_FILE,
            size.div_ceil(1024),
            crate::auth::SCHEMA.version()
        ),
    ];
    Ok((json, lines))
}

fn status_without_key(
    store: &Store,
    dir: &Path,
    error: &str,
) -> anyhow::Result<(serde_json::Value, Vec<String>)> {
    let (store_json, mut lines) = store_lines(store, dir)?;
    lines.push(format!("sealing:   ERROR: {error}"));
    lines.push("server:    not running".into());
    let json = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "data_dir": dir,
        "store": store_json,
        "sealing": { "error": error },
        "server": null,
    });
    Ok((json, lines))
}

fn status(ctx: &Ctx<'_>, json: bool, out: &mut Output) -> anyhow::Result<()> {
    let (store_json, mut lines) = store_lines(ctx.auth.store(), ctx.data_dir)?;
    lines.push(format!("sealing:   {}", seal_line(ctx.seal)));
    let claimed = ctx.auth.owner(&Actor::cli())?;
    let counts = ctx.auth.counts(&Actor::cli())?;
    lines.push(format!(
        "claimed:   {}",
        claimed.as_ref().map_or_else(
            || "no (unclaimed box)".to_string(),
            |o| format!("yes, by {o}")
        )
    ));
    let claim_code = match &claimed {
        Some(_) => None,
        None => ctx.auth.claim_code(&Actor::cli())?,
    };
    if let Some(code) = &claim_code {
        lines.push(format!(
            "claim:     open https://THIS-BOX{}/setup and enter the claim code {code}",
            ctx.server
                .as_ref()
                .and_then(|s| s.https_port)
                .map_or_else(String::new, |p| format!(":{p}"))
        ));
    }
    let certificate = crate::web::tls::in_use(ctx.certs, ctx.data_dir);
    lines.push(match &certificate {
        Some(c) => format!("https:     certificate SHA-256 {}", c.fingerprint),
        None => "https:     no certificate yet (made when the server first starts)".into(),
    });
    lines.push(format!(
        "accounts:  {} (groups {}, TOTP enrolments {}, access tokens {})",
        counts.get("accounts").copied().unwrap_or(0),
        counts.get("groups").copied().unwrap_or(0),
        counts.get("totp_enrolments").copied().unwrap_or(0),
        counts.get("access_tokens").copied().unwrap_or(0)
    ));
    let locks = ctx.auth.locks(&Actor::cli())?;
    for (address, until) in &locks.addresses {
        lines.push(format!(
            "locked:    address {address} for all accounts until {} (coffer unlock --address {address})",
            format_utc(*until)
        ));
    }
    for (name, until) in &locks.code_entry {
        lines.push(format!(
            "locked:    code entry of {name} (too many wrong codes) until {} (coffer unlock {name})",
            format_utc(*until)
        ));
    }
    lines.push(match &ctx.server {
        Some(s) => format!(
            "server:    running, pid {}, since {}; {}",
            s.pid,
            format_utc(s.started_at),
            s.listening.join(", ")
        ),
        None => "server:    not running".into(),
    });
    if json {
        let report = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "data_dir": ctx.data_dir,
            "store": store_json,
            "sealing": ctx.seal,
            "claimed_by": claimed,
            "claim_code": claim_code.as_ref().map(ToString::to_string),
            "certificate": certificate,
            "counts": counts,
            "locks": locks,
            "server": ctx.server,
        });
        return print_json(out, &report);
    }
    for l in lines {
        outln!(out, "{l}");
    }
    Ok(())
}

fn account_lines(v: &AccountView, address_locks: &[(String, Timestamp)]) -> Vec<String> {
    let a = &v.account;
    let nets = |n: &[ipnet::IpNet]| {
        if n.is_empty() {
            "-".to_string()
        } else {
            n.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut out = vec![
        format!("name:        {}", a.name),
        format!("role:        {}", a.role),
        format!("group:       {}", a.group.as_deref().unwrap_or("-")),
        format!(
            "status:      {}",
            if a.disabled { "disabled" } else { "enabled" }
        ),
        format!("created:     {}", format_utc(a.created_at)),
        format!(
            "password:    {}",
            if v.has_password { "set" } else { "none" }
        ),
        format!("home:        {}", v.home_folder),
        format!(
            "permissions: {}",
            match (v.permissions.write, v.permissions.delete) {
                (false, _) => "read-only",
                (true, false) => "read, write (no delete)",
                (true, true) => "read, write, delete",
            }
        ),
        format!("ip allow:    {}", nets(&a.ip_allow)),
        format!("ip deny:     {}", nets(&a.ip_deny)),
        format!(
            "mfa:         {}{}{}{}",
            if v.mfa.enrolled {
                "TOTP enrolled"
            } else if v.mfa.pending {
                "enrolment pending"
            } else {
                "not enrolled"
            },
            if v.mfa.enrolled {
                format!(", {} recovery codes left", v.mfa.recovery_codes_left)
            } else {
                String::new()
            },
            if v.mfa.exempt { ", exempt" } else { "" },
            if v.mfa.skip {
                ", skipped permanently"
            } else {
                ""
            },
        ),
        format!("tokens:      {}", v.tokens),
    ];
    for (addr, until) in &v.locked {
        out.push(format!(
            "locked:      from {addr} until {}",
            format_utc(*until)
        ));
    }
    if let Some(until) = v.code_entry_locked_until {
        out.push(format!(
            "locked:      code entry from every address (too many wrong codes) until {}",
            format_utc(until)
        ));
    }
    for (addr, until) in address_locks {
        out.push(format!(
            "locked:      address {addr} (all accounts) until {}",
            format_utc(*until)
        ));
    }
    for k in &v.public_keys {
        out.push(format!("key:         {k}"));
    }
    out
}

fn user(ctx: &Ctx<'_>, me: &Actor, cmd: UserCommand, out: &mut Output) -> anyhow::Result<()> {
    let disabling = matches!(cmd, UserCommand::Disable { .. });
    match cmd {
        UserCommand::Add {
            name,
            role,
            group,
            password_file,
            home,
            keys,
        } => {
            let role: Role = role.parse().map_err(|e| anyhow!("--role: {e}"))?;
            let password = password_file
                .as_ref()
                .map(|p| p.value().map(|v| Zeroizing::new(v.to_string())))
                .transpose()?;
            let auth = ctx.auth;
            auth.create_account(
                me,
                NewAccount {
                    name: name.clone(),
                    role,
                    group,
                    password,
                    home,
                    public_keys: keys,
                },
            )?;
            outln!(out, "created user {name} ({role})");
        }
        UserCommand::List { json } => {
            let accounts = ctx.auth.accounts(me)?;
            if json {
                return print_json(out, &accounts);
            }
            outln!(
                out,
                "{:<24} {:<13} {:<12} {:<9} {:<14} {:>4} {:>6}",
                "NAME",
                "ROLE",
                "GROUP",
                "STATUS",
                "MFA",
                "KEYS",
                "TOKENS"
            );
            for v in accounts {
                let a = &v.account;
                let status = if a.disabled {
                    "disabled"
                } else if v.locked.is_empty() && v.code_entry_locked_until.is_none() {
                    "enabled"
                } else {
                    "locked"
                };
                let mfa = if v.mfa.enrolled {
                    "enrolled"
                } else if v.mfa.exempt {
                    "exempt"
                } else {
                    "-"
                };
                outln!(
                    out,
                    "{:<24} {:<13} {:<12} {:<9} {:<14} {:>4} {:>6}",
                    a.name,
                    a.role.to_string(),
                    a.group.as_deref().unwrap_or("-"),
                    status,
                    mfa,
                    v.public_keys.len(),
                    v.tokens
                );
            }
        }
        UserCommand::Show { name, json } => {
            let v = ctx.auth.account(me, &name)?;
            // Address-wide locks keep this account out from there too.
            let address_locks = ctx.auth.locks(me)?.addresses;
            if json {
                let mut value = serde_json::to_value(&v)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "address_locks".into(),
                        serde_json::to_value(&address_locks)?,
                    );
                }
                return print_json(out, &value);
            }
            for l in account_lines(&v, &address_locks) {
                outln!(out, "{l}");
            }
        }
        UserCommand::Disable { name } | UserCommand::Enable { name } => {
            let change = AccountChange {
                disabled: Some(disabling),
                ..Default::default()
            };
            ctx.auth.update_account(me, &name, change)?;
            outln!(
                out,
                "{} {name}",
                if disabling { "disabled" } else { "enabled" }
            );
        }
        UserCommand::Remove { name } => {
            ctx.auth.remove_account(me, &name)?;
            outln!(out, "removed {name}");
        }
        UserCommand::Rename { name, new_name } => {
            let v = ctx.auth.rename_account(me, &name, &new_name)?;
            outln!(
                out,
                "renamed {name} to {new_name} (home folder {})",
                v.home_folder
            );
        }
        UserCommand::Password {
            name,
            password_file,
        } => {
            let password = password_file.value()?;
            ctx.auth.set_password(me, &name, password, None)?;
            outln!(out, "password changed for {name}");
        }
        UserCommand::Set(s) => {
            let change = AccountChange {
                role: s
                    .role
                    .as_deref()
                    .map(|r| r.parse::<Role>().map_err(|e| anyhow!("--role: {e}")))
                    .transpose()?,
                group: s.group.map(|g| (g != "none").then_some(g)),
                home: s.home.map(|h| (h != "default").then_some(h)),
                ip_allow: s
                    .ip_allow
                    .as_deref()
                    .map(parse_nets)
                    .transpose()
                    .map_err(|e| anyhow!("--ip-allow: {e}"))?,
                ip_deny: s
                    .ip_deny
                    .as_deref()
                    .map(parse_nets)
                    .transpose()
                    .map_err(|e| anyhow!("--ip-deny: {e}"))?,
                read_only: opt_bool("read-only", &s.read_only)?,
                no_delete: opt_bool("no-delete", &s.no_delete)?,
                may_change_password: match s.may_change_password.as_deref() {
                    None => None,
                    Some("group") => Some(None),
                    Some(v) => Some(Some(parse_bool("may-change-password", v)?)),
                },
                mfa_exempt: opt_bool("mfa-exempt", &s.mfa_exempt)?,
                mfa_skip: opt_bool("mfa-skip", &s.mfa_skip)?,
                disabled: None,
            };
            if change.is_empty() {
                bail!("nothing to change: give at least one option (see coffer user set --help)");
            }
            let v = ctx.auth.update_account(me, &s.name, change)?;
            for l in account_lines(&v, &[]) {
                outln!(out, "{l}");
            }
        }
        UserCommand::Key(KeyCommand::Add { name, key }) => {
            let k = ctx.auth.add_public_key(me, &name, &key)?;
            outln!(out, "added key {} to {name}", k.fingerprint);
        }
        UserCommand::Key(KeyCommand::Remove { name, key }) => {
            let k = ctx.auth.remove_public_key(me, &name, &key)?;
            outln!(out, "removed key {} from {name}", k.fingerprint);
        }
        UserCommand::Key(KeyCommand::List { name }) => {
            let v = ctx.auth.account(me, &name)?;
            for k in v.public_keys {
                outln!(out, "{k}");
            }
        }
    }
    Ok(())
}

fn group(ctx: &Ctx<'_>, me: &Actor, cmd: GroupCommand, out: &mut Output) -> anyhow::Result<()> {
    let apply =
        |mut group: crate::auth::Group, s: &GroupSettings| -> anyhow::Result<crate::auth::Group> {
            if let Some(v) = opt_bool("enabled", &s.enabled)? {
                group.enabled = v;
            }
            if let Some(t) = &s.home_template {
                group.home_template = t.clone();
            }
            if let Some(v) = opt_bool("may-change-password", &s.may_change_password)? {
                group.may_change_password = v;
            }
            if let Some(n) = &s.ip_allow {
                group.ip_allow = parse_nets(n).map_err(|e| anyhow!("--ip-allow: {e}"))?;
            }
            if let Some(n) = &s.ip_deny {
                group.ip_deny = parse_nets(n).map_err(|e| anyhow!("--ip-deny: {e}"))?;
            }
            if let Some(v) = opt_bool("read-only", &s.read_only)? {
                group.read_only = v;
            }
            if let Some(v) = opt_bool("no-delete", &s.no_delete)? {
                group.no_delete = v;
            }
            Ok(group)
        };
    match cmd {
        GroupCommand::Add { name, settings } => {
            let group = apply(new_group(&name), &settings)?;
            ctx.auth.create_group(me, group)?;
            outln!(out, "created group {name}");
        }
        GroupCommand::Set { name, settings } => {
            if settings.is_empty() {
                bail!("nothing to change: give at least one option (see coffer group set --help)");
            }
            let auth = ctx.auth;
            let current = auth
                .groups_for(me)?
                .into_iter()
                .find(|x| x.name == name)
                .ok_or_else(|| anyhow!("there is no group named {name:?}"))?;
            auth.update_group(me, apply(current, &settings)?)?;
            outln!(out, "changed group {name}");
        }
        GroupCommand::List { json } => {
            let groups = ctx.auth.groups_for(me)?;
            if json {
                return print_json(out, &groups);
            }
            outln!(
                out,
                "{:<20} {:<8} {:<24} {:<9}",
                "NAME",
                "ENABLED",
                "HOME TEMPLATE",
                "FILES"
            );
            for x in groups {
                let files = if x.read_only {
                    "read-only"
                } else if x.no_delete {
                    "no-delete"
                } else {
                    "full"
                };
                outln!(
                    out,
                    "{:<20} {:<8} {:<24} {:<9}",
                    x.name,
                    x.enabled,
                    x.home_template,
                    files
                );
            }
        }
        GroupCommand::Remove { name } => {
            ctx.auth.remove_group(me, &name)?;
            outln!(out, "removed group {name}");
        }
    }
    Ok(())
}

fn mfa(ctx: &Ctx<'_>, me: &Actor, cmd: MfaCommand, out: &mut Output) -> anyhow::Result<()> {
    match cmd {
        MfaCommand::Enroll { name, config } => {
            let start = ctx.auth.totp_start(me, &name, config.as_deref(), None)?;
            outln!(
                out,
                "Add {name} to an authenticator app with this URI (or type the secret):"
            );
            outln!(out, "secret: {}", start.secret.as_str());
            outln!(out, "uri:    {}", start.otpauth_uri.as_str());
            outln!(out, "Then confirm with: coffer mfa confirm {name} CODE");
        }
        MfaCommand::Confirm { name, code } => {
            let codes = ctx.auth.totp_confirm(me, &name, &code)?;
            outln!(
                out,
                "TOTP confirmed for {name}. Recovery codes (each works once; they are not shown again):"
            );
            for c in &codes.0 {
                outln!(out, "{}", c.as_str());
            }
        }
        MfaCommand::Reset { name } => {
            ctx.auth.mfa_reset(me, &name, None)?;
            outln!(out, "two-factor authentication removed from {name}");
        }
        MfaCommand::RecoveryCodes { name } => {
            let codes = ctx.auth.regenerate_recovery_codes(me, &name, None)?;
            outln!(
                out,
                "New recovery codes for {name} (the old ones no longer work):"
            );
            for c in &codes.0 {
                outln!(out, "{}", c.as_str());
            }
        }
    }
    Ok(())
}

fn token(ctx: &Ctx<'_>, me: &Actor, cmd: TokenCommand, out: &mut Output) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Add {
            name,
            label,
            expires,
            scope,
        } => {
            let scope = scope
                .as_deref()
                .map(parse_scope)
                .transpose()?
                .unwrap_or_default();
            let auth = ctx.auth;
            let expires = expires
                .as_deref()
                .map(|e| parse_expiry(e, auth.now()))
                .transpose()?;
            let t = auth.create_token(me, &name, &label, expires, scope)?;
            outln!(out, "{}", t.value.as_str());
            errln!(
                out,
                "token {} for {name} ({}); this value is shown only once",
                t.info.id,
                t.info.expires_at.map_or_else(
                    || "no expiry".to_string(),
                    |e| format!("expires {}", format_utc(e))
                )
            );
        }
        TokenCommand::List { name, json } => {
            let tokens = ctx.auth.tokens(me, name.as_deref())?;
            if json {
                return print_json(out, &tokens);
            }
            outln!(
                out,
                "{:<12} {:<16} {:<24} {:<20} {:<20} {:<10}",
                "ID",
                "ACCOUNT",
                "LABEL",
                "EXPIRES",
                "LAST USED",
                "SCOPE"
            );
            for t in tokens {
                outln!(
                    out,
                    "{:<12} {:<16} {:<24} {:<20} {:<20} {:<10}",
                    t.id,
                    t.account,
                    t.label,
                    t.expires_at.map_or_else(|| "never".into(), format_utc)
                        + if t.expired { " (expired)" } else { "" },
                    t.last_used.map_or_else(|| "never".into(), format_utc),
                    if t.scope.is_empty() {
                        "all".to_string()
                    } else {
                        t.scope
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = ctx.auth.revoke_token(me, &id)?;
            outln!(out, "revoked token {} ({}) of {}", t.id, t.label, t.account);
        }
    }
    Ok(())
}
