//! A V4L2 camera as a [`FrameSource`], via the `v4l` crate.
//!
//! - The device may be named by a stable symlink (`/dev/v4l/by-id/usb-…-video-index0`):
//!   [`resolve_device`] follows it and checks it ends at a character device; errors name both
//!   the configured path and the node it resolves to.
//! - The pixel format is chosen among those the driver lists ([`choose_pixel`]): MJPEG, YUYV,
//!   then the infrared formats `GREY` (Y8) and `Y16`, all decoded to RGB
//!   ([`super::convert`]).
//! - A source is opened for one clip and closed when dropped, so nothing survives a
//!   suspend/resume or an unplug: the next attempt opens the device afresh.
//! - Failures keep their `errno`; [`classify`] sorts them (missing, busy, no permission, not a
//!   device, stalled) so the daemon answers at once with the right reason.
//!
//! This machine has no camera and no V4L2 in its kernel, so the conversions, the format
//! choice, the path resolution and the error classification are unit tested; opening a missing
//! device is tested to fail cleanly.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::buffer::Type;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::convert::{grey_to_rgb, mjpeg_to_rgb, unpad_rows, y16le_to_rgb, yuyv_to_rgb};
use super::{CaptureError, Frame, FrameSource};

/// Longest wait for one frame from a streaming camera. A camera that stops delivering (a
/// firmware hang after resume, a device that vanished) fails the clip with `TimedOut` instead
/// of holding the attempt until its overall timeout. Two seconds is many frame periods even at
/// the 5 fps some IR sensors run at.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

/// Camera settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Config {
    /// Device node, e.g. `/dev/video0`, or a symlink to one (`/dev/v4l/by-id/…`).
    pub device: String,
    /// Requested width (the driver may pick the nearest it supports).
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested frames per second.
    pub fps: u32,
}

/// Pixel formats we can decode, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixel {
    /// Motion JPEG (most USB colour cameras at 640x480 and above).
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
    /// 8-bit grey (IR cameras).
    Grey,
    /// 16-bit little-endian grey (IR cameras).
    Y16,
}

impl Pixel {
    /// Preference order when a driver offers several.
    pub const PREFERENCE: [Self; 4] = [Self::Mjpeg, Self::Yuyv, Self::Grey, Self::Y16];

    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Mjpeg => *b"MJPG",
            Self::Yuyv => *b"YUYV",
            Self::Grey => *b"GREY",
            Self::Y16 => *b"Y16 ",
        }
    }

    /// The format for a fourcc, if decodable. `Y8  ` is accepted as a name of `GREY`.
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        match &code {
            b"MJPG" => Some(Self::Mjpeg),
            b"YUYV" => Some(Self::Yuyv),
            b"GREY" | b"Y8  " => Some(Self::Grey),
            b"Y16 " => Some(Self::Y16),
            _ => None,
        }
    }

    /// Decodes one driver buffer of `width`x`height` with `stride` bytes per row.
    pub fn decode(
        self,
        width: u32,
        height: u32,
        stride: u32,
        data: &[u8],
    ) -> Result<Frame, CaptureError> {
        let packed =
            |bpp: usize| unpad_rows(data, width as usize * bpp, stride as usize, height as usize);
        match self {
            Self::Mjpeg => mjpeg_to_rgb(width, height, data),
            Self::Yuyv => yuyv_to_rgb(width, height, &packed(2)),
            Self::Grey => grey_to_rgb(width, height, &packed(1)),
            Self::Y16 => y16le_to_rgb(width, height, &packed(2)),
        }
    }
}

/// The best decodable format among the fourccs a driver lists, by [`Pixel::PREFERENCE`].
pub fn choose_pixel(offered: &[[u8; 4]]) -> Option<Pixel> {
    Pixel::PREFERENCE
        .into_iter()
        .find(|p| offered.iter().any(|&c| Pixel::from_fourcc(c) == Some(*p)))
}

