//! Camera pixel formats to RGB, and RGB frames to JPEG. Pure functions, so they are
//! unit-tested without a camera.
//!
//! Formats: packed YUYV 4:2:2, MJPEG, and the single-channel formats of infrared cameras,
//! `GREY` (8-bit luma) and `Y16` (16-bit little-endian luma, MSB-aligned as V4L2 specifies,
//! so its high byte is the 8-bit value). Grey frames are copied into all three channels.

use super::{CaptureError, Frame};

/// Packed YUYV 4:2:2 (`Y0 U Y1 V` per two pixels, BT.601 limited range) to RGB.
pub fn yuyv_to_rgb(width: u32, height: u32, yuyv: &[u8]) -> Result<Frame, CaptureError> {
    if width == 0 || height == 0 || width % 2 != 0 {
        return Err(CaptureError::BadSize { width, height });
    }
    let need = width as usize * height as usize * 2;
    if yuyv.len() < need {
        return Err(CaptureError::BufferLength {
            expected: need,
            got: yuyv.len(),
        });
    }
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for q in yuyv[..need].chunks_exact(4) {
        let (y0, u, y1, v) = (q[0], q[1], q[2], q[3]);
        rgb.extend_from_slice(&ycbcr_to_rgb(y0, u, v));
        rgb.extend_from_slice(&ycbcr_to_rgb(y1, u, v));
    }
    Frame::new(width, height, rgb)
}

/// One BT.601 limited-range Y'CbCr sample to RGB, in integer arithmetic.
pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = cb as i32 - 128;
    let e = cr as i32 - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

/// An MJPEG camera frame (a baseline JPEG) to RGB; the size must match the negotiated format.
pub fn mjpeg_to_rgb(width: u32, height: u32, jpeg: &[u8]) -> Result<Frame, CaptureError> {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .map_err(CaptureError::CameraDecode)?
        .to_rgb8();
    let (w, h) = img.dimensions();
    if (w, h) != (width, height) {
        return Err(CaptureError::BadSize {
            width: w,
            height: h,
        });
    }
    Frame::new(w, h, img.into_raw())
}

/// 8-bit greyscale (V4L2 `GREY`, also called Y8) to RGB: each luma byte copied to R, G and B.
pub fn grey_to_rgb(width: u32, height: u32, grey: &[u8]) -> Result<Frame, CaptureError> {
    let need = pixels(width, height)?;
    if grey.len() < need {
        return Err(CaptureError::BufferLength {
            expected: need,
            got: grey.len(),
        });
    }
    let mut rgb = Vec::with_capacity(need * 3);
    for &y in &grey[..need] {
        rgb.extend_from_slice(&[y, y, y]);
    }
    Frame::new(width, height, rgb)
}

/// 16-bit little-endian greyscale (V4L2 `Y16`) to RGB. V4L2 puts the significant bits at the
/// top (a 10-bit sensor pads its low 6 bits with zeros), so the 8-bit value is `v >> 8`.
pub fn y16le_to_rgb(width: u32, height: u32, y16: &[u8]) -> Result<Frame, CaptureError> {
    let need = pixels(width, height)?;
    if y16.len() < need * 2 {
        return Err(CaptureError::BufferLength {
            expected: need * 2,
            got: y16.len(),
        });
    }
    let mut rgb = Vec::with_capacity(need * 3);
    for px in y16[..need * 2].chunks_exact(2) {
        let y = (u16::from_le_bytes([px[0], px[1]]) >> 8) as u8;
        rgb.extend_from_slice(&[y, y, y]);
    }
    Frame::new(width, height, rgb)
}

/// Drops the padding at the end of each row of a driver buffer: `stride` bytes per row, of
/// which the first `row_bytes` are pixels. A packed buffer (`stride <= row_bytes`) is
/// returned as is.
pub fn unpad_rows(data: &[u8], row_bytes: usize, stride: usize, height: usize) -> Vec<u8> {
    if stride <= row_bytes {
        return data.to_vec();
    }
    data.chunks(stride)
        .take(height)
        .flat_map(|row| &row[..row.len().min(row_bytes)])
        .copied()
        .collect()
}

/// An RGB frame as a baseline JPEG (`quality` 1–100), e.g. for a snapshot file.
pub fn frame_to_jpeg(frame: &Frame, quality: u8) -> Result<Vec<u8>, CaptureError> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    image::ImageEncoder::write_image(
        enc,
        &frame.rgb,
        frame.width,
        frame.height,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(CaptureError::CameraDecode)?;
    Ok(out)
}

