//! The real `sudo`, `su` and `login` binaries, driven through a pty (util-linux `script`),
//! with a PAM stack that puts `pam_authnet` before `pam_unix`, against the real `authnetd`
//! playing recorded MIRACL-VC1 clips.
//!
//! Every test user is created by the test with a known password (`useradd`, `chpasswd`) and
//! deleted when the test ends, so `pam_unix` checks a real `/etc/shadow` entry. This needs
//! root, which CI has.
//!
//! - `su` and `login` run as root under pam_wrapper: their service files live in a temporary
//!   directory (`PAM_WRAPPER_SERVICE_DIR`) without `pam_rootok`, so root is asked like anyone.
//! - `sudo` cannot run under pam_wrapper: run by root it never authenticates, and run by
//!   anyone else it is set-uid, so the dynamic loader ignores `LD_PRELOAD`. It therefore runs
//!   as the test user against the system libpam, with a sudoers drop-in
//!   (`/etc/sudoers.d/authnet-rc-*`) that concerns only the test user and only
//!   `/usr/bin/whoami`, and names a test-only PAM service (`pam_service=authnet-rc-*` in
//!   `/etc/pam.d`); both files are removed when the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use authnet_tests::{data, pam_module, require_tool, tool_at, Daemon, DaemonConfig};

const PASSWORD: &str = "Correct-Horse-7";

/// How many password prompts `text` shows: lines naming a password and ending in a colon
/// (`Password: ` of pam_unix, `[sudo] password for U: ` of sudo). The daemon's own info line
/// ("Mouth your password now") has no colon, so it is not mistaken for a prompt.
fn prompts(text: &str) -> usize {
    text.split(['\n', '\r'])
        .filter(|l| l.contains("assword") && l.trim_end().ends_with(':'))
        .count()
}

/// The tools every test here needs, or why not.
fn tools() -> Result<(), String> {
    for (path, package) in [
        ("/usr/bin/script", "bsdutils"),
        ("/usr/bin/setpriv", "util-linux"),
        ("/usr/bin/sudo", "sudo"),
        ("/bin/su", "util-linux"),
        ("/bin/login", "login"),
        ("/usr/sbin/useradd", "passwd"),
        ("/usr/sbin/chpasswd", "passwd"),
    ] {
        tool_at(path, package)?;
    }
    authnet_tests::pam_tools()?;
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if uid != 0 {
        return Err("these tests create users and need root".into());
    }
    Ok(())
}

/// The tests here share `/etc/sudoers.d`, `/etc/pam.d`, pam_wrapper's config directories
/// and, for the timing test, the CPU: they run one at a time whatever `--test-threads` says.
static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! require_tools {
    () => {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let Some(()) = require_tool(tools()) else {
            return;
        };
    };
}

/// A local user with [`PASSWORD`], deleted on drop.
struct TestUser {
    name: String,
}

