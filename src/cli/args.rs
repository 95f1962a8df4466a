//! The command line's words: every command and option, as clap parses
//! them. Nothing here runs anything; [`super::request`] turns a command
//! into an administrative request.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::PasswordArg;

/// Coffer: a file-transfer appliance with strong multi-factor authentication.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub(super) global: Global,
    #[command(subcommand)]
    pub(super) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Data directory [default: $STATE_DIRECTORY, else ./coffer-data]
    #[arg(long, global = true, env = "COFFER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How the data key is sealed when it is first created: auto, tpm or keyfile [default: auto]
    #[arg(long, global = true, env = "COFFER_SEAL", value_name = "BACKEND")]
    pub seal: Option<String>,
    /// TPM 2.0 connection, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321
    #[arg(long, global = true, env = "COFFER_TCTI", value_name = "TCTI")]
    pub tcti: Option<String>,
    /// Bind the sealed data key to PCR 7 (secure-boot state) when it is created
    #[arg(long, global = true)]
    pub pcr7: bool,
}

#[derive(Debug, Subcommand)]
/// The commands, as parsed and as sent over the control socket.
pub enum Command {
    /// Run the server (SFTP/SCP, and HTTPS: web UI and REST API) until SIGTERM.
    Serve {
        /// Configuration file (TOML; see docs/configuration.md)
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
    /// The technician console (for a serial line; see docs/operations.md).
    Console {
        /// Configuration file (TOML; see docs/configuration.md)
        #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Set or remove the technician PIN the console asks before any change.
    #[command(subcommand)]
    ConsolePin(PinCommand),
    /// Serve SFTP on standard input and output, like OpenSSH's sftp-server.
    #[command(hide = true)]
    SftpServer(crate::files::stdio::ServerArgs),
    /// Serve one legacy SCP command (`scp -t`/`scp -f`) on standard input and output.
    #[command(hide = true)]
    ScpServer(crate::files::stdio::ScpServerArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
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

#[derive(Debug, Args)]
pub struct UserSet {
    /// User name
    pub name: String,
    /// system_admin, admin or user
    #[arg(long)]
    pub role: Option<String>,
    /// Group ("none" to leave the group)
    #[arg(long)]
    pub group: Option<String>,
    /// Home folder ("default" for the group's template)
    #[arg(long)]
    pub home: Option<String>,
    /// Allowed source networks, comma-separated CIDRs ("none": any)
    #[arg(long, value_name = "NETS")]
    pub ip_allow: Option<String>,
    /// Refused source networks, comma-separated CIDRs ("none")
    #[arg(long, value_name = "NETS")]
    pub ip_deny: Option<String>,
    /// Files are read-only: true|false
    #[arg(long, value_name = "BOOL")]
    pub read_only: Option<String>,
    /// Files may not be deleted: true|false
    #[arg(long, value_name = "BOOL")]
    pub no_delete: Option<String>,
    /// May change own password: true|false|group
    #[arg(long, value_name = "BOOL")]
    pub may_change_password: Option<String>,
    /// Exempt from a required MFA policy: true|false
    #[arg(long, value_name = "BOOL")]
    pub mfa_exempt: Option<String>,
    /// Never offer MFA enrolment: true|false
    #[arg(long, value_name = "BOOL")]
    pub mfa_skip: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
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

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
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

#[derive(Debug, Args)]
pub struct GroupSettings {
    /// Members can log in: true|false
    #[arg(long, value_name = "BOOL")]
    pub enabled: Option<String>,
    /// Home folder template relative to the files root, with ${USER}
    #[arg(long, value_name = "TEMPLATE")]
    pub home_template: Option<String>,
    /// Members may change their own password: true|false
    #[arg(long, value_name = "BOOL")]
    pub may_change_password: Option<String>,
    /// Allowed source networks ("none": any)
    #[arg(long, value_name = "NETS")]
    pub ip_allow: Option<String>,
    /// Refused source networks ("none")
    #[arg(long, value_name = "NETS")]
    pub ip_deny: Option<String>,
    /// Members' files are read-only: true|false
    #[arg(long, value_name = "BOOL")]
    pub read_only: Option<String>,
    /// Members may not delete: true|false
    #[arg(long, value_name = "BOOL")]
    pub no_delete: Option<String>,
}

impl Command {
    /// The command's first word, e.g. `user`.
    pub fn name(&self) -> &'static str {
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

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
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

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
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

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
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

/// `coffer console-pin set|clear`.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Set or change the technician PIN the console asks before any change.
    Set {
        /// File holding the PIN ("-": standard input)
        #[arg(long, value_name = "FILE")]
        pin_file: PasswordArg,
    },
    /// Remove the technician PIN.
    Clear,
}
