//! Reading the account password for enrolling or removing one's own model.
//!
//! On a terminal the password is read without echo (`rpassword`, from `/dev/tty`); otherwise
//! one line is read from standard input, so scripts and tests can pipe it. The text lives in
//! zeroizing buffers until it is moved into the request's [`Secret`], which wipes itself when
//! the request is dropped right after sending.

use std::io::{BufRead, IsTerminal};

use authnet_ipc::Secret;
use zeroize::Zeroizing;

/// Longest password read from a pipe, in bytes (bounds memory for a runaway stdin).
const MAX_PASSWORD: u64 = 4096;

/// Prompts for `user`'s login password.
pub fn read(user: &str) -> std::io::Result<Secret> {
    let prompt = format!("Password for {user}: ");
    let mut text = if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password(prompt)?)
    } else {
        // The prompt still goes to stderr, so a log shows that a password was asked for.
        eprintln!("{prompt}(reading one line from standard input)");
        let mut line = Zeroizing::new(String::new());
        std::io::Read::take(std::io::stdin().lock(), MAX_PASSWORD).read_line(&mut line)?;
        line
    };
    while text.ends_with(['\n', '\r']) {
        text.pop();
    }
    // Moves the characters into the Secret; `text` is left empty and wiped on drop anyway.
    Ok(Secret::new(std::mem::take(&mut *text)))
}
