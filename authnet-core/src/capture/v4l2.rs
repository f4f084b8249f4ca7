//! A V4L2 camera as a [`FrameSource`], via the `v4l` crate. Negotiates MJPEG or YUYV at the
//! configured size and frame rate and decodes to RGB ([`super::convert`]).
//!
//! This machine has no camera and no V4L2 in its kernel, so only the pixel conversion is unit
//! tested; opening a missing device is tested to fail cleanly.

use v4l::buffer::Type;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::convert::{mjpeg_to_rgb, yuyv_to_rgb};
use super::{CaptureError, Frame, FrameSource};

/// Camera settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Config {
    /// Device node, e.g. `/dev/video0`.
    pub device: String,
    /// Requested width (the driver may pick the nearest it supports).
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested frames per second.
    pub fps: u32,
}

/// Pixel formats we can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pixel {
    Mjpeg,
    Yuyv,
}

/// An open, streaming camera. Dropping it stops streaming and releases the device.
pub struct V4l2Source {
    cfg: V4l2Config,
    stream: MmapStream<'static>,
    width: u32,
    height: u32,
    pixel: Pixel,
    // Keeps the device handle open for as long as the stream runs.
    _dev: Device,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "V4l2Source({} {}x{} {:?})",
            self.cfg.device, self.width, self.height, self.pixel
        )
    }
}

impl V4l2Source {
    /// Opens the device and starts streaming.
    pub fn open(cfg: &V4l2Config) -> Result<Self, CaptureError> {
        let cam = |source| CaptureError::Camera {
            device: cfg.device.clone(),
            source,
        };
        let dev = Device::with_path(&cfg.device).map_err(cam)?;
        let mut fmt = dev.format().map_err(cam)?;
        fmt.width = cfg.width;
        fmt.height = cfg.height;
        fmt.fourcc = FourCC::new(b"MJPG");
        let mut got = dev.set_format(&fmt).map_err(cam)?;
        if got.fourcc != FourCC::new(b"MJPG") {
            fmt.fourcc = FourCC::new(b"YUYV");
            got = dev.set_format(&fmt).map_err(cam)?;
        }
        let pixel = if got.fourcc == FourCC::new(b"MJPG") {
            Pixel::Mjpeg
        } else if got.fourcc == FourCC::new(b"YUYV") {
            Pixel::Yuyv
        } else {
            return Err(CaptureError::UnsupportedFormat(got.fourcc.to_string()));
        };
        if cfg.fps > 0 {
            let params = v4l::video::capture::Parameters::with_fps(cfg.fps);
            // Not every driver supports setting the rate; capture still works at its default.
            let _ = dev.set_params(&params);
        }
        let stream = MmapStream::with_buffers(&dev, Type::VideoCapture, 4).map_err(cam)?;
        Ok(Self {
            cfg: cfg.clone(),
            stream,
            width: got.width,
            height: got.height,
            pixel,
            _dev: dev,
        })
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let device = self.cfg.device.clone();
        let (buf, meta) = self
            .stream
            .next()
            .map_err(|source| CaptureError::Camera { device, source })?;
        let used = (meta.bytesused as usize).min(buf.len());
        let data = if used == 0 { buf } else { &buf[..used] };
        let frame = match self.pixel {
            Pixel::Mjpeg => mjpeg_to_rgb(self.width, self.height, data)?,
            Pixel::Yuyv => yuyv_to_rgb(self.width, self.height, data)?,
        };
        Ok(Some(frame))
    }

    fn describe(&self) -> String {
        format!("v4l2:{}", self.cfg.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_a_clean_error() {
        let e = V4l2Source::open(&V4l2Config {
            device: "/dev/authnet-no-such-video".into(),
            width: 640,
            height: 480,
            fps: 15,
        })
        .unwrap_err();
        assert!(matches!(e, CaptureError::Camera { .. }));
        assert!(e.to_string().contains("/dev/authnet-no-such-video"));
    }
}
