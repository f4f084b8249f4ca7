//! Camera pixel formats to RGB. Pure functions, so they are unit-tested without a camera.

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
}