/// Why a configured camera path does not lead to a camera. Carried inside the
/// [`CaptureError::Camera`] `io::Error`, so [`classify`] can tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Nothing at the path (or a dangling symlink: the camera is unplugged).
    #[error("no such device{}", .link_target.as_ref().map(|t| format!(" (symlink to {}, which does not exist)", t.display())).unwrap_or_default())]
    Missing {
        /// Where the dangling symlink points, if it is one.
        link_target: Option<PathBuf>,
    },
    /// The path resolves to something that is not a character device.
    #[error("resolves to {}, which is not a character device (a V4L2 camera is a /dev/videoN node)", .resolved.display())]
    NotADevice {
        /// The resolved path.
        resolved: PathBuf,
    },
}

/// Follows `configured` (a device node or a symlink such as `/dev/v4l/by-id/…`) to the node
/// it names and checks that node is a character device. The error, inside
/// [`CaptureError::Camera`], names the configured path and what it resolved to.
pub fn resolve_device(configured: &Path) -> Result<PathBuf, CaptureError> {
    let err = |device: String, source| CaptureError::Camera { device, source };
    let shown = configured.display().to_string();
    let real = match std::fs::canonicalize(configured) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let link_target = std::fs::read_link(configured).ok();
            return Err(err(
                shown,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    DeviceError::Missing { link_target },
                ),
            ));
        }
        Err(e) => return Err(err(shown, e)),
    };
    let md = std::fs::metadata(&real).map_err(|e| err(describe_path(configured, &real), e))?;
    if !md.file_type().is_char_device() {
        return Err(err(
            shown,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                DeviceError::NotADevice { resolved: real },
            ),
        ));
    }
    Ok(real)
}

/// `configured` alone, or `configured (-> resolved)` when a symlink was followed.
fn describe_path(configured: &Path, resolved: &Path) -> String {
    if configured == resolved {
        configured.display().to_string()
    } else {
        format!("{} (-> {})", configured.display(), resolved.display())
    }
}

/// What kind of camera failure an error is, for the answer to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraFault {
    /// No device at the path, or it went away (`ENOENT`, `ENODEV`, `ENXIO`).
    Missing,
    /// Another program holds the camera (`EBUSY`).
    Busy,
    /// The daemon may not open it (`EACCES`, `EPERM`).
    Denied,
    /// The path is not a character device.
    NotADevice,
    /// The camera stopped delivering frames ([`FRAME_TIMEOUT`]).
    Stalled,
    /// Anything else (an unsupported format, a decoding error, another errno).
    Other,
}

// Linux errno values (asm-generic/errno-base.h); io::ErrorKind has no stable kind for all of
// them, and this crate takes no libc dependency for five constants.
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ENXIO: i32 = 6;
const EBUSY: i32 = 16;
const ENODEV: i32 = 19;
const EACCES: i32 = 13;

/// Sorts an I/O error from opening or reading a camera.
pub fn classify_io(e: &io::Error) -> CameraFault {
    if let Some(d) = e.get_ref().and_then(|x| x.downcast_ref::<DeviceError>()) {
        return match d {
            DeviceError::Missing { .. } => CameraFault::Missing,
            DeviceError::NotADevice { .. } => CameraFault::NotADevice,
        };
    }
    match e.raw_os_error() {
        Some(ENOENT | ENODEV | ENXIO) => CameraFault::Missing,
        Some(EBUSY) => CameraFault::Busy,
        Some(EACCES | EPERM) => CameraFault::Denied,
        _ if e.kind() == io::ErrorKind::TimedOut => CameraFault::Stalled,
        _ if e.kind() == io::ErrorKind::NotFound => CameraFault::Missing,
        _ if e.kind() == io::ErrorKind::PermissionDenied => CameraFault::Denied,
        _ => CameraFault::Other,
    }
}

/// Sorts any capture error; only [`CaptureError::Camera`] carries a device fault.
pub fn classify(e: &CaptureError) -> CameraFault {
    match e {
        CaptureError::Camera { source, .. } => classify_io(source),
        _ => CameraFault::Other,
    }
}

