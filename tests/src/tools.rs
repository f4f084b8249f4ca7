// The external tools the integration tests need, shared by the library (included from
// `lib.rs`) and the build script (included from `build.rs`), so the list is written once.
// `make setup` installs every one of them.

/// Each tool: the Debian package that installs it, and the paths it may have (any one).
pub const TOOLS: &[(&str, &[&str])] = &[
    ("pamtester", &["/usr/bin/pamtester"]),
    (
        "libpam-wrapper",
        &[
            "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so",
            "/usr/lib/aarch64-linux-gnu/libpam_wrapper.so",
            "/usr/lib64/libpam_wrapper.so",
            "/usr/lib/libpam_wrapper.so",
        ],
    ),
    (
        "libpam-wrapper",
        &[
            "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so",
            "/usr/lib/aarch64-linux-gnu/pam_wrapper/pam_matrix.so",
            "/usr/lib64/pam_wrapper/pam_matrix.so",
            "/usr/lib/pam_wrapper/pam_matrix.so",
        ],
    ),
    ("binutils", &["/usr/bin/nm"]),
    ("bsdutils", &["/usr/bin/script"]),
    ("util-linux", &["/usr/bin/setpriv"]),
    ("util-linux", &["/usr/bin/su", "/bin/su"]),
    ("login", &["/bin/login", "/usr/bin/login"]),
    ("passwd", &["/usr/sbin/useradd"]),
    ("passwd", &["/usr/sbin/chpasswd"]),
    ("sudo", &["/usr/bin/sudo"]),
    ("systemd", &["/usr/bin/systemd-socket-activate"]),
];

/// The tools that are missing, as `path (package)`.
pub fn missing_tools() -> Vec<String> {
    TOOLS
        .iter()
        .filter(|(_, paths)| !paths.iter().any(|p| std::path::Path::new(p).is_file()))
        .map(|(package, paths)| format!("{} ({package})", paths[0]))
        .collect()
}