impl TestUser {
    fn create(name: &str, shell: &str) -> Self {
        // A leftover of an interrupted run goes first.
        let _ = Command::new("/usr/sbin/userdel").arg(name).output();
        let out = Command::new("/usr/sbin/useradd")
            .args([
                "--no-create-home",
                "--home-dir",
                "/",
                "--shell",
                shell,
                name,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd {name}: {out:?}");
        let mut chpasswd = Command::new("/usr/sbin/chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(chpasswd.stdin.take().unwrap(), "{name}:{PASSWORD}").unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd {name}");
        Self { name: name.into() }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/userdel")
            .args(["--force", &self.name])
            .output();
    }
}

/// Files this test put under /etc, removed on drop.
struct EtcFiles(Vec<PathBuf>);

impl Drop for EtcFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The auth stack under test: the module, then `pam_unix` taking a typed password over.
fn stack(module_args: &str) -> String {
    format!(
        "auth sufficient {} {module_args}\n\
         auth required pam_unix.so try_first_pass\n\
         account required pam_permit.so\n\
         session required pam_permit.so\n\
         password required pam_deny.so\n",
        pam_module().display()
    )
}

/// The stack without the module (the baseline of the timing test).
fn stack_without_module() -> String {
    "auth required pam_unix.so\naccount required pam_permit.so\n\
     session required pam_permit.so\npassword required pam_deny.so\n"
        .into()
}

/// A command running on a fresh pty made by util-linux `script`: everything the program
/// writes to its terminal is collected, and [`Pty::send`] types into it.
struct Pty {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<(Mutex<Vec<u8>>, Condvar)>,
    reader: Option<JoinHandle<()>>,
    started: Instant,
}

impl Pty {
    /// Runs `/bin/sh -c shell_cmd` on a pty, with SSH variables removed (the module would
    /// skip an SSH session).
    fn spawn(shell_cmd: &str) -> Self {
        let mut cmd = Command::new("/usr/bin/script");
        cmd.args([
            "--quiet",
            "--return",
            "--flush",
            "--command",
            shell_cmd,
            "/dev/null",
        ])
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for v in authnet_tests::SSH_VARIABLES {
            cmd.env_remove(v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let out = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&out);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, cv) = &*sink;
                lock.lock().unwrap().extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            out,
            reader: Some(reader),
            started,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.0.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `n` password prompts (the `n`-th of a program
    /// that asks again); returns the time since the spawn.
    fn expect_prompt(&self, n: usize, within: Duration) -> Duration {
        let (lock, cv) = &*self.out;
        let deadline = Instant::now() + within;
        let mut buf = lock.lock().unwrap();
        loop {
            if prompts(&String::from_utf8_lossy(&buf)) >= n {
                return self.started.elapsed();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "password prompt {n} not shown within {within:?}; terminal so far:\n{}",
                String::from_utf8_lossy(&buf)
            );
            buf = cv.wait_timeout(buf, left).unwrap().0;
        }
    }

    /// Waits until the terminal shows `needle`; returns the time since the spawn.
    fn expect(&self, needle: &str, within: Duration) -> Duration {
        let (lock, cv) = &*self.out;
        let deadline = Instant::now() + within;
        let mut buf = lock.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&buf).contains(needle) {
                return self.started.elapsed();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{needle:?} not shown within {within:?}; terminal so far:\n{}",
                String::from_utf8_lossy(&buf)
            );
            buf = cv.wait_timeout(buf, left).unwrap().0;
        }
    }

    /// Types `text` on the terminal.
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the program to exit; returns its status and the whole terminal text.
    fn finish(mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {within:?}; terminal:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        drop(self.stdin.take());
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.text())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A daemon on `tmp` with `user` enrolled (the F02 word-01 model), playing `clip`.
fn daemon(tmp: &Path, user: &str, clip: &Path) -> Daemon {
    daemon_at(tmp, DaemonConfig::default().fps, user, clip)
}

/// [`daemon`] with a camera playing at `fps` frames a second.
fn daemon_at(tmp: &Path, fps: u32, user: &str, clip: &Path) -> Daemon {
    let c = DaemonConfig {
        fps,
        ..DaemonConfig::default()
    };
    let d = Daemon::start(tmp, &c);
    d.enrol(user);
    d.camera.play(clip);
    d
}

/// Installs the sudo side for `user`: a PAM service `authnet-rc-<user>` with `stack_text`
/// and a sudoers drop-in letting `user` run `/usr/bin/whoami` as root through that service,
/// asking every time.
fn sudo_setup(user: &str, stack_text: &str) -> EtcFiles {
    let service = format!("authnet-rc-{user}");
    let pam = PathBuf::from("/etc/pam.d").join(&service);
    std::fs::write(&pam, stack_text).unwrap();
    let sudoers = PathBuf::from("/etc/sudoers.d").join(&service);
    let tmp = sudoers.with_file_name(format!(".{service}.tmp"));
    std::fs::write(
        &tmp,
        format!(
            "Defaults:{user} pam_service={service}, timestamp_timeout=0, lecture=never\n\
             {user} ALL=(root) /usr/bin/whoami\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o440)).unwrap();
    std::fs::rename(&tmp, &sudoers).unwrap();
    EtcFiles(vec![pam, sudoers])
}

/// `sudo /usr/bin/whoami` typed by `user` (who is not root: root is never asked).
fn sudo_as(user: &str) -> Pty {
    Pty::spawn(&format!(
        "exec /usr/bin/setpriv --reuid={user} --regid={user} --init-groups \
         /usr/bin/sudo -k /usr/bin/whoami"
    ))
}

/// `prefix` then the program, under pam_wrapper with the services in `services`.
fn wrapped(services: &Path, program: &str) -> String {
    format!(
        "exec env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR={} {program}",
        services.display()
    )
}

/// A pam_wrapper service directory under `tmp` with `name` holding `stack_text`.
fn wrapper_services(tmp: &Path, name: &str, stack_text: &str) -> PathBuf {
    let dir = tmp.join("pam.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), stack_text).unwrap();
    dir
}

fn module_args(d: &Daemon, extra: &str) -> String {
    format!("socket={} timeout=30 {extra}", d.socket.display())
}

/// The lines a program printed after authentication (`whoami` prints exactly `root`).
fn ran_as_root(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "root")
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_genuine_face_runs_the_command_without_a_password() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-face", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &user.name, &data::word("F02", 1, 9));
    let _etc = sudo_setup(&user.name, &stack(&module_args(&d, "")));
    let (status, text) = sudo_as(&user.name).finish(Duration::from_secs(60));
    eprintln!("--- transcript: sudo, genuine face ---\n{text}\n---");
    assert!(status.success(), "{status}: {text}\n{}", d.log_text());
    assert!(ran_as_root(&text), "{text}");
    assert!(prompts(&text) == 0, "no password prompt expected: {text}");
    assert!(d.log_text().contains("decision=accept"), "{}", d.log_text());
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_impostor_gets_the_prompt_and_the_password_works() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-imp", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    // The right face, the wrong mouthed word.
    let d = daemon(tmp.path(), &user.name, &data::word("F02", 5, 9));
    let _etc = sudo_setup(&user.name, &stack(&module_args(&d, "")));
    let mut pty = sudo_as(&user.name);
    pty.expect_prompt(1, Duration::from_secs(60));
    pty.send(&format!("{PASSWORD}\n"));
    let (status, text) = pty.finish(Duration::from_secs(30));
    eprintln!("--- transcript: sudo, impostor then password ---\n{text}\n---");
    assert!(status.success(), "{status}: {text}");
    assert!(ran_as_root(&text), "{text}");
    assert!(!text.contains(PASSWORD), "the password was echoed: {text}");
    assert!(d.log_text().contains("decision=reject"), "{}", d.log_text());
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_wrong_password_after_an_impostor_is_refused() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-bad", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &user.name, &data::word("F02", 5, 9));
    let _etc = sudo_setup(&user.name, &stack(&module_args(&d, "")));
    let mut pty = sudo_as(&user.name);
    // sudo asks up to three times; every answer is wrong.
    for n in 1..=3 {
        pty.expect_prompt(n, Duration::from_secs(60));
        pty.send("not-the-password\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, text) = pty.finish(Duration::from_secs(60));
    assert!(!status.success(), "{text}");
    assert!(!ran_as_root(&text), "{text}");
}

/// The spawn-to-prompt time of `sudo` over `stack_text`, the best of `runs`.
fn sudo_prompt_time(user: &str, stack_text: &str, runs: usize) -> Duration {
    let _etc = sudo_setup(user, stack_text);
    (0..runs)
        .map(|_| {
            let pty = sudo_as(user);
            let t = pty.expect_prompt(1, Duration::from_secs(10));
            drop(pty);
            t
        })
        .min()
        .unwrap()
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_with_the_daemon_down_prompts_at_once() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-down", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("authnetd.sock");
    let with_module = stack(&format!("socket={} timeout=30", absent.display()));
    // Warm the page cache first, then the best of five of each.
    sudo_prompt_time(&user.name, &with_module, 1);
    let baseline = sudo_prompt_time(&user.name, &stack_without_module(), 5);
    let down = sudo_prompt_time(&user.name, &with_module, 5);
    let module_share = down.saturating_sub(baseline);
    eprintln!(
        "sudo spawn-to-prompt: {down:?} with pam_authnet (daemon down), {baseline:?} without; \
         the module's share {module_share:?}"
    );
    // The 50 ms target is the module's share; the bound leaves room for a loaded 2-core CI.
    assert!(down < Duration::from_secs(1), "{down:?}");
    assert!(
        module_share < Duration::from_millis(250),
        "{module_share:?}"
    );
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_concurrent_prompt_is_ended_by_the_face() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-conc", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    // 10 fps: the clip takes about 3 s, so the prompt is up long before the verdict.
    let d = daemon_at(tmp.path(), 10, &user.name, &data::word("F02", 1, 9));
    let _etc = sudo_setup(&user.name, &stack(&module_args(&d, "prompt=concurrent")));
    let pty = sudo_as(&user.name);
    let prompt_at = pty.expect_prompt(1, Duration::from_secs(10));
    // Nobody types: the face match has to end the prompt.
    let (status, text) = pty.finish(Duration::from_secs(60));
    eprintln!("--- transcript: sudo, prompt=concurrent, genuine face ---\n{text}\n---");
    eprintln!("prompt shown {prompt_at:?} after the spawn");
    assert!(status.success(), "{status}: {text}\n{}", d.log_text());
    assert!(ran_as_root(&text), "{text}");
    assert!(prompt_at < Duration::from_secs(2), "{prompt_at:?}");
    assert!(d.log_text().contains("decision=accept"), "{}", d.log_text());
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn sudo_concurrent_typed_password_goes_to_pam_unix() {
    require_tools!();
    let user = TestUser::create("anrc-sudo-type", "/usr/sbin/nologin");
    let tmp = tempfile::tempdir().unwrap();
    // 2 fps: the scan would take seconds; the password is typed at once.
    let d = daemon_at(tmp.path(), 2, &user.name, &data::word("F02", 5, 9));
    let _etc = sudo_setup(&user.name, &stack(&module_args(&d, "prompt=concurrent")));
    let mut pty = sudo_as(&user.name);
    pty.expect_prompt(1, Duration::from_secs(10));
    let typed = Instant::now();
    pty.send(&format!("{PASSWORD}\n"));
    let (status, text) = pty.finish(Duration::from_secs(30));
    let took = typed.elapsed();
    assert!(status.success(), "{status}: {text}");
    assert!(ran_as_root(&text), "{text}");
    // One prompt only: pam_unix used PAM_AUTHTOK (try_first_pass) instead of asking again.
    assert_eq!(prompts(&text), 1, "{text}");
    // The scan was abandoned, not waited for.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn su_genuine_face_and_impostor_then_password() {
    require_tools!();
    let user = TestUser::create("anrc-su", "/bin/sh");
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &user.name, &data::word("F02", 1, 9));
    // Root is asked too: the service has no pam_rootok.
    let services = wrapper_services(tmp.path(), "su", &stack(&module_args(&d, "")));
    // Every su run below, and the shell it starts, runs under pam_wrapper.
    let _wrapper = authnet_tests::pam_wrapper_lock();
    let su = wrapped(
        &services,
        &format!("/bin/su -c 'echo su-ran-as-$(id -un)' {}", user.name),
    );
    let want = format!("su-ran-as-{}", user.name);

    let (status, text) = Pty::spawn(&su).finish(Duration::from_secs(60));
    assert!(status.success(), "{status}: {text}\n{}", d.log_text());
    assert!(text.contains(&want), "{text}");
    assert!(prompts(&text) == 0, "{text}");

    d.camera.play(&data::word("F02", 5, 9));
    let mut pty = Pty::spawn(&su);
    pty.expect_prompt(1, Duration::from_secs(60));
    pty.send(&format!("{PASSWORD}\n"));
    let (status, text) = pty.finish(Duration::from_secs(30));
    assert!(status.success(), "{status}: {text}");
    assert!(text.contains(&want), "{text}");
    assert!(d.log_text().contains("decision=reject"));
}

#[cfg_attr(
    authnet_missing_tools,
    ignore = "needs a missing tool: see the build warning"
)]
#[test]
fn login_genuine_face_and_impostor_then_password() {
    require_tools!();
    let user = TestUser::create("anrc-login", "/bin/sh");
    let tmp = tempfile::tempdir().unwrap();
    let d = daemon(tmp.path(), &user.name, &data::word("F02", 1, 9));
    let services = wrapper_services(tmp.path(), "login", &stack(&module_args(&d, "")));
    // Every login run below, and the shell it starts, runs under pam_wrapper.
    let _wrapper = authnet_tests::pam_wrapper_lock();
    let login = wrapped(&services, &format!("/bin/login {}", user.name));

    // The shell after a login proves it: it evaluates what is typed into it.
    let mut pty = Pty::spawn(&login);
    pty.expect("$ ", Duration::from_secs(60));
    pty.send("echo login-$((6*7)); exit\n");
    pty.expect("login-42", Duration::from_secs(10));
    let (_, text) = pty.finish(Duration::from_secs(30));
    assert!(prompts(&text) == 0, "{text}");

    d.camera.play(&data::word("F02", 5, 9));
    let mut pty = Pty::spawn(&login);
    pty.expect_prompt(1, Duration::from_secs(60));
    pty.send(&format!("{PASSWORD}\n"));
    pty.expect("$ ", Duration::from_secs(30));
    pty.send("echo login-$((6*7)); exit\n");
    pty.expect("login-42", Duration::from_secs(10));
    pty.finish(Duration::from_secs(30));
    assert!(d.log_text().contains("decision=reject"));
}
