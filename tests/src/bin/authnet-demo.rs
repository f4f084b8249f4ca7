//! `authnet-demo`: clip preparation for `make demo` (scripts/demo.sh).
//!
//! * `authnet-demo synth PHOTO OUT` writes **synthetic** clips: faces cut from a group photo
//!   (rustface's `test.png`, the 1927 Solvay conference photo, public domain) whose mouth region
//!   is animated — a jaw drop and a dark mouth opening following a per-word rhythm. Layout:
//!   `OUT/pNN/wK/II/color_NNN.png` (person `NN`, word `K`, instance `II`), all face crops, so
//!   the daemon runs with `crop = "none"`. Word 1 is the demo password.
//! * `authnet-demo crop SRC DST` runs authnet-core's face detector over the frames of `SRC` and
//!   writes the face crops to `DST` (used to turn MIRACL-VC1 full frames into crops).
//!
//! Nothing here is a biometric measurement: the synthetic clips only exercise the pipeline.
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

use authnet_core::capture::{list_frames, read_image};
use authnet_core::image::{imageops, Rgb, RgbImage};
use authnet_core::vision::detect::{crop, DetectorConfig};
use authnet_core::vision::{DetectOutcome, FaceDetector};

/// Side of the synthetic face crops, in pixels (MIRACL-VC1 face crops are of this order).
const SIDE: u32 = 128;
/// People taken from the photo.
const PEOPLE: usize = 8;
/// Words per person (word 1 is the password).
const WORDS: usize = 5;
/// Instances per word.
const INSTANCES: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("synth") if args.len() == 4 => synth(Path::new(&args[2]), Path::new(&args[3])),
        Some("crop") if args.len() == 5 => crop_dir(
            Path::new(&args[2]),
            Path::new(&args[3]),
            Path::new(&args[4]),
        ),
        _ => Err(
            "usage: authnet-demo synth PHOTO OUT | authnet-demo crop DETECTOR_MODEL SRC DST".into(),
        ),
    };
    if let Err(e) = r {
        eprintln!("authnet-demo: {e}");
        std::process::exit(2);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Detects and crops the face of every frame of `src` into `dst` (PNG, same numbering).
fn crop_dir(model: &Path, src: &Path, dst: &Path) -> Res<()> {
    let mut det = FaceDetector::load(model, DetectorConfig::default())?;
    std::fs::create_dir_all(dst)?;
    let mut n = 0;
    for (i, f) in list_frames(src)?.iter().enumerate() {
        let frame = read_image(f)?;
        if let DetectOutcome::Face(b) = det.detect(&frame) {
            let c = imageops::resize(&crop(&frame, b), SIDE, SIDE, imageops::FilterType::Triangle);
            c.save(dst.join(format!("color_{:03}.png", i + 1)))?;
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!("no face found in {}", src.display()).into());
    }
    Ok(())
}

/// The red rectangles rustface drew on its test photo: (x, y, w, h) of each, inside the lines.
fn red_boxes(img: &RgbImage) -> Vec<(u32, u32, u32, u32)> {
    let (w, h) = img.dimensions();
    let red = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        p[0] > 150 && p[1] < 90 && p[2] < 90
    };
    let mut seen = vec![false; (w * h) as usize];
    let mut boxes = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if seen[(y * w + x) as usize] || !red(x, y) {
                continue;
            }
            // Flood fill one rectangle outline.
            let (mut x0, mut y0, mut x1, mut y1) = (x, y, x, y);
            let mut stack = vec![(x, y)];
            seen[(y * w + x) as usize] = true;
            while let Some((cx, cy)) = stack.pop() {
                x0 = x0.min(cx);
                y0 = y0.min(cy);
                x1 = x1.max(cx);
                y1 = y1.max(cy);
                for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                    let (nx, ny) = (cx as i64 + dx, cy as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let (nx, ny) = (nx as u32, ny as u32);
                    if !seen[(ny * w + nx) as usize] && red(nx, ny) {
                        seen[(ny * w + nx) as usize] = true;
                        stack.push((nx, ny));
                    }
                }
            }
            let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
            // One face's square outline; overlapping outlines merge into a larger or oblong
            // component, which is skipped.
            let square = bw.abs_diff(bh) * 5 < bw;
            if (35..=100).contains(&bw) && (35..=100).contains(&bh) && square {
                // Inset past the 1–2 px outline.
                boxes.push((x0 + 4, y0 + 4, bw - 8, bh - 8));
            }
        }
    }
    boxes
}

/// A small deterministic generator (xorshift64*), so every run writes the same clips.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
    /// Uniform in `[-a, a]`.
    fn sym(&mut self, a: f32) -> f32 {
        (self.next() * 2.0 - 1.0) * a
    }
}

