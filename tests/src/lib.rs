//! Helpers shared by the integration tests: the real `authnetd` on a temporary socket and state
//! directory ([`Daemon`]), a recorded-frames camera whose clip can be switched between
//! attempts ([`Camera`]), a protocol client ([`Client`]), MIRACL-VC1 clips ([`data`]) and a
//! user model trained from them ([`trained_model`]).
//!
//! The tests spawn `target/debug/authnetd`; `make test` builds it first
//! (`cargo build --workspace --bins`). Real data is found through [`data::root`], which says
//! clearly when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(unsafe_code)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use authnet_core::features::{FeatureExtractor, PipelineConfig, UtteranceFeatures};
use authnet_core::model::password::{self, EnrollConfig, EnrollInput};
use authnet_core::vision::CropMode;
use authnet_ipc::{read_frame, write_frame, Outcome, Request, Response, PROTOCOL_VERSION};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// ONNX Runtime: `$AUTHNET_ORT_LIB`, else the vendored library (`make setup`).
pub fn ort_lib() -> PathBuf {
    std::env::var_os("AUTHNET_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(authnet_core::features::locate::REPO_ORT))
}

/// The models directory of the repository.
pub fn models_dir() -> PathBuf {
    repo().join("models")
}

/// A built binary of the workspace (`target/debug/NAME`, or `$CARGO_TARGET_DIR/debug/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let p = target.join("debug").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p {name}` (or `make test`, which builds it) first",
        p.display()
    );
    p
}

/// The `pam_authnet` module as built by cargo.
pub fn pam_module() -> PathBuf {
    binary("libpam_authnet.so")
}

/// The external tools the tests need (also read by `build.rs`).
pub mod tools {
    include!("tools.rs");
}

/// MIRACL-VC1 clips.
pub mod data {
    use std::path::PathBuf;

    /// `$AUTHNET_DATA`, else `<repo>/../shared/data/miracl-vc1`. Panics with a clear message
    /// when missing (CI always has it).
    pub fn root() -> PathBuf {
        let p = std::env::var_os("AUTHNET_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| super::repo().join("../shared/data/miracl-vc1"));
        assert!(
            p.join("faces").is_dir(),
            "MIRACL-VC1 data not found at {} (set AUTHNET_DATA; see ../shared/data/README)",
            p.display()
        );
        p
    }

    /// `faces/<speaker>/words/<word>/<instance>` (e.g. `("F02", 1, 8)`).
    pub fn word(speaker: &str, word: u32, instance: u32) -> PathBuf {
        root().join(format!("faces/{speaker}/words/{word:02}/{instance:02}"))
    }
}

/// Positive enrolment clips: F02 word 01, instances 1..=7. Instances 8..=10 are held out.
pub const ENROLL_INSTANCES: std::ops::RangeInclusive<u32> = 1..=7;

/// Features of utterance directories, crop mode `none` (F02 clips are face crops).
pub fn features(dirs: &[PathBuf]) -> Vec<UtteranceFeatures> {
    let pc = PipelineConfig {
        ort_lib: ort_lib(),
        models_dir: models_dir(),
        backbone: "mobilefacenet".into(),
        crop: CropMode::None,
        threads: 1,
        detector: Default::default(),
        layout: Default::default(),
    };
    let mut ex = FeatureExtractor::from_config(&pc).expect("pipeline loads");
    dirs.iter()
        .map(|d| ex.extract_dir(d, None).expect("features extract").0)
        .collect()
}

/// The bytes of a model for F02 mouthing word 01, trained once per test process from seven
/// F02 word-01 clips against F02's other words (instances 1..=3 of words 02..=10), with
/// `authnet_core::model::password::enroll`.
pub fn trained_model() -> &'static [u8] {
    static MODEL: OnceLock<Vec<u8>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let pos: Vec<PathBuf> = ENROLL_INSTANCES.map(|i| data::word("F02", 1, i)).collect();
        let neg: Vec<PathBuf> = (2..=10)
            .flat_map(|w| (1..=3).map(move |i| data::word("F02", w, i)))
            .collect();
        let positives = features(&pos);
        let others = features(&neg);
        let input = EnrollInput {
            positives: &positives,
            other_words: &others,
            other_word_labels: &[],
            bank: None,
        };
        let (mut model, _report) =
            password::enroll(&input, &EnrollConfig::default(), &mut |_, _, _| {}).expect("enrol");
        let manifest =
            authnet_core::vision::Manifest::load(&models_dir(), "mobilefacenet").expect("manifest");
        model.set_backbone_sha256(manifest.embeddings_sha256());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        model.save(&p).expect("save");
        std::fs::read(&p).unwrap()
    })
}

