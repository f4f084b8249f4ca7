//! Errors as one line for a log, shared by the module and the daemon.

/// `e` and its causes, joined with ": ". Every cause appears once, whether an error prints its
/// source in its own message (`"{path}: {source}"`) or only returns it from `source()`
/// (`"I/O error on {path}"`), so no OS error is dropped or printed twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{path}: {source}")]
        struct Shown {
            path: String,
            #[source]
            source: std::io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("I/O error on {path}")]
        struct Hidden {
            path: String,
            #[source]
            source: std::io::Error,
        }
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let shown = Shown {
            path: "/x".into(),
            source: denied(),
        };
        assert_eq!(error_chain(&shown), "/x: permission denied");
        let hidden = Hidden {
            path: "/y".into(),
            source: denied(),
        };
        assert_eq!(error_chain(&hidden), "I/O error on /y: permission denied");
    }
}
