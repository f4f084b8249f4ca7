// The external tools the integration tests need, shared by the library (included from
// `lib.rs`) and the build script (included from `build.rs`), so the list is written once.
// `make setup` installs every one of them.

/// Where Debian (and other distributions) put `libpam_wrapper.so` and pam_wrapper's modules,
/// in search order.
pub const PAM_WRAPPER_LIBDIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

/// Each tool: the Debian package that installs it, the directories it may be in (any one, in
/// search order), and its path below them.
pub const TOOLS: &[(&str, &[&str], &str)] = &[
    ("pamtester", &["/usr/bin"], "pamtester"),
    ("libpam-wrapper", PAM_WRAPPER_LIBDIRS, "libpam_wrapper.so"),
    ("libpam-wrapper", PAM_WRAPPER_LIBDIRS, "pam_wrapper/pam_matrix.so"),
    ("binutils", &["/usr/bin"], "nm"),
    ("bsdutils", &["/usr/bin"], "script"),
    ("util-linux", &["/usr/bin"], "setpriv"),
    ("util-linux", &["/usr/bin", "/bin"], "su"),
    ("login", &["/bin", "/usr/bin"], "login"),
    ("passwd", &["/usr/sbin"], "useradd"),
    ("passwd", &["/usr/sbin"], "chpasswd"),
    ("sudo", &["/usr/bin"], "sudo"),
    ("systemd", &["/usr/bin"], "systemd-socket-activate"),
];

/// The paths `file` may have, `dirs` joined with it, in search order.
pub fn candidates(dirs: &[&str], file: &str) -> Vec<std::path::PathBuf> {
    dirs.iter().map(|d| std::path::Path::new(d).join(file)).collect()
}

/// The first of [`candidates`] that exists.
pub fn find(dirs: &[&str], file: &str) -> Option<std::path::PathBuf> {
    candidates(dirs, file).into_iter().find(|p| p.is_file())
}

/// The tools that are missing, as `path (package)`.
pub fn missing_tools() -> Vec<String> {
    TOOLS
        .iter()
        .filter(|(_, dirs, file)| find(dirs, file).is_none())
        .map(|(package, dirs, file)| {
            format!("{} ({package})", candidates(dirs, file)[0].display())
        })
        .collect()
}