/// An open, streaming camera. Dropping it stops streaming and closes the device.
pub struct V4l2Source {
    /// The configured path and, when it is a symlink, the node it resolved to.
    name: String,
    // Declared before `_dev`, so it is dropped (streaming stopped, buffers unmapped) first.
    stream: MmapStream<'static>,
    width: u32,
    height: u32,
    stride: u32,
    pixel: Pixel,
    // Keeps the device handle open for as long as the stream runs.
    _dev: Device,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "V4l2Source({} {}x{} {:?})",
            self.name, self.width, self.height, self.pixel
        )
    }
}

impl V4l2Source {
    /// Resolves the device, opens it, negotiates a format and starts streaming.
    pub fn open(cfg: &V4l2Config) -> Result<Self, CaptureError> {
        let configured = Path::new(&cfg.device);
        let real = resolve_device(configured)?;
        let name = describe_path(configured, &real);
        let cam = |source| CaptureError::Camera {
            device: name.clone(),
            source,
        };
        let dev = Device::with_path(&real).map_err(cam)?;
        let offered: Vec<[u8; 4]> = dev
            .enum_formats()
            .map(|v| v.iter().map(|d| d.fourcc.repr).collect())
            .unwrap_or_default();
        // A driver that cannot list its formats is asked for each in turn.
        let candidates: Vec<Pixel> = match choose_pixel(&offered) {
            Some(p) => vec![p],
            None if offered.is_empty() => Pixel::PREFERENCE.to_vec(),
            None => {
                let names: Vec<String> =
                    offered.iter().map(|c| FourCC::new(c).to_string()).collect();
                return Err(CaptureError::UnsupportedFormat(format!(
                    "{} (the camera {name} offers only {})",
                    names.first().cloned().unwrap_or_default(),
                    names.join(", ")
                )));
            }
        };
        let mut fmt = dev.format().map_err(cam)?;
        fmt.width = cfg.width;
        fmt.height = cfg.height;
        // The driver answers with what it will really deliver, which may differ from the ask.
        let mut chosen = None;
        let mut last = String::new();
        for p in candidates {
            fmt.fourcc = FourCC::new(&p.fourcc());
            let g = dev.set_format(&fmt).map_err(cam)?;
            if let Some(px) = Pixel::from_fourcc(g.fourcc.repr) {
                chosen = Some((g, px));
                break;
            }
            last = g.fourcc.to_string();
        }
        let Some((got, pixel)) = chosen else {
            return Err(CaptureError::UnsupportedFormat(format!(
                "{last} (the camera {name} accepted none of MJPG, YUYV, GREY, Y16)"
            )));
        };
        if cfg.fps > 0 {
            let params = v4l::video::capture::Parameters::with_fps(cfg.fps);
            // Not every driver supports setting the rate; capture still works at its default.
            let _ = dev.set_params(&params);
        }
        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, 4).map_err(cam)?;
        stream.set_timeout(FRAME_TIMEOUT);
        Ok(Self {
            name,
            stream,
            width: got.width,
            height: got.height,
            stride: got.stride,
            pixel,
            _dev: dev,
        })
    }

    /// The negotiated format, for the doctor and the logs.
    pub fn format(&self) -> (Pixel, u32, u32) {
        (self.pixel, self.width, self.height)
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let (buf, meta) = self.stream.next().map_err(|source| CaptureError::Camera {
            device: self.name.clone(),
            source,
        })?;
        let used = (meta.bytesused as usize).min(buf.len());
        let data = if used == 0 { buf } else { &buf[..used] };
        Ok(Some(self.pixel.decode(
            self.width,
            self.height,
            self.stride,
            data,
        )?))
    }

    fn describe(&self) -> String {
        format!("v4l2:{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(device: &str) -> V4l2Config {
        V4l2Config {
            device: device.into(),
            width: 640,
            height: 480,
            fps: 15,
        }
    }

    #[test]
    fn missing_device_is_a_clean_error() {
        let e = V4l2Source::open(&cfg("/dev/authnet-no-such-video")).unwrap_err();
        assert!(matches!(e, CaptureError::Camera { .. }));
        assert_eq!(classify(&e), CameraFault::Missing);
        assert!(e.to_string().contains("/dev/authnet-no-such-video"), "{e}");
    }

    #[test]
    fn format_choice_follows_the_preference() {
        assert_eq!(choose_pixel(&[*b"YUYV", *b"MJPG"]), Some(Pixel::Mjpeg));
        assert_eq!(choose_pixel(&[*b"YUYV"]), Some(Pixel::Yuyv));
        // An IR node: grey only.
        assert_eq!(choose_pixel(&[*b"Y16 ", *b"GREY"]), Some(Pixel::Grey));
        assert_eq!(choose_pixel(&[*b"Y16 "]), Some(Pixel::Y16));
        assert_eq!(choose_pixel(&[*b"Y8  "]), Some(Pixel::Grey));
        assert_eq!(choose_pixel(&[*b"H264", *b"NV12"]), None);
        assert_eq!(choose_pixel(&[]), None);
        for p in Pixel::PREFERENCE {
            assert_eq!(Pixel::from_fourcc(p.fourcc()), Some(p));
        }
    }

    #[test]
    fn decode_handles_stride_for_grey_formats() {
        // 2x2 GREY with rows padded to 4 bytes.
        let f = Pixel::Grey
            .decode(2, 2, 4, &[10, 20, 0, 0, 30, 40, 0, 0])
            .unwrap();
        let luma: Vec<u8> = f.rgb.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(luma, vec![10, 20, 30, 40]);
        // 2x1 Y16, packed (stride = 4 bytes = width * 2).
        let f = Pixel::Y16
            .decode(2, 1, 4, &[0x00, 0x40, 0xFF, 0xFF])
            .unwrap();
        assert_eq!(f.rgb, vec![0x40, 0x40, 0x40, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn a_symlink_to_a_non_device_is_refused_naming_both() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("plain-file");
        std::fs::write(&target, b"x").unwrap();
        let byid = d.path().join("usb-Acme_IR_Camera-video-index0");
        std::os::unix::fs::symlink(&target, &byid).unwrap();
        let e = resolve_device(&byid).unwrap_err();
        assert_eq!(classify(&e), CameraFault::NotADevice);
        let msg = e.to_string();
        assert!(msg.contains("usb-Acme_IR_Camera-video-index0"), "{msg}");
        assert!(msg.contains("plain-file"), "{msg}");
        assert!(msg.contains("not a character device"), "{msg}");
        // The same through open().
        let e = V4l2Source::open(&cfg(byid.to_str().unwrap())).unwrap_err();
        assert_eq!(classify(&e), CameraFault::NotADevice);
    }

    #[test]
    fn a_dangling_by_id_link_is_a_missing_camera() {
        let d = tempfile::tempdir().unwrap();
        let byid = d.path().join("usb-Acme-video-index0");
        std::os::unix::fs::symlink(d.path().join("video9"), &byid).unwrap();
        let e = resolve_device(&byid).unwrap_err();
        assert_eq!(classify(&e), CameraFault::Missing);
        let msg = e.to_string();
        assert!(
            msg.contains("usb-Acme-video-index0") && msg.contains("video9"),
            "{msg}"
        );
    }

    #[test]
    fn a_char_device_resolves_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("by-id-null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert_eq!(resolve_device(&link).unwrap(), Path::new("/dev/null"));
    }

    #[test]
    fn errno_mapping() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify_io(&os(EBUSY)), CameraFault::Busy);
        assert_eq!(classify_io(&os(ENOENT)), CameraFault::Missing);
        assert_eq!(classify_io(&os(ENODEV)), CameraFault::Missing);
        assert_eq!(classify_io(&os(ENXIO)), CameraFault::Missing);
        assert_eq!(classify_io(&os(EACCES)), CameraFault::Denied);
        assert_eq!(classify_io(&os(EPERM)), CameraFault::Denied);
        assert_eq!(
            classify_io(&io::Error::new(io::ErrorKind::TimedOut, "VIDIOC_DQBUF")),
            CameraFault::Stalled
        );
        assert_eq!(classify_io(&os(22)), CameraFault::Other);
        let busy = CaptureError::Camera {
            device: "/dev/video0".into(),
            source: os(EBUSY),
        };
        assert_eq!(classify(&busy), CameraFault::Busy);
        assert_eq!(
            classify(&CaptureError::UnsupportedFormat("H264".into())),
            CameraFault::Other
        );
    }
}
