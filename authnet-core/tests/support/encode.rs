//! Test support shared by `authnet-core/tests/video.rs` and the daemon tests in `tests/`
//! (included with `#[path]`): writes frames into a video file with FFmpeg's encoders, so
//! videos of real MIRACL-VC1 frames are made at test time and never committed.
#![allow(dead_code)]

use std::path::Path;

use authnet_core::capture::video::ffmpeg;
use authnet_core::image::RgbImage;

use ffmpeg::format::Pixel;

/// How a clip is written.
#[derive(Clone, Copy)]
pub struct Clip {
    /// Encoder name (`mpeg4`, `libx264`, `libvpx`).
    pub encoder: &'static str,
    pub fps: i32,
    /// Each source frame is written this many times (a 30 fps clip of 15 fps motion).
    pub repeat: usize,
    /// Rotation metadata to write, clockwise degrees for display.
    pub rotate: Rotate,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Rotate {
    None,
    /// The `rotate` stream tag.
    Tag(u32),
    /// A display matrix as stream side data (what phones' MP4 files carry).
    Matrix(u32),
}

impl Clip {
    pub fn new(encoder: &'static str) -> Self {
        Self {
            encoder,
            fps: 15,
            repeat: 1,
            rotate: Rotate::None,
        }
    }
}

/// The first available encoder for MP4 (libx264 if Debian's libavcodec has it, else mpeg4).
pub fn mp4_encoder() -> &'static str {
    ffmpeg::init().unwrap();
    ["libx264", "mpeg4"]
        .into_iter()
        .find(|n| ffmpeg::encoder::find_by_name(n).is_some())
        .expect("an MPEG-4 or H.264 encoder in libavcodec")
}

/// av_display_rotation_set(m, deg): a clockwise display rotation by `deg`, 16.16 fixed point.
fn display_matrix(deg: u32) -> [i32; 9] {
    let r = -(deg as f64).to_radians();
    let (c, s) = (r.cos(), r.sin());
    let fx = |v: f64| (v * 65536.0).round() as i32;
    [fx(c), fx(-s), 0, fx(s), fx(c), 0, 0, 0, 1 << 30]
}

/// Encodes `frames` (all one size) into `path`; the container follows the extension.
pub fn encode(frames: &[RgbImage], path: &Path, clip: Clip) {
    ffmpeg::init().unwrap();
    // The encoders' statistics would drown the test output.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let (w, h) = frames[0].dimensions();
    let codec = ffmpeg::encoder::find_by_name(clip.encoder).expect("encoder present");
    let mut octx = ffmpeg::format::output(&path).unwrap();
    let global = octx
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base((1, clip.fps));
    enc.set_frame_rate(Some((clip.fps, 1)));
    enc.set_bit_rate(4_000_000);
    enc.set_gop(12);
    if global {
        enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ffmpeg::Dictionary::new();
    match clip.encoder {
        "libx264" => opts.set("crf", "16"),
        "libvpx" => {
            opts.set("crf", "8");
            opts.set("deadline", "realtime");
        }
        _ => opts.set("qscale", "2"),
    }
    let mut enc = enc.open_with(opts).unwrap();
    {
        let mut ost = octx.add_stream(codec).unwrap();
        ost.set_parameters(&enc);
        ost.set_time_base((1, clip.fps));
        match clip.rotate {
            Rotate::None => {}
            Rotate::Tag(deg) => {
                let mut md = ffmpeg::Dictionary::new();
                md.set("rotate", &deg.to_string());
                ost.set_metadata(md);
            }
            Rotate::Matrix(deg) => {
                let m = display_matrix(deg);
                // SAFETY: `ost` is a live stream of `octx` before the header is written;
                // av_stream_new_side_data returns a buffer of exactly `size` bytes owned by the
                // stream (or null on allocation failure, checked), and we copy 36 bytes into it.
                #[allow(unsafe_code)] // The test crate's one FFI call (the safe wrapper lacks it).
                unsafe {
                    let p = ffmpeg::ffi::av_stream_new_side_data(
                        ost.as_mut_ptr(),
                        ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                        36,
                    );
                    assert!(!p.is_null());
                    std::ptr::copy_nonoverlapping(m.as_ptr().cast::<u8>(), p, 36);
                }
            }
        }
    }
    octx.write_header().unwrap();
    let out_tb = octx.stream(0).unwrap().time_base();
    let mut scaler =
        ffmpeg::software::scaling::Context::get(Pixel::RGB24, w, h, Pixel::YUV420P, w, h, {
            ffmpeg::software::scaling::Flags::BILINEAR
        })
        .unwrap();
    let write_packets = |enc: &mut ffmpeg::encoder::Video,
                         octx: &mut ffmpeg::format::context::Output| {
        let mut pkt = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(0);
            pkt.rescale_ts((1, clip.fps), out_tb);
            pkt.write_interleaved(octx).unwrap();
        }
    };
    let mut pts = 0i64;
    for img in frames {
        let mut rgb = ffmpeg::frame::Video::new(Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        for y in 0..h as usize {
            let row = &img.as_raw()[y * w as usize * 3..(y + 1) * w as usize * 3];
            rgb.data_mut(0)[y * stride..y * stride + row.len()].copy_from_slice(row);
        }
        let mut yuv = ffmpeg::frame::Video::empty();
        scaler.run(&rgb, &mut yuv).unwrap();
        for _ in 0..clip.repeat {
            yuv.set_pts(Some(pts));
            pts += 1;
            enc.send_frame(&yuv).unwrap();
            write_packets(&mut enc, &mut octx);
        }
    }
    enc.send_eof().unwrap();
    write_packets(&mut enc, &mut octx);
    octx.write_trailer().unwrap();
}
