//! `enroll` from recorded clips (`authnet-enroll --from`): features of each utterance
//! directory, [`password::enroll`], then an atomic save of the model.
//!
//! In this version only root may enrol, and only from clips: the daemon reads the directories
//! with its own (root) rights, and a non-root user's own enrolment would need their password
//! checked, which is the enrolment tool's PAM service's job. Live-camera enrolment (`clips`
//! empty) is not implemented yet and is refused as a bad request.

use std::path::PathBuf;

use authnet_core::model::password::{self, EnrollConfig, EnrollInput};
use authnet_ipc::{EnrollSummary, ErrorKind, IpcError, Response};

use crate::server::Conn;
use crate::session::Daemon;

/// Most clips one enrolment may name (bounds work a request can cause).
pub const MAX_CLIPS: usize = 200;

fn paths(v: &[String]) -> Result<Vec<PathBuf>, String> {
    v.iter()
        .map(|s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!("clip path {s:?} is not absolute"))
            }
        })
        .collect()
}

/// Handles `enroll`.
pub fn enroll(
    d: &Daemon,
    conn: &mut Conn,
    user: &str,
    clips: &[String],
    other_word_clips: &[String],
) -> Result<(), IpcError> {
    let Some(acct) = d.authorise_user(conn, user)? else {
        return Ok(());
    };
    if conn.peer.uid != 0 {
        return conn.error(
            ErrorKind::PermissionDenied,
            "enrolment needs root in this version (run authnet-enroll with sudo)",
        );
    }
    if clips.is_empty() {
        return conn.error(
            ErrorKind::BadRequest,
            "live-camera enrolment is not implemented in this version; pass recorded clips",
        );
    }
    if clips.len() + other_word_clips.len() > MAX_CLIPS {
        return conn.error(
            ErrorKind::BadRequest,
            format!("at most {MAX_CLIPS} clips per enrolment"),
        );
    }
    let (pos, neg) = match (paths(clips), paths(other_word_clips)) {
        (Ok(p), Ok(n)) => (p, n),
        (Err(e), _) | (_, Err(e)) => return conn.error(ErrorKind::BadRequest, e),
    };
    let total = pos.len() + neg.len();
    let mut done_before = 0usize;
    let send_progress = |conn: &mut Conn, done: usize| {
        conn.send(&Response::Progress {
            stage: "features".into(),
            done: done as u32,
            total: total as u32,
            text: format!("features of clip {done} of {total}"),
        })
    };
    let positives = match d.extract_dirs(&pos, &mut |i, _| send_progress(conn, i))? {
        Ok(v) => v,
        Err(e) => return conn.error(ErrorKind::BadRequest, e),
    };
    done_before += pos.len();
    let others = match d.extract_dirs(&neg, &mut |i, _| send_progress(conn, done_before + i))? {
        Ok(v) => v,
        Err(e) => return conn.error(ErrorKind::BadRequest, e),
    };
    let cfg = EnrollConfig {
        target_fmr: d.cfg.target_fmr,
        ..EnrollConfig::default()
    };
    let input = EnrollInput {
        positives: &positives,
        other_words: &others,
        bank: d.bank(),
    };
    let mut client_gone = false;
    let mut progress = |stage: &str, done: usize, total: usize| {
        if client_gone {
            return;
        }
        let r = conn.send(&Response::Progress {
            stage: stage.into(),
            done: done as u32,
            total: total as u32,
            text: format!("{stage} {done}/{total}"),
        });
        client_gone = r.is_err();
    };
    let trained = password::enroll(&input, &cfg, &mut progress);
    if client_gone {
        d.log
            .info(&format!("user={user} enrolment abandoned by the client"));
        return Err(IpcError::Closed);
    }
    let (mut model, report) = match trained {
        Ok(t) => t,
        Err(e) => {
            d.log.warn(&format!("user={user} enrolment failed: {e}"));
            return conn.error(ErrorKind::BadRequest, format!("enrolment failed: {e}"));
        }
    };
    model.set_backbone_sha256(d.backbone_sha256());
    let saved = d
        .store
        .ensure_user_dir(&acct.name)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            model
                .save(&d.store.model_path(&acct.name))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = saved {
        d.log
            .error(&format!("user={user} cannot save the model: {e}"));
        return conn.error(ErrorKind::Internal, "cannot save the model");
    }
    let policy = d.cfg.threshold_policy;
    d.log.info(&format!(
        "user={user} enrolled from {} clips ({} other-word), validation_eer={:.4}",
        positives.len(),
        others.len(),
        report.validation_eer
    ));
    conn.send(&Response::Enrolled {
        summary: EnrollSummary {
            validation_eer: report.validation_eer,
            genuine_mean: report.genuine_mean,
            impostor_mean: report.impostor_mean,
            margin: report.margin,
            threshold_policy: policy.name().into(),
            threshold: model.threshold(match policy {
                crate::config::Policy::Fmr => password::ThresholdPolicy::Fmr,
                crate::config::Policy::Eer => password::ThresholdPolicy::Eer,
            }),
            clips: positives.len() as u32,
        },
    })
}
