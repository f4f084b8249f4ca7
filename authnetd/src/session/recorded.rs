//! Features of recorded enrolment clips (folders or video files the peer may read).

use super::*;

/// One enrolment clip's features, what the detector found, and its frozen-pair share.
type ExtractedClip = (UtteranceFeatures, ExtractReport, f64);

/// Features of every frame of `src` (at most `MAX_FRAMES`), with the share of consecutive
/// frame pairs that are the same picture.
fn extract_counting(
    ex: &mut FeatureExtractor,
    mut src: Box<dyn authnet_core::capture::FrameSource>,
) -> Result<(UtteranceFeatures, ExtractReport, f64), String> {
    // A recorded clip is already cut to the utterance: kept whole, as
    // `authnet_core::attempt` cuts a recording.
    let mut utt = Utterance::from_source(ex, SourceKind::Recording);
    let mut statics = crate::enroll::StaticCounter::default();
    let mut n = 0;
    while let Some(f) = src.next_frame().map_err(|e| e.to_string())? {
        utt.push(&f).map_err(|e| e.to_string())?;
        statics.push(f);
        n += 1;
        if n >= authnet_core::capture::MAX_FRAMES {
            break;
        }
    }
    let captured = utt.finish().map_err(|e| e.to_string())?;
    let report = captured.report;
    let feats = captured.into_probe().map_err(|e| e.to_string())?;
    Ok((feats, report, statics.share()))
}

impl Daemon {
    /// Extracts features of recorded clips (frame folders or video files) for enrolment, with
    /// what the detector found in each and the share of frozen frame pairs
    /// ([`crate::enroll::StaticCounter`]). `progress(done, total)` after each clip.
    ///
    /// For a non-root peer every clip is opened with the peer's own file-system credentials
    /// ([`sys::FsCreds`] on this thread; chosen over passing descriptors with SCM_RIGHTS because
    /// it also covers the frame files inside a folder and whatever FFmpeg opens itself, with no
    /// protocol change): the root daemon reads only what the peer could read, and a refusal
    /// says nothing the peer could not learn itself. Frame folders are read into memory
    /// ([`authnet_core::capture::load_dir`]: no symlinks, FIFOs or devices, bounded size)
    /// *before* the camera queue is taken; only decoding and the pipeline run under it. A video
    /// file is opened (regular file, no symlink) before the queue too, and FFmpeg reads that
    /// open file, under the peer's credentials, while the queue is held.
    ///
    /// A refused clip is a bad request whose text is generic for non-root peers (the detail
    /// is logged).
    pub(crate) fn extract_dirs(
        &self,
        peer: sys::PeerCred,
        dirs: &[PathBuf],
        progress: &mut dyn FnMut(usize, usize) -> Result<(), IpcError>,
    ) -> Handled<Vec<ExtractedClip>> {
        use authnet_core::capture as cap;
        /// Largest video file accepted for enrolment.
        const MAX_VIDEO_FILE: u64 = 1 << 30;
        enum Input {
            Frames(cap::LoadedDir),
            Video(std::fs::File),
        }
        let as_peer = || -> Result<Option<sys::FsCreds>, String> {
            if peer.uid == 0 {
                return Ok(None);
            }
            sys::FsCreds::assume(peer.uid, peer.gid)
                .map(Some)
                .map_err(|e| format!("cannot take the peer's credentials: {e}"))
        };
        let refuse = |i: usize, d: &std::path::Path, why: String| -> Stop {
            self.log.info(&format!(
                "enrolment clip {} of uid {} refused: {}: {why}",
                i + 1,
                peer.uid,
                d.display()
            ));
            Refusal::bad_request(if peer.uid == 0 {
                format!("{}: {why}", d.display())
            } else {
                format!(
                    "clip {} ({}) cannot be used: it must be a frame folder or a video file \
                     that you can read",
                    i + 1,
                    d.display()
                )
            })
            .into()
        };
        let mut out = Vec::with_capacity(dirs.len());
        for (i, d) in dirs.iter().enumerate() {
            let mixed = self.cfg.crop != authnet_core::vision::CropMode::Detect;
            // All file I/O a peer controls happens here, before the camera queue.
            let input = {
                let _creds = as_peer().map_err(|e| refuse(i, d, e))?;
                match std::fs::metadata(d) {
                    Ok(m) if m.is_dir() => cap::load_dir(d)
                        .map(|l| Input::Frames(if mixed { l.allow_mixed_sizes() } else { l }))
                        .map_err(|e| e.to_string()),
                    Ok(_) => authnet_core::fsutil::open_regular(d, MAX_VIDEO_FILE)
                        .map(|(f, _)| Input::Video(f))
                        .map_err(|e| match e {
                            authnet_core::fsutil::BoundedRead::Io(e) => e.to_string(),
                            authnet_core::fsutil::BoundedRead::TooLarge { size } => {
                                format!("{size} bytes is too large for a video")
                            }
                        }),
                    Err(e) => Err(e.to_string()),
                }
            };
            let input = input.map_err(|e| refuse(i, d, e))?;
            let r = {
                let Some(_g) = self.gate.acquire_low(self.cfg.camera_wait) else {
                    return Err(
                        Refusal::peer(ErrorKind::Busy, "the camera pipeline is busy").into(),
                    );
                };
                let mut ex = self.pipeline();
                match input {
                    Input::Frames(l) => extract_counting(&mut ex, Box::new(l)),
                    Input::Video(f) => {
                        use std::os::fd::AsRawFd;
                        let _creds = as_peer().map_err(|e| refuse(i, d, e))?;
                        // FFmpeg reopens the very file checked above, never the path again.
                        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
                        let r = cap::open_utterance(&fd_path, mixed)
                            .map_err(|e| e.to_string())
                            .and_then(|s| extract_counting(&mut ex, s));
                        drop(f);
                        r
                    }
                }
            };
            out.push(r.map_err(|e| refuse(i, d, e))?);
            progress(i + 1, dirs.len())?;
        }
        Ok(out)
    }
}
