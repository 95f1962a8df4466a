//! The command line: `coffer serve|setup|status|user|group|mfa|token|unlock|policy|audit|console|console-pin`.
//!
//! A thin front end: it parses the arguments ([`args`]), turns an
//! administrative command into a typed request ([`request`]), sends it
//! through [`crate::admin::Link`] (to the running server, or on the store
//! opened directly) and prints the answer ([`print`]). Errors are one line
//! on stderr and exit status 2; a refused command writes nothing.

mod args;
mod print;
mod request;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use zeroize::Zeroizing;

use crate::admin::{Caller, Link};
use crate::seal::SealOptions;
pub use args::Cli;
use args::{Command, Global, KeyCommand, PinCommand, UserCommand};

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

/// What a command printed, written out at the end (names and details come
/// from outside: escape sequences in them are shown as text).
#[derive(Debug, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error (notes, not the error line).
    pub stderr: String,
}

/// A password given on the command line as a file ("-": standard input);
/// read by the command-line process, so a server never opens the file.
#[derive(Clone, Debug)]
pub struct PasswordArg {
    path: PathBuf,
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

    /// The password read by [`resolve`].
    fn secret(&self) -> anyhow::Result<Zeroizing<String>> {
        self.value
            .clone()
            .ok_or_else(|| anyhow!("the password was not read"))
    }
}

/// Reads what the command names from files and standard input, before the
/// command goes anywhere.
fn resolve(command: &mut Command) -> anyhow::Result<()> {
    match command {
        Command::Setup { password_file, .. }
        | Command::User(UserCommand::Password { password_file, .. })
        | Command::ConsolePin(PinCommand::Set {
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
    match &cli.command {
        Command::Serve {
            config,
            sftp_listen,
            https_listen,
            files_root,
            log_level,
        } => {
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
            let resolved = file.resolve(&flags, crate::config::default_data_dir())?;
            crate::system::logging::init(&resolved.log_level, resolved.log_target)?;
            return crate::server::run(resolved);
        }
        Command::Console { config } => {
            return crate::console::main(crate::config::Overrides {
                config: config.clone(),
                data_dir: g.data_dir.clone(),
                seal: g.seal.clone(),
                tcti: g.tcti.clone(),
                pcr7: g.pcr7,
                ..Default::default()
            });
        }
        _ => {}
    }
    match cli.command {
        Command::SftpServer(args) => return Ok(crate::files::stdio::sftp_server(args)?),
        Command::ScpServer(args) => return Ok(crate::files::stdio::scp_server(args)?),
        _ => {}
    }
    let Some(request) = request::of(&cli.command)? else {
        bail!("{} is not an administrative command", cli.command.name());
    };
    let dir = data_dir(g.data_dir.clone());
    let link = Link {
        files_root: dir.join("files"),
        data_dir: dir.clone(),
        seal: seal_options(g)?,
        caller: Caller::Cli,
    };
    let answer = link.call(request)?;
    print::answer(&cli.command, answer, &dir, out)
}

/// The data dir: the flag, else the default ([`crate::config::default_data_dir`]).
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(crate::config::default_data_dir)
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
