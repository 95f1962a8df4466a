//! The console's terminal: plain lines in, plain lines out.
//!
//! Works on a serial line at 115200 baud, through `screen`, `minicom` or
//! `picocom`, and on any terminal: no colour, no cursor movement, lines of
//! at most 80 columns. When standard input is a terminal the console sets
//! the modes it relies on (canonical input with echo, CR read as newline,
//! newline written as CR LF, Ctrl-C and Ctrl-D active), since `agetty -n`
//! cannot learn them from a login name, and restores the old modes when it
//! leaves.
//!
//! Leaving: Ctrl-D (end of input) at a prompt, Ctrl-C, a hang-up of the
//! line, SIGTERM, or no input for the idle timeout. Ctrl-Z is ignored (no
//! shell on a serial getty could resume a stopped console). The signals are taken by
//! a thread of their own; while a change is being applied they wait until it
//! is done, so a dropped line or a Ctrl-C never leaves half a change.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// Widest line the console prints.
pub const WIDTH: usize = 80;
/// Longest line accepted.
const MAX_LINE: usize = 512;

/// What a prompt got.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A line, without its newline and without control characters.
    Line(String),
    /// End of input: Ctrl-D, or the line is gone.
    End,
    /// Nothing typed for the idle timeout.
    Idle,
}

static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static BUSY: AtomicBool = AtomicBool::new(false);
static LEAVE_AFTER_CHANGE: AtomicBool = AtomicBool::new(false);

/// The console's terminal.
pub struct Term {
    idle: Duration,
    pending: Vec<u8>,
    tty: bool,
}

/// Restores the terminal modes the console found.
pub fn restore() {
    let saved = SAVED.lock().map(|s| s.clone()).unwrap_or(None);
    if let Some(t) = saved {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t);
    }
}

/// Leaves the process: restores the terminal, says goodbye, exits 0.
pub fn leave(message: &str) -> ! {
    restore();
    let mut out = std::io::stdout();
    let _ = write!(out, "\n{message}\n");
    let _ = out.flush();
    std::process::exit(0)
}

/// Marks a change in progress: Ctrl-C and hang-ups wait until it is done.
pub struct ChangeGuard;

impl ChangeGuard {
    /// Starts a change.
    pub fn begin() -> Self {
        BUSY.store(true, Ordering::SeqCst);
        ChangeGuard
    }
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::SeqCst);
        if LEAVE_AFTER_CHANGE.load(Ordering::SeqCst) {
            leave("Leaving the console (the change was completed first).");
        }
    }
}

/// Takes SIGINT, SIGTERM, SIGHUP and SIGQUIT on a thread of its own. Call
/// before any other thread starts, so every thread inherits the mask.
pub fn take_signals() {
    let mut set = SigSet::empty();
    // SIGTSTP too: on a serial getty no shell could resume a stopped console.
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
    ] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("console-signals".into())
        .spawn(move || {
            loop {
                let Ok(signal) = set.wait() else {
                    continue;
                };
                if signal == Signal::SIGTSTP {
                    continue;
                }
                if BUSY.load(Ordering::SeqCst) {
                    LEAVE_AFTER_CHANGE.store(true, Ordering::SeqCst);
                    continue;
                }
                match signal {
                    Signal::SIGHUP => {
                        restore();
                        std::process::exit(0)
                    }
                    _ => leave("Leaving the console."),
                }
            }
        });
}

impl Term {
    /// Opens the terminal on standard input and output.
    pub fn new(idle: Duration) -> Self {
        let stdin = std::io::stdin();
        let tty = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
        if tty && let Ok(old) = termios::tcgetattr(stdin.as_fd()) {
            let mut t = old.clone();
            t.input_flags |= termios::InputFlags::ICRNL;
            t.input_flags &= !(termios::InputFlags::IGNCR | termios::InputFlags::INLCR);
            t.output_flags |= termios::OutputFlags::OPOST | termios::OutputFlags::ONLCR;
            t.local_flags |= LocalFlags::ICANON
                | LocalFlags::ECHO
                | LocalFlags::ECHOE
                | LocalFlags::ECHOK
                | LocalFlags::ISIG;
            t.control_flags &= !termios::ControlFlags::PARENB;
            t.control_flags |= termios::ControlFlags::CS8;
            if let Some(c) = t
                .control_chars
                .get_mut(termios::SpecialCharacterIndices::VINTR as usize)
            {
                *c = 3;
            }
            if let Some(c) = t
                .control_chars
                .get_mut(termios::SpecialCharacterIndices::VEOF as usize)
            {
                *c = 4;
            }
            if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t).is_ok()
                && let Ok(mut saved) = SAVED.lock()
            {
                *saved = Some(old);
            }
        }
        Self {
            idle,
            pending: Vec::new(),
            tty,
        }
    }

    /// Prints lines, each wrapped to [`WIDTH`] - 1 columns (see [`wrap`]).
    pub fn say(&mut self, text: &str) {
        let mut out = std::io::stdout();
        for line in text.split('\n') {
            for part in wrap(&crate::audit::for_terminal(line)) {
                let _ = writeln!(out, "{part}");
            }
        }
        let _ = out.flush();
    }

    /// Prints a prompt and reads a line.
    pub fn ask(&mut self, prompt: &str) -> Input {
        let mut out = std::io::stdout();
        let _ = write!(out, "{prompt}");
        let _ = out.flush();
        self.read_line()
    }

    /// Like [`Term::ask`], without echo (passwords, PINs).
    pub fn ask_secret(&mut self, prompt: &str) -> Input {
        let stdin = std::io::stdin();
        let old = if self.tty {
            termios::tcgetattr(stdin.as_fd()).ok()
        } else {
            None
        };
        if let Some(old) = &old {
            let mut t = old.clone();
            t.local_flags &= !LocalFlags::ECHO;
            t.local_flags |= LocalFlags::ECHONL;
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t);
        }
        let got = self.ask(prompt);
        if let Some(old) = &old {
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, old);
        }
        if !self.tty {
            self.say("");
        }
        got
    }

    fn read_line(&mut self) -> Input {
        let stdin = std::io::stdin();
        let deadline = crate::console::monotonic() + self.idle;
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
                line.pop();
                return Input::Line(clean(&line));
            }
            if self.pending.len() > MAX_LINE {
                self.pending.clear();
                return Input::Line("\u{1}too-long".into());
            }
            let now = crate::console::monotonic();
            if now >= deadline {
                return Input::Idle;
            }
            let wait = (deadline - now).min(Duration::from_secs(60));
            let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [nix::poll::PollFd::new(
                stdin.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Input::End,
            }
            let mut buf = [0u8; 256];
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) => {
                    if self.pending.is_empty() {
                        return Input::End;
                    }
                    // Ctrl-D after some text: the text counts as a line.
                    self.pending.push(b'\n');
                }
                Ok(n) => self
                    .pending
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => return Input::End,
            }
        }
    }
}

