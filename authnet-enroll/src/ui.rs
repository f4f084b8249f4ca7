//! Terminal output: enrolment progress on stderr (an indicatif bar on a terminal, plain lines
//! otherwise), and the tables and summaries on stdout.

use std::io::IsTerminal;

use authnet_ipc::{EnrollSummary, ModelEntry, Outcome, Response};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shows `progress` and `info` messages as they arrive.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    bar: Option<ProgressBar>,
    stage: String,
    /// Last tenth of the stage printed as a plain line, to keep logs short.
    last_tenth: Option<u32>,
    /// A countdown is being drawn on the current terminal line.
    counting: bool,
}

impl Progress {
    /// A display that draws a bar when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            bar: None,
            stage: String::new(),
            last_tenth: None,
            counting: false,
        }
    }

    /// Shows one interim message.
    pub fn show(&mut self, m: &Response) {
        let step = matches!(m, Response::Info { text } if is_countdown_step(text));
        if self.counting && !step {
            self.end_countdown();
        }
        match m {
            Response::Info { text } if step && self.tty && self.bar.is_none() => {
                // On a terminal the countdown shares one line: "3… 2… 1… go".
                eprint!("{text}\u{2026} ");
                self.counting = true;
                if text == "1" {
                    self.end_countdown();
                }
            }
            Response::Info { text } => match &self.bar {
                Some(b) => b.println(text),
                None => eprintln!("{text}"),
            },
            Response::Progress {
                stage,
                done,
                total,
                text,
            } => self.progress(stage, *done, *total, text),
            _ => {}
        }
    }

    fn end_countdown(&mut self) {
        if std::mem::take(&mut self.counting) {
            eprintln!("go");
        }
        // stderr is unbuffered; flushing is for a redirected stream that is not.
        let _ = std::io::Write::flush(&mut std::io::stderr());
    }

    fn progress(&mut self, stage: &str, done: u32, total: u32, text: &str) {
        // A stage name can repeat with another total (features of the clips, then of the
        // impostor bank): that is a new bar too.
        let new_stage =
            stage != self.stage || self.bar.as_ref().and_then(|b| b.length()) != Some(total.into());
        if new_stage {
            self.finish();
            self.stage = stage.to_owned();
            self.last_tenth = None;
        }
        if self.tty {
            let bar = self.bar.get_or_insert_with(|| {
                let b = ProgressBar::with_draw_target(
                    Some(u64::from(total)),
                    ProgressDrawTarget::stderr(),
                );
                let style =
                    ProgressStyle::with_template("{prefix:>9} [{bar:32}] {pos}/{len} {msg}")
                        .map(|s| s.progress_chars("=> "))
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                b.set_style(style);
                b.set_prefix(stage.to_owned());
                b
            });
            if bar.length() != Some(u64::from(total)) {
                bar.set_length(u64::from(total));
            }
            bar.set_message(text.to_owned());
            bar.set_position(u64::from(done));
        } else {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if self.last_tenth != Some(tenth) {
                self.last_tenth = Some(tenth);
                eprintln!("{stage}: {done}/{total} {text}");
            }
        }
    }

    /// Leaves the last bar drawn in full.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.counting) {
            eprintln!(); // A countdown cut short (the daemon answered with an error).
        }
        if let Some(b) = self.bar.take() {
            b.finish();
            // indicatif leaves the cursor at the end of the finished bar; without a newline the
            // next bar or the summary would be drawn over it.
            eprintln!();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether an `info` text is a step of the daemon's countdown before a recording ("3", "2",
/// "1").
fn is_countdown_step(text: &str) -> bool {
    !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The calibration summary printed after an enrolment.
pub fn summary(user: &str, s: &EnrollSummary) -> String {
    format!(
        "Enrolled {user} from {clips} clips.\n\
         Calibration on held-out clips:\n  \
           validation EER     {eer:.1} %\n  \
           score margin       {margin:+.3} (genuine mean {g:.3}, impostor mean {i:.3})\n  \
           threshold policy   {policy}\n  \
           threshold          {thr:.3}\n",
        clips = s.clips,
        eer = s.validation_eer * 100.0,
        margin = s.margin,
        g = s.genuine_mean,
        i = s.impostor_mean,
        policy = s.threshold_policy,
        thr = s.threshold,
    )
}

/// The result of `test`: the decision line and, when given, the score.
pub fn test_result(user: &str, outcome: &Outcome, score: Option<f64>) -> String {
    let decision = match outcome {
        Outcome::Accept => "accept".to_owned(),
        Outcome::Reject => "reject".to_owned(),
        Outcome::Unavailable { reason } => format!("unavailable: {}", reason.describe()),
    };
    let mut s = format!("{user}: {decision}\n");
    if let Some(x) = score {
        s.push_str(&format!("score: {x:.4}\n"));
    }
    s
}

/// The `list` table (a header even when empty, so scripts can rely on it).
pub fn table(entries: &[ModelEntry]) -> String {
    let head = ["USER", "CREATED", "BACKBONE", "THRESHOLD POLICY"];
    let rows: Vec<[&str; 4]> = entries
        .iter()
        .map(|e| {
            [
                e.user.as_str(),
                e.created.as_str(),
                e.backbone.as_str(),
                e.threshold_policy.as_str(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(head);
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let e = ModelEntry {
            user: "nobody".into(),
            created: "2025-01-01T00:00:00Z".into(),
            backbone: "mobilefacenet".into(),
            threshold_policy: "fmr".into(),
        };
        let t = table(&[e]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("USER    CREATED"), "{t}");
        assert!(lines[1].starts_with("nobody  2025-01-01T00:00:00Z  mobilefacenet  fmr"));
        assert_eq!(table(&[]).lines().count(), 1);
    }

    #[test]
    fn countdown_steps_are_short_numbers() {
        for t in ["3", "2", "1", "10"] {
            assert!(is_countdown_step(t), "{t}");
        }
        for t in ["", "Mouth your password now (1/7)", "100", "1."] {
            assert!(!is_countdown_step(t), "{t}");
        }
    }

    #[test]
    fn test_result_shows_score_only_when_given() {
        assert_eq!(test_result("u", &Outcome::Reject, None), "u: reject\n");
        assert_eq!(
            test_result("u", &Outcome::Accept, Some(0.5)),
            "u: accept\nscore: 0.5000\n"
        );
    }
}