/// Mouth opening (0–1) per syllable of each word: the "rhythm" that makes a word.
fn word_pattern(word: usize) -> &'static [f32] {
    match word {
        1 => &[0.9, 0.2, 1.0, 0.5],
        2 => &[0.4, 1.0],
        3 => &[1.0, 0.9, 0.3, 0.3, 0.8],
        4 => &[0.3, 0.6, 0.3],
        _ => &[0.7, 0.0, 0.0, 1.0, 0.6],
    }
}

/// Opening at time `t` in `[0, 1]` of a word: a raised-cosine bump per syllable.
fn opening(pattern: &[f32], t: f32) -> f32 {
    let n = pattern.len() as f32;
    let pos = t * n;
    let i = (pos.floor() as usize).min(pattern.len() - 1);
    let frac = pos - i as f32;
    pattern[i] * (0.5 - 0.5 * (2.0 * std::f32::consts::PI * frac).cos())
}

/// One frame: `face` with the jaw dropped by `open` and a dark mouth opening drawn.
fn animate(face: &RgbImage, open: f32, dx: f32, gain: f32, rng: &mut Rng) -> RgbImage {
    let s = SIDE as f32;
    let (mx, my) = (s * 0.5 + dx, s * 0.76);
    let jaw = open * s * 0.07;
    let mut out = RgbImage::new(SIDE, SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (fx, fy) = (x as f32, y as f32);
            // Below the mouth line the chin moves down by `jaw`, fading out at the bottom.
            let sy = if fy > my {
                let k = ((s - fy) / (s - my)).clamp(0.0, 1.0);
                fy - jaw * k
            } else {
                fy
            };
            let p = face.get_pixel(
                (fx - dx * 0.3).clamp(0.0, s - 1.0) as u32,
                sy.clamp(0.0, s - 1.0) as u32,
            );
            let mut v = p.0.map(|c| f32::from(c) * gain);
            // The opening: a dark ellipse with a soft edge.
            let (rx, ry) = (s * 0.13, s * 0.01 + jaw * 0.6);
            let d = ((fx - mx) / rx).powi(2) + ((fy - my - jaw * 0.4) / ry).powi(2);
            if d < 1.3 && open > 0.05 {
                let a = ((1.3 - d) / 0.3).clamp(0.0, 1.0);
                for c in v.iter_mut() {
                    *c = *c * (1.0 - a) + 22.0 * a;
                }
            }
            let noise = rng.sym(3.0);
            out.put_pixel(x, y, Rgb(v.map(|c| (c + noise).clamp(0.0, 255.0) as u8)));
        }
    }
    out
}

/// Writes every synthetic clip under `out`.
fn synth(photo: &Path, out: &Path) -> Res<()> {
    let img = authnet_core::image::open(photo)?.to_rgb8();
    let mut boxes = red_boxes(&img);
    if boxes.len() < PEOPLE {
        return Err(format!(
            "found {} face boxes in {}, need {PEOPLE}",
            boxes.len(),
            photo.display()
        )
        .into());
    }
    // Largest faces first: they survive the upscaling best.
    boxes.sort_by_key(|b| std::cmp::Reverse(b.2 * b.3));
    let mut rng = Rng(0x5EED_1927);
    for (p, &(x, y, w, h)) in boxes.iter().take(PEOPLE).enumerate() {
        let face = imageops::crop_imm(&img, x, y, w, h).to_image();
        let face = imageops::resize(&face, SIDE, SIDE, imageops::FilterType::CatmullRom);
        for word in 1..=WORDS {
            for inst in 1..=INSTANCES {
                let dir = clip_dir(out, p + 1, word, inst);
                std::fs::create_dir_all(&dir)?;
                // Each instance is said a little differently: length, loudness, head
                // position and light vary.
                let frames = (14.0 + rng.sym(3.0)).round() as usize;
                let amp = 1.0 + rng.sym(0.15);
                let dx = rng.sym(3.0);
                let gain = 1.0 + rng.sym(0.08);
                for f in 0..frames {
                    let t = f as f32 / (frames - 1) as f32;
                    let open = (opening(word_pattern(word), t) * amp).clamp(0.0, 1.0);
                    let fr = animate(&face, open, dx + rng.sym(0.5), gain, &mut rng);
                    fr.save(dir.join(format!("color_{:03}.png", f + 1)))?;
                }
            }
        }
    }
    Ok(())
}

fn clip_dir(out: &Path, person: usize, word: usize, inst: usize) -> PathBuf {
    out.join(format!("p{person:02}/w{word}/{inst:02}"))
}