/// A line with terminal escape sequences and control characters removed.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final; SS3: ESC O x; else ESC x.
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// A line broken into screen lines of at most [`WIDTH`] - 1 columns, so
/// nothing is lost off the right edge (a claim code, an address, a path).
/// Breaks at spaces; a word longer than a line is split. Continuation lines
/// are indented to where the line's text starts, or, for a status row
/// (`  key        value`), to where the value starts.
pub fn wrap(line: &str) -> Vec<String> {
    let max = WIDTH - 1;
    let hang = hanging_indent(line);
    let mut out = Vec::new();
    let mut rest: Vec<char> = line.chars().collect();
    while rest.len() > max {
        let head = rest.get(..=max).unwrap_or_default();
        // A break only after the indentation (never inside a row's padding).
        // A word too long for any line (a long path) is split where the
        // line ends rather than moved to a line of its own.
        let fits_alone = |p: usize| {
            let word = rest.iter().skip(p + 1).take_while(|c| **c != ' ').count();
            hang + word <= max
        };
        let cut = head
            .iter()
            .rposition(|c| *c == ' ')
            .filter(|&p| p > hang && fits_alone(p));
        let (take, skip) = match cut {
            Some(p) => (p, p.saturating_add(1)),
            None => (max, max),
        };
        let piece: String = rest.get(..take).unwrap_or_default().iter().collect();
        out.push(piece.trim_end().to_string());
        let tail = rest.get(skip..).unwrap_or_default();
        let tail = tail
            .iter()
            .skip_while(|c| **c == ' ')
            .copied()
            .collect::<Vec<char>>();
        rest = std::iter::repeat_n(' ', hang).chain(tail).collect();
    }
    out.push(rest.iter().collect::<String>().trim_end().to_string());
    out
}

/// Where continuation lines of `line` start: the column of a status row's
/// value (after a run of two or more spaces), else the line's own indent;
/// at most half the width, so a continuation keeps room for its words.
fn hanging_indent(line: &str) -> usize {
    let chars: Vec<char> = line.chars().collect();
    let lead = chars.iter().take_while(|c| **c == ' ').count();
    let limit = (WIDTH - 1) / 2;
    let mut i = lead;
    while let Some(c) = chars.get(i) {
        if *c == ' ' && chars.get(i.saturating_add(1)) == Some(&' ') {
            let value = i + chars.iter().skip(i).take_while(|c| **c == ' ').count();
            return if value <= limit && value < chars.len() {
                value
            } else {
                lead.min(limit)
            };
        }
        i += 1;
    }
    lead.min(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_dropped() {
        assert_eq!(clean(b"  1\r"), "1");
        assert_eq!(clean(b"\x1b[A2\x1b[1;5C"), "2");
        assert_eq!(clean(b"a\x07b"), "ab");
    }

    #[test]
    fn long_lines_wrap_and_keep_every_word() {
        assert_eq!(wrap("short"), vec!["short".to_string()]);
        let row = format!(
            "  {:<12} {}",
            "claim",
            "UNCLAIMED: open https://<address above>:8443/setup and enter the claim code 7KQM-2XCA-PV4H"
        );
        let lines = wrap(&row);
        assert!(lines.len() > 1, "{lines:?}");
        for l in &lines {
            assert!(l.chars().count() < WIDTH, "{l:?}");
        }
        assert!(
            lines.iter().any(|l| l.contains("7KQM-2XCA-PV4H")),
            "{lines:?}"
        );
        // Continuation lines start under the value.
        assert!(
            lines
                .iter()
                .skip(1)
                .all(|l| l.starts_with(&" ".repeat(15)) && !l.starts_with(&" ".repeat(16))),
            "{lines:?}"
        );
        let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&lines.join(" ")), words(&row));
        // A word longer than a line is split, not cut.
        let long = "x".repeat(200);
        let parts = wrap(&long);
        assert!(parts.iter().all(|l| l.chars().count() < WIDTH));
        assert_eq!(parts.concat(), long);
    }
}