/// `user`'s uid from `/etc/passwd`, if the account exists.
pub fn uid_of(user: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == user).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// [`trained_model`] bound to `user` and its current uid (see
/// `authnet_core::model::file::Owner`), as the daemon writes it at enrolment. An account that
/// does not exist gets the unbound model, which the daemon refuses anyway.
pub fn model_for(user: &str) -> Vec<u8> {
    let Some(uid) = uid_of(user) else {
        return trained_model().to_vec();
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.safetensors");
    std::fs::write(&p, trained_model()).unwrap();
    let manifest =
        authnet_core::vision::Manifest::load(&models_dir(), "mobilefacenet").expect("manifest");
    let expect = authnet_core::model::file::Expect::backbone(
        "mobilefacenet",
        manifest.embeddings_sha256(),
        manifest.output_dim,
    );
    let mut model = password::PasswordModel::load(&p, &expect).expect("trained model loads");
    model.set_owner(authnet_core::model::file::Owner {
        user: user.into(),
        uid,
    });
    model.save(&p).expect("save");
    std::fs::read(&p).unwrap()
}

/// A recorded-frames camera (`dir:` source) whose `current` file selects the clip.
#[derive(Debug)]
pub struct Camera {
    root: PathBuf,
}

impl Camera {
    /// A camera rooted at `root` (created).
    pub fn new(root: &Path) -> Self {
        std::fs::create_dir_all(root).unwrap();
        Self { root: root.into() }
    }

    /// Plays `clip` from the next attempt on (atomic rename of `current`).
    pub fn play(&self, clip: &Path) {
        let tmp = self.root.join(".current.tmp");
        std::fs::write(&tmp, format!("{}\n", clip.display())).unwrap();
        std::fs::rename(&tmp, self.root.join("current")).unwrap();
    }

    /// The `camera.source` value.
    pub fn source(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

/// Writes `n` copies of `frame` into `dir` (a frozen-frame "photo" clip).
pub fn frozen_clip(frame: &Path, n: usize, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ext = frame.extension().unwrap().to_string_lossy().into_owned();
    for i in 1..=n {
        std::fs::copy(frame, dir.join(format!("color_{i:03}.{ext}"))).unwrap();
    }
    dir.into()
}

/// Writes `n` uniform grey `w`×`h` frames into `dir` (a clip without a face).
pub fn blank_clip(n: usize, w: u32, h: u32, grey: u8, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let img = authnet_core::image::RgbImage::from_pixel(w, h, authnet_core::image::Rgb([grey; 3]));
    for i in 1..=n {
        img.save(dir.join(format!("color_{i:03}.png"))).unwrap();
    }
    dir.into()
}

/// A daemon setup before start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Crop mode (`none` for F02 crops, `detect` for full frames).
    pub crop: &'static str,
    /// Camera frame rate (a `dir:` camera plays at this pace).
    pub fps: u32,
    /// `auth_timeout` in seconds.
    pub auth_timeout: f64,
    /// `camera_wait` in seconds.
    pub camera_wait: f64,
    /// Extra TOML appended verbatim (top-level keys before any table).
    pub extra: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            crop: "none",
            fps: 100,
            auth_timeout: 10.0,
            camera_wait: 30.0,
            extra: String::new(),
        }
    }
}

/// A running `authnetd` with its own socket, state directory, camera and log file.
#[derive(Debug)]
pub struct Daemon {
    /// The temporary directory holding everything.
    pub dir: PathBuf,
    /// The socket.
    pub socket: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The camera.
    pub camera: Camera,
    log: PathBuf,
    child: Option<Child>,
    /// Extra environment of the daemon process (see [`Daemon::start_with_env`]).
    env: Vec<(String, String)>,
}