fn pixels(width: u32, height: u32) -> Result<usize, CaptureError> {
    if width == 0 || height == 0 {
        return Err(CaptureError::BadSize { width, height });
    }
    Ok(width as usize * height as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_colours() {
        // Limited-range black, white and the BT.601 primaries.
        assert_eq!(ycbcr_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(ycbcr_to_rgb(235, 128, 128), [255, 255, 255]);
        let red = ycbcr_to_rgb(81, 90, 240);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
        let green = ycbcr_to_rgb(145, 54, 34);
        assert!(green[1] > 250 && green[0] < 5 && green[2] < 5, "{green:?}");
        let blue = ycbcr_to_rgb(41, 240, 110);
        assert!(blue[2] > 250 && blue[0] < 5 && blue[1] < 5, "{blue:?}");
    }

    #[test]
    fn yuyv_pairs_share_chroma() {
        // Two pixels: dark and bright grey.
        let f = yuyv_to_rgb(2, 1, &[16, 128, 235, 128]).unwrap();
        assert_eq!(f.rgb, vec![0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn yuyv_checks_sizes() {
        assert!(matches!(
            yuyv_to_rgb(2, 2, &[0; 7]),
            Err(CaptureError::BufferLength { .. })
        ));
        assert!(matches!(
            yuyv_to_rgb(3, 1, &[0; 6]),
            Err(CaptureError::BadSize { .. })
        ));
    }

    #[test]
    fn mjpeg_decodes_and_checks_size() {
        let mut buf = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(8, 6, image::Rgb([200, 10, 10]))
            .write_to(&mut buf, image::ImageFormat::Jpeg)
            .unwrap();
        let f = mjpeg_to_rgb(8, 6, buf.get_ref()).unwrap();
        assert_eq!((f.width, f.height), (8, 6));
        assert!(f.rgb[0] > 150 && f.rgb[1] < 60);
        assert!(mjpeg_to_rgb(16, 6, buf.get_ref()).is_err());
        assert!(matches!(
            mjpeg_to_rgb(8, 6, b"not a jpeg"),
            Err(CaptureError::CameraDecode(_))
        ));
    }

    #[test]
    fn grey_is_copied_to_every_channel() {
        let f = grey_to_rgb(3, 1, &[0, 17, 255]).unwrap();
        assert_eq!(f.rgb, vec![0, 0, 0, 17, 17, 17, 255, 255, 255]);
        assert!(matches!(
            grey_to_rgb(2, 2, &[0; 3]),
            Err(CaptureError::BufferLength {
                expected: 4,
                got: 3
            })
        ));
        assert!(matches!(
            grey_to_rgb(0, 2, &[]),
            Err(CaptureError::BadSize { .. })
        ));
    }

    #[test]
    fn y16_is_little_endian_and_keeps_the_high_byte() {
        // 0x0000, 0xFFFF, 0x1234 (bytes 34 12), 0x8000, and a 10-bit sensor's full scale
        // 0x3FF << 6 = 0xFFC0.
        let f = y16le_to_rgb(
            5,
            1,
            &[0x00, 0x00, 0xFF, 0xFF, 0x34, 0x12, 0x00, 0x80, 0xC0, 0xFF],
        )
        .unwrap();
        let luma: Vec<u8> = f.rgb.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(luma, vec![0x00, 0xFF, 0x12, 0x80, 0xFF]);
        assert!(f.rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert!(matches!(
            y16le_to_rgb(2, 1, &[0; 3]),
            Err(CaptureError::BufferLength {
                expected: 4,
                got: 3
            })
        ));
    }

    #[test]
    fn row_padding_is_dropped() {
        // Two rows of 3 pixel bytes, each padded to a stride of 4.
        assert_eq!(
            unpad_rows(&[1, 2, 3, 0, 4, 5, 6, 0], 3, 4, 2),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(unpad_rows(&[1, 2, 3], 3, 3, 1), vec![1, 2, 3]);
        assert_eq!(unpad_rows(&[1, 2, 3], 3, 0, 1), vec![1, 2, 3]);
    }

    #[test]
    fn jpeg_round_trip() {
        let f = Frame::new(8, 8, [90u8, 160, 30].repeat(64)).unwrap();
        let jpeg = frame_to_jpeg(&f, 90).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let back = mjpeg_to_rgb(8, 8, &jpeg).unwrap();
        for (a, b) in back.rgb.iter().zip(&f.rgb) {
            assert!(a.abs_diff(*b) < 12, "{a} vs {b}");
        }
    }
}
