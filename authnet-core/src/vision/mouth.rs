//! The mouth-region descriptor: what the lips are doing in one frame.
//!
//! The region is resized to [`MOUTH_W`]×[`MOUTH_H`] grayscale and described by
//! - a HOG (8×8-pixel cells, 9 unsigned orientation bins, per-cell L2 normalisation), which
//!   captures lip contours and teeth/tongue edges while ignoring lighting level, and
//! - a [`PATCH_W`]×[`PATCH_H`] intensity patch, zero-mean and unit-norm, which captures how open
//!   the mouth is (the dark oral cavity).
//!
//! Both halves are L2-normalised separately, then concatenated: [`MOUTH_DIM`] values.

use image::{imageops, GrayImage, RgbImage};

/// Width of the normalised mouth image.
pub const MOUTH_W: u32 = 64;
/// Height of the normalised mouth image.
pub const MOUTH_H: u32 = 32;
const CELL: u32 = 8;
const BINS: usize = 9;
/// Width of the intensity patch.
pub const PATCH_W: u32 = 16;
/// Height of the intensity patch.
pub const PATCH_H: u32 = 8;
/// HOG length: (64/8)·(32/8) cells × 9 bins = 288.
pub const HOG_DIM: usize = ((MOUTH_W / CELL) * (MOUTH_H / CELL)) as usize * BINS;
/// Descriptor length: HOG plus the intensity patch (288 + 128 = 416).
pub const MOUTH_DIM: usize = HOG_DIM + (PATCH_W * PATCH_H) as usize;

/// Describes a mouth region (any size; it is resized).
pub fn describe(region: &RgbImage) -> Vec<f32> {
    let gray = imageops::grayscale(region);
    let g = imageops::resize(&gray, MOUTH_W, MOUTH_H, imageops::FilterType::Triangle);
    let mut out = hog(&g);
    let mut patch = intensity_patch(&g);
    crate::features::l2_normalise(&mut out);
    crate::features::l2_normalise(&mut patch);
    out.extend(patch);
    out
}

fn hog(g: &GrayImage) -> Vec<f32> {
    let (w, h) = g.dimensions();
    let px = |x: i64, y: i64| -> f32 {
        let x = x.clamp(0, w as i64 - 1) as u32;
        let y = y.clamp(0, h as i64 - 1) as u32;
        g.get_pixel(x, y)[0] as f32
    };
    let (cw, ch) = (w / CELL, h / CELL);
    let mut hist = vec![0.0f32; (cw * ch) as usize * BINS];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let gx = px(x + 1, y) - px(x - 1, y);
            let gy = px(x, y + 1) - px(x, y - 1);
            let mag = (gx * gx + gy * gy).sqrt();
            if mag == 0.0 {
                continue;
            }
            let mut ang = gy.atan2(gx).to_degrees();
            if ang < 0.0 {
                ang += 180.0;
            }
            // Linear interpolation between the two nearest of 9 bins of 20 degrees.
            let pos = ang / 20.0 - 0.5;
            let b0 = pos.floor();
            let w1 = pos - b0;
            let b0 = (b0 as i64).rem_euclid(BINS as i64) as usize;
            let b1 = (b0 + 1) % BINS;
            let cell = ((y as u32 / CELL) * cw + x as u32 / CELL) as usize * BINS;
            hist[cell + b0] += mag * (1.0 - w1);
            hist[cell + b1] += mag * w1;
        }
    }
    for c in hist.chunks_mut(BINS) {
        let n = c.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-3;
        c.iter_mut().for_each(|v| *v /= n);
    }
    hist
}

fn intensity_patch(g: &GrayImage) -> Vec<f32> {
    let p = imageops::resize(g, PATCH_W, PATCH_H, imageops::FilterType::Triangle);
    let v: Vec<f32> = p.as_raw().iter().map(|&x| x as f32).collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.into_iter().map(|x| x - mean).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mouth(open: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(80, 40, image::Rgb([200, 150, 140]));
        for y in 20 - open.min(19)..20 + open.min(19) {
            for x in 20..60 {
                img.put_pixel(x, y, image::Rgb([40, 10, 10]));
            }
        }
        img
    }

    #[test]
    fn dimension_and_normalisation() {
        let d = describe(&mouth(5));
        assert_eq!(d.len(), MOUTH_DIM);
        let hog_n: f32 = d[..HOG_DIM].iter().map(|x| x * x).sum();
        let patch_n: f32 = d[HOG_DIM..].iter().map(|x| x * x).sum();
        assert!((hog_n - 1.0).abs() < 1e-4 && (patch_n - 1.0).abs() < 1e-4);
    }

    #[test]
    fn open_and_closed_mouths_differ_more_than_same() {
        let a = describe(&mouth(2));
        let a2 = describe(&mouth(2));
        let b = describe(&mouth(12));
        let dist =
            |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f32>();
        assert_eq!(dist(&a, &a2), 0.0);
        assert!(dist(&a, &b) > 0.1);
    }

    #[test]
    fn flat_region_does_not_produce_nan() {
        let d = describe(&RgbImage::from_pixel(10, 10, image::Rgb([0, 0, 0])));
        assert!(d.iter().all(|x| x.is_finite()));
    }
}
