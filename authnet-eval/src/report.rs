//! The markdown report (the paper's Tables 2–4 with our figures beside them) and the PNG plots.

use std::path::Path;

use anyhow::Context;
use authnet_core::image::{Rgb, RgbImage};

use crate::run::View;

/// The paper's reported figures (AuthNet, AAAI 2021 student abstract, MIRACL-VC1).
const PAPER: &[(&str, f64)] = &[
    ("accuracy", 0.981),
    ("eer", 0.023),
    ("auc", 0.990),
    ("same_person_different_word", 0.942),
    ("different_person_same_word", 0.989),
    ("different_person_different_word", 0.973),
];

fn paper(key: &str) -> String {
    PAPER
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| format!("{v:.3}"))
        .unwrap_or_else(|| "–".into())
}

fn num(v: &serde_json::Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .map(|x| format!("{x:.3}"))
        .unwrap_or_else(|| "–".into())
}

/// Renders the markdown report.
pub fn markdown(view: &View) -> String {
    let j = &view.json;
    let mut s = String::new();
    s.push_str(&format!(
        "# AuthNet evaluation: {} modality, backbone {}, seed {}{}\n\n",
        j["modality"].as_str().unwrap_or("?"),
        j["backbone"].as_str().unwrap_or("?"),
        j["seed"],
        if j["paper_split"].as_bool() == Some(true) {
            ", paper's leaky split"
        } else {
            ", split before oversampling"
        }
    ));
    s.push_str(&format!(
        "{} targets, {} genuine and {} impostor trials; word model `{}`; threshold policy `{}` (chosen on enrolment-side validation only).\n\n",
        j["targets"], j["genuine_trials"], j["impostor_trials"], j["word_model"].as_str().unwrap_or("?"), j["threshold_policy"].as_str().unwrap_or("?")
    ));
    s.push_str("## Table 2: overall\n\n| metric | paper | ours |\n|---|---|---|\n");
    for k in ["accuracy", "eer", "auc"] {
        s.push_str(&format!("| {k} | {} | {} |\n", paper(k), num(j, &[k])));
    }
    for k in ["sensitivity", "specificity", "far", "frr"] {
        s.push_str(&format!("| {k} | – | {} |\n", num(j, &[k])));
    }
    s.push_str("\n## Table 3: specificity by impostor type\n\n| impostor | paper | ours |\n|---|---|---|\n");
    for k in [
        "same_person_different_word",
        "different_person_same_word",
        "different_person_different_word",
    ] {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            k.replace('_', " "),
            paper(k),
            num(j, &["specificity_by_impostor", k])
        ));
    }
    s.push_str(&format!(
        "| frozen frame (photo attack), accept rate | – | {} |\n",
        num(j, &["photo_attack_accept_rate"])
    ));
    s.push_str("\n## Table 4: baselines and cost\n\n| system | EER | AUC |\n|---|---|---|\n");
    s.push_str(&format!(
        "| AuthNet (paper) | {} | {} |\n",
        paper("eer"),
        paper("auc")
    ));
    s.push_str(&format!(
        "| ours, fused | {} | {} |\n",
        num(j, &["eer"]),
        num(j, &["auc"])
    ));
    s.push_str(&format!(
        "| face only (mean-embedding cosine) | {} | {} |\n",
        num(j, &["face_only_baseline", "eer"]),
        num(j, &["face_only_baseline", "auc"])
    ));
    s.push_str(&format!(
        "| word model only | {} | {} |\n",
        num(j, &["motion_only", "eer"]),
        num(j, &["motion_only", "auc"])
    ));
    s.push_str(&format!(
        "\nTraining {} s per target (paper: 154 s); scoring {} ms per sequence (paper: about 2 s).\n",
        num(j, &["train_seconds_mean"]),
        num(j, &["score_ms_mean"])
    ));
    s
}