/// Writes the config file for `c` under `dir`.
pub fn write_config(dir: &Path, c: &DaemonConfig, camera: &Camera) -> PathBuf {
    let text = format!(
        "socket = \"{sock}\"\nstate_dir = \"{state}\"\nonnxruntime_lib = \"{ort}\"\n\
         models_dir = \"{models}\"\ncrop = \"{crop}\"\nort_threads = 1\n\
         auth_timeout = {timeout:?}\ncamera_wait = {wait:?}\nabort_if_lid_closed = false\n\
         {extra}\n[camera]\nsource = \"{src}\"\nfps = {fps}\n",
        sock = dir.join("authnetd.sock").display(),
        state = dir.join("state").display(),
        ort = ort_lib().display(),
        models = models_dir().display(),
        crop = c.crop,
        timeout = c.auth_timeout,
        wait = c.camera_wait,
        extra = c.extra,
        src = camera.source(),
        fps = c.fps,
    );
    let p = dir.join("authnetd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

impl Daemon {
    /// Writes a config under `dir` and starts the daemon on it, waiting until it listens.
    pub fn start(dir: &Path, c: &DaemonConfig) -> Self {
        Self::start_with_env(dir, c, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon process (kept for
    /// every [`Daemon::restart`]), e.g. pam_wrapper's.
    pub fn start_with_env(dir: &Path, c: &DaemonConfig, env: &[(&str, &str)]) -> Self {
        let camera = Camera::new(&dir.join("camera"));
        let config = write_config(dir, c, &camera);
        let mut d = Self {
            dir: dir.into(),
            socket: dir.join("authnetd.sock"),
            state: dir.join("state"),
            config,
            camera,
            log: dir.join("authnetd.log"),
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        d.restart();
        d
    }

    /// A [`pam_service`] in the daemon's directory whose module asks this daemon, waiting up
    /// to `timeout` seconds.
    pub fn pam_service(&self, timeout: u64) -> PathBuf {
        pam_service(
            &self.dir,
            &format!("socket={} timeout={timeout}", self.socket.display()),
        )
    }

    /// Starts (again) on the same config, state and socket.
    pub fn restart(&mut self) {
        self.kill();
        // A daemon under pam_wrapper sets it up as it starts: hold the lock until it listens.
        let _wrapper = self
            .env
            .iter()
            .any(|(k, _)| k == "LD_PRELOAD")
            .then(pam_wrapper_lock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(binary("authnetd"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-stderr")
            .arg("--debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("authnetd exited with {st}; log:\n{}", self.log_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "authnetd did not listen within 60 s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Installs the trained F02 word-01 model as `user`'s, bound to `user` and its uid as the
    /// daemon's enrolment would bind it ([`model_for`]).
    pub fn enrol(&self, user: &str) {
        let d = self.state.join(user);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.safetensors"), model_for(user)).unwrap();
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILLs the daemon (no cleanup, as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A connected client that has said hello.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// One authenticate round trip as root: the final outcome.
    pub fn authenticate(&self, user: &str) -> Outcome {
        self.client().authenticate(user)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A protocol client.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub stream: UnixStream,
}

impl Client {
    /// Connects and exchanges hello.
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut c = Self { stream };
        c.send(&Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        });
        match c.recv() {
            Response::Hello { protocol_version } => assert_eq!(protocol_version, PROTOCOL_VERSION),
            o => panic!("expected hello, got {o:?}"),
        }
        c
    }

    /// Sends one request.
    pub fn send(&mut self, r: &Request) {
        write_frame(&mut self.stream, r).unwrap();
    }

    /// Receives one response.
    pub fn recv(&mut self) -> Response {
        read_frame(&mut self.stream).unwrap()
    }

    /// Sends `r` and collects responses up to the final one (skipping `info` and `progress`).
    pub fn call(&mut self, r: &Request) -> (Vec<Response>, Response) {
        self.send(r);
        let mut interim = Vec::new();
        loop {
            match self.recv() {
                m @ (Response::Info { .. } | Response::Progress { .. }) => interim.push(m),
                last => return (interim, last),
            }
        }
    }

    /// `authenticate` for a local session; the outcome (panics on an error response).
    pub fn authenticate(&mut self, user: &str) -> Outcome {
        match self.call(&auth_request(user)).1 {
            Response::Result { outcome } => outcome,
            o => panic!("expected a result, got {o:?}"),
        }
    }
}

/// An `authenticate` request for a local session.
pub fn auth_request(user: &str) -> Request {
    Request::Authenticate {
        user: user.into(),
        service: "authnet-test".into(),
        rhost: None,
        tty: Some("/dev/tty1".into()),
    }
}

/// The directory holding `libpam_wrapper.so`, or why there is none.
fn pam_wrapper_libdir() -> Result<&'static Path, String> {
    tools::PAM_WRAPPER_LIBDIRS
        .iter()
        .map(Path::new)
        .find(|d| d.join("libpam_wrapper.so").is_file())
        .ok_or_else(|| "libpam_wrapper.so is not installed (apt-get install libpam-wrapper)".into())
}

/// `pamtester` on PATH and `libpam_wrapper.so` installed, or why not.
pub fn pam_tools() -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("pamtester").is_file()) {
        return Err("pamtester is not installed (apt-get install pamtester)".into());
    }
    pam_wrapper_libdir().map(|_| ())
}

/// A PAM service `authnet-test` under `dir`: `auth sufficient <module> <args>` then
/// `auth required pam_deny.so`. Returns the service directory.
pub fn pam_service(dir: &Path, args: &str) -> PathBuf {
    let services = dir.join("pam.d");
    std::fs::create_dir_all(&services).unwrap();
    std::fs::write(
        services.join("authnet-test"),
        format!(
            "auth sufficient {} {args}\nauth required pam_deny.so\n",
            pam_module().display()
        ),
    )
    .unwrap();
    services
}

/// `pamtester authnet-test USER authenticate` under pam_wrapper with the services in
/// `services`, as a not-yet-waited child (stdin closed, output captured).
pub fn pamtester(services: &Path, user: &str) -> Command {
    // Through a clean `sh` parent: the module must not see this runner's SSH variables.
    let mut c = without_ssh("pamtester");
    c.args(["authnet-test", user, "authenticate"])
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs [`pamtester`] to completion, under [`pam_wrapper_lock`].
pub fn run_pamtester(services: &Path, user: &str) -> std::process::Output {
    let _wrapper = pam_wrapper_lock();
    pamtester(services, user).output().unwrap()
}

/// Held while a process these tests start under pam_wrapper sets pam_wrapper up: for a
/// short-lived one (pamtester, su, login) until it exits, for a daemon until it listens.
///
/// pam_wrapper 1.1.4 (Debian 12) gives each process a runtime directory by probing
/// `/tmp/pam.0` to `/tmp/pam.z` with `lstat` and then calling `mkdir`, and goes on when that
/// `mkdir` fails. Two processes starting together can take the same directory: the second
/// overwrites the first's copy of the service files, and the first to exit deletes the
/// other's. CI once saw a pamtester lose its service file (`no default config other`) while
/// its neighbour's module asked the wrong test daemon. `cargo test` runs one test binary at a
/// time, so a lock inside this process orders every pam_wrapper start of the suite.
///
/// Not reentrant: take it once, around the whole run.
pub fn pam_wrapper_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that panicked while holding it left nothing half-done that matters here.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a pamtester run authenticated: it exited 0 and said so.
pub fn pam_authenticated(out: &std::process::Output) -> bool {
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("successfully authenticated")
}

/// Returns from the calling test when pamtester or pam_wrapper is missing (through
/// [`require_tool`]: a failure under `AUTHNET_REQUIRE_TOOLS=1`).
#[macro_export]
macro_rules! require_pam_tools {
    () => {
        let Some(()) = $crate::require_tool($crate::pam_tools()) else {
            return;
        };
    };
}

/// Sends `req` to the daemon through the `authnet-client` binary running as uid/gid 65534
/// (`nobody`), and returns the final response.
pub fn as_nobody(d: &Daemon, req: &Request) -> Response {
    let out = client_as(d, NOBODY, NOBODY, req);
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// The uid and gid of `nobody`.
pub const NOBODY: u32 = 65534;

/// Runs `cmd` as uid/gid 65534 (`nobody`) with `stdin` piped in and its output captured.
pub fn output_as_nobody(cmd: &mut Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts that `r` is an error of `kind` whose message contains `needle` (`""`: any message).
pub fn assert_error(r: &Response, kind: authnet_ipc::ErrorKind, needle: &str) {
    match r {
        Response::Error { kind: k, message } => {
            assert_eq!(*k, kind, "{message}");
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
        o => panic!("expected a {kind:?} error, got {o:?}"),
    }
}

/// `libpam_wrapper.so` and pam_wrapper's `pam_matrix.so`, or why not.
pub fn pam_matrix() -> Result<PathBuf, String> {
    pam_wrapper_libdir()?;
    tools::find(tools::PAM_WRAPPER_LIBDIRS, "pam_wrapper/pam_matrix.so")
        .ok_or_else(|| "pam_matrix.so is not installed (apt-get install libpam-wrapper)".into())
}

/// A pam_wrapper service directory under `dir` whose `service` checks passwords with
/// `pam_matrix` against `users` (`(name, password)` pairs), for both `auth` and `account`.
/// Returns the environment that makes a process (the daemon) use it.
pub fn pam_matrix_env(dir: &Path, service: &str, users: &[(&str, &str)]) -> Vec<(String, String)> {
    let matrix = pam_matrix().unwrap();
    let services = dir.join("pam-matrix.d");
    std::fs::create_dir_all(&services).unwrap();
    let passdb = dir.join("passdb");
    let db: String = users
        .iter()
        .map(|(u, p)| format!("{u}:{p}:{service}\n"))
        .collect();
    std::fs::write(&passdb, db).unwrap();
    std::fs::write(
        services.join(service),
        format!(
            "auth required {m} passdb={db}\naccount required {m} passdb={db}\n",
            m = matrix.display(),
            db = passdb.display()
        ),
    )
    .unwrap();
    vec![
        ("LD_PRELOAD".into(), "libpam_wrapper.so".into()),
        ("PAM_WRAPPER".into(), "1".into()),
        (
            "PAM_WRAPPER_SERVICE_DIR".into(),
            services.display().to_string(),
        ),
    ]
}

/// `/proc/<pid>/sessionid` of a process without an audit session.
pub const NO_AUDIT_SESSION: &str = "4294967295";

/// Runs `program args` (with `envs`) as the first process of a fresh audit session, whose
/// logind session file `<sessions>/<id>` holds `session` (e.g. `"REMOTE=1\nSEAT=\n"`): a shell
/// writes `/proc/self/loginuid` (which makes the kernel assign a new session id; needs root),
/// waits until the file is written, then execs the program, which keeps the pid and session.
/// Returns its output.
pub fn run_in_session(
    sessions: &Path,
    session: &str,
    program: &Path,
    args: &[String],
    envs: &[(String, String)],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("echo 0 > /proc/self/loginuid && read _go && exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .env_remove("SSH_TTY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    let id = loop {
        let s = std::fs::read_to_string(format!("/proc/{pid}/sessionid")).unwrap_or_default();
        let s = s.trim().to_string();
        if !s.is_empty() && s != NO_AUDIT_SESSION {
            break s;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "could not start an audit session (root with CAP_AUDIT_CONTROL is needed): {st}"
            );
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no audit session id");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::fs::create_dir_all(sessions).unwrap();
    std::fs::write(sessions.join(&id), session).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait_with_output().unwrap()
}

/// The final response `authnet-client` printed (its last JSON line).
pub fn last_response(out: &std::process::Output) -> Response {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_else(|| {
        panic!(
            "no response; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap()
}

/// Every response `authnet-client` printed, in order.
pub fn responses(out: &std::process::Output) -> Vec<Response> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends `req` through `authnet-client` running as `uid`/`gid`; its output.
pub fn client_as(d: &Daemon, uid: u32, gid: u32, req: &Request) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    Command::new(binary("authnet-client"))
        .arg(&d.socket)
        .arg(serde_json::to_string(req).unwrap())
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap()
}

/// Opens `n` connections to `socket` from a process running as `uid` (a small perl script:
/// perl is part of every Debian base system) and keeps them open until the returned child's
/// stdin is closed. The child prints `held K` once it knows how many of them the daemon kept
/// (the others were answered `busy` and closed).
pub fn hold_connections(socket: &Path, uid: u32, n: usize) -> (Child, usize) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let script = r#"
use IO::Socket::UNIX; use IO::Select;
my ($path, $n) = @ARGV; my @s;
for (1..$n) { my $c = IO::Socket::UNIX->new(Peer => $path) or last; push @s, $c; }
select(undef, undef, undef, 1.0);
my $held = 0;
for my $c (@s) {
  my $sel = IO::Select->new($c);
  if ($sel->can_read(0)) { my $b; my $r = sysread($c, $b, 4096); $held++ unless defined $r; }
  else { $held++; }
}
$| = 1; print "held $held\n"; my $x = <STDIN>;
"#;
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .arg(socket)
        .arg(n.to_string())
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held = line
        .trim()
        .strip_prefix("held ")
        .unwrap_or_else(|| panic!("holder said {line:?}"))
        .parse()
        .unwrap();
    (child, held)
}

/// The variable `.ci/run` sets to 1: a test whose tool is missing then fails instead of
/// being skipped, so a green CI means every test ran.
pub const REQUIRE_TOOLS: &str = "AUTHNET_REQUIRE_TOOLS";

/// Gate for a test that needs an external tool: `check` is `Ok(value)` when the tool is
/// there. When it is not, this panics (fails the test) if `AUTHNET_REQUIRE_TOOLS=1`, and
/// otherwise prints a loud `IGNORED` line naming the tool and returns `None`, on which the
/// test returns at once.
///
/// Such a test also carries `#[cfg_attr(authnet_missing_tools, ignore = "...")]`: the build
/// script sets that cfg when a tool of [`tools::TOOLS`] is missing (and never under
/// `AUTHNET_REQUIRE_TOOLS=1`), so outside CI it shows as *ignored* rather than passing without
/// running. The early return here is only the fallback for a tool outside that list.
///
/// ```no_run
/// #[test]
/// fn a_test_that_needs_pamtester() {
///     let Some(()) = authnet_tests::require_tool(authnet_tests::pam_tools()) else {
///         return;
///     };
///     // ... run pamtester ...
/// }
/// ```
pub fn require_tool<T>(check: Result<T, String>) -> Option<T> {
    match check {
        Ok(v) => Some(v),
        Err(why) if std::env::var(REQUIRE_TOOLS).is_ok_and(|v| v == "1") => {
            panic!("{REQUIRE_TOOLS}=1 and a tool this test needs is missing: {why}")
        }
        Err(why) => {
            eprintln!(
                "IGNORED (did not run): {why}; install it with `make setup`, or set \
                 {REQUIRE_TOOLS}=1 to make this a failure"
            );
            None
        }
    }
}

/// `path` if it is an existing file, or why not (for [`require_tool`]).
pub fn tool_at(path: &str, package: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{path} is not installed (apt-get install {package})"
        ))
    }
}

/// The variables that make `pam_authnet` treat a session as remote (SSH).
pub const SSH_VARIABLES: [&str; 3] = ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"];

/// `program args…` run through an intermediate `sh` with the SSH variables removed.
///
/// `pam_authnet` skips SSH sessions, and it looks for the SSH variables in the PAM client's
/// own environment and in its parent's. Removing them from the child is not enough when the
/// test runner itself runs under SSH (the child's parent would be the runner), so the child
/// gets a clean `sh` as its parent. `; exit $?` keeps `sh` from exec'ing the program in its
/// place.
pub fn without_ssh(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "\"$@\"; exit $?", "sh"]).arg(program);
    for v in SSH_VARIABLES {
        c.env_remove(v);
    }
    c
}