const W: u32 = 400;

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1) * 2;
    for k in 0..=n {
        let t = k as f64 / n as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0i64, 0i64), (1, 0), (0, 1)] {
            let (px, py) = (x as i64 + dx, y as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

/// Writes `roc.png` (ROC with the EER point marked and the chance diagonal; FMR on x, TMR on
/// y, 40 px margins) and `confusion.png` (2x2 cells, darker = larger share of its row:
/// genuine accepted/rejected on top, impostors accepted/rejected below). The PNGs carry no text;
/// the markdown report holds the numbers.
pub fn plots(
    dir: &Path,
    genuine: &[f64],
    impostor: &[f64],
    conf: &[usize; 4],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let roc = authnet_core::metrics::roc(genuine, impostor)?;
    let eer = authnet_core::metrics::eer(genuine, impostor)?;
    let m = 40.0;
    let side = W as f64 - 2.0 * m;
    let mut img = RgbImage::from_pixel(W, W, Rgb([255, 255, 255]));
    let to = |fmr: f64, tmr: f64| (m + fmr * side, m + (1.0 - tmr) * side);
    let grey = Rgb([180, 180, 180]);
    line(&mut img, to(0.0, 0.0), to(1.0, 0.0), Rgb([0, 0, 0]));
    line(&mut img, to(0.0, 0.0), to(0.0, 1.0), Rgb([0, 0, 0]));
    line(&mut img, to(0.0, 0.0), to(1.0, 1.0), grey);
    for w in roc.windows(2) {
        line(
            &mut img,
            to(w[0].fmr, w[0].tmr),
            to(w[1].fmr, w[1].tmr),
            Rgb([20, 60, 200]),
        );
    }
    let (ex, ey) = to(eer.eer, 1.0 - eer.eer);
    for d in -5i64..=5 {
        line(
            &mut img,
            (ex - 5.0, ey + d as f64),
            (ex + 5.0, ey + d as f64),
            Rgb([220, 30, 30]),
        );
    }
    img.save(dir.join("roc.png")).context("writing roc.png")?;

    let [tp, fn_, tn, fp] = *conf;
    let mut c = RgbImage::from_pixel(W, W, Rgb([255, 255, 255]));
    let cells = [
        (0, 0, tp, tp + fn_),
        (1, 0, fn_, tp + fn_),
        (0, 1, fp, fp + tn),
        (1, 1, tn, fp + tn),
    ];
    for (cx, cy, v, tot) in cells {
        let share = v as f64 / tot.max(1) as f64;
        let shade = (255.0 * (1.0 - share)) as u8;
        for y in 0..(W / 2 - 4) {
            for x in 0..(W / 2 - 4) {
                c.put_pixel(
                    cx * W / 2 + 2 + x,
                    cy * W / 2 + 2 + y,
                    Rgb([shade, shade, 255]),
                );
            }
        }
    }
    c.save(dir.join("confusion.png"))
        .context("writing confusion.png")?;
    Ok(())
}

/// Writes `heatmap.png`: one row per (speaker, word), one column per timestep, darker = larger
/// cosine difference from the first clip (scaled to the largest value). See `run::heat_rows`.
pub fn heatmap(dir: &Path, rows: &[Vec<f64>]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    if rows.is_empty() || cols == 0 {
        return Ok(());
    }
    let max = rows.iter().flatten().copied().fold(1e-9, f64::max);
    let (cw, ch) = (16u32, 6u32);
    let mut img = RgbImage::from_pixel(
        cols as u32 * cw,
        rows.len() as u32 * ch,
        Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let shade = (255.0 * (1.0 - (v / max).clamp(0.0, 1.0))) as u8;
            for y in 0..ch {
                for x in 0..cw {
                    img.put_pixel(
                        c as u32 * cw + x,
                        r as u32 * ch + y,
                        Rgb([255, shade, shade]),
                    );
                }
            }
        }
    }
    img.save(dir.join("heatmap.png"))
        .context("writing heatmap.png")?;
    Ok(())
}
