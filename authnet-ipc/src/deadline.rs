//! `Read` and `Write` over a Unix stream with one overall deadline.
//!
//! [`read_frame`](crate::read_frame) and [`write_frame`](crate::write_frame) make several
//! syscalls per frame. A socket timeout alone bounds each syscall, not their sum: a peer that
//! drips one byte just inside the timeout could hold a frame open for ever. [`DeadlineStream`]
//! re-arms the socket's read or write timeout to the time left before its deadline before every
//! syscall, so the whole frame ends by the deadline. Both ends use it: the PAM module (one
//! deadline for the whole call) and the daemon (one per frame).
//!
//! A call made once the deadline has passed fails at once with [`io::ErrorKind::TimedOut`]
//! and touches the socket not at all. A syscall that runs into the deadline fails as the kernel
//! reports a socket timeout (`WouldBlock` on Linux); [`IpcError::is_timeout`] counts both.
//!
//! [`IpcError::is_timeout`]: crate::IpcError::is_timeout

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Time left before `deadline`, or a [`io::ErrorKind::TimedOut`] error if none is left.
///
/// Never returns a zero duration (which `set_read_timeout` would refuse).
pub fn remaining(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed")),
    }
}

/// A borrowed Unix stream whose every `read` and `write` ends by one deadline.
///
/// It sets the stream's read or write timeout before each syscall and leaves it set
/// afterwards; the owner that reuses the stream without a `DeadlineStream` must set its own.
#[derive(Debug)]
pub struct DeadlineStream<'s> {
    stream: &'s UnixStream,
    deadline: Instant,
}

impl<'s> DeadlineStream<'s> {
    /// `stream`, bounded by `deadline`.
    pub fn new(stream: &'s UnixStream, deadline: Instant) -> Self {
        Self { stream, deadline }
    }

    /// The instant by which every call ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline, or a `TimedOut` error (see [`remaining`]).
    pub fn remaining(&self) -> io::Result<Duration> {
        remaining(self.deadline)
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        (&mut &*self.stream).write(buf)
    }

    /// A Unix stream has no user-space buffer: nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{read_frame, write_frame, IpcError, Request};
    use std::thread;

    /// Whether `e` is what a socket timeout or an elapsed deadline looks like.
    fn is_timeout(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        )
    }

    #[test]
    fn remaining_is_positive_or_timed_out() {
        let left = remaining(Instant::now() + Duration::from_secs(5)).unwrap();
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
        let e = remaining(Instant::now()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(remaining(past).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn elapsed_deadline_fails_at_once_without_touching_the_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"waiting").unwrap();
        let past = Instant::now()
            .checked_sub(Duration::from_millis(1))
            .unwrap();
        let mut d = DeadlineStream::new(&a, past);
        let start = Instant::now();
        let mut buf = [0u8; 7];
        assert_eq!(
            d.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(d.write(b"x").unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_millis(100));
        // Nothing was consumed or sent.
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"waiting");
        b.set_nonblocking(true).unwrap();
        let e = (&b).read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn zero_deadline_fails_at_once() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut d = DeadlineStream::new(&a, Instant::now());
        assert_eq!(
            d.read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn read_past_the_deadline_times_out() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut d = DeadlineStream::new(&a, Instant::now() + Duration::from_millis(200));
        let start = Instant::now();
        let e = d.read(&mut [0u8; 1]).unwrap_err();
        let took = start.elapsed();
        assert!(is_timeout(&e), "{e:?}");
        assert!(took >= Duration::from_millis(150), "took {took:?}");
        assert!(took < Duration::from_millis(1000), "took {took:?}");
        // Once the deadline is behind, every call is TimedOut.
        assert_eq!(
            d.read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn partial_reads_share_one_deadline() {
        // One byte every 150 ms: each read alone is well within 400 ms, their sum is not.
        let (a, b) = UnixStream::pair().unwrap();
        let dripper = thread::spawn(move || {
            for _ in 0..10 {
                thread::sleep(Duration::from_millis(150));
                if (&b).write_all(b"x").is_err() {
                    break;
                }
            }
        });
        let mut d = DeadlineStream::new(&a, Instant::now() + Duration::from_millis(400));
        let start = Instant::now();
        let mut buf = [0u8; 10];
        let e = d.read_exact(&mut buf).unwrap_err();
        let took = start.elapsed();
        assert!(is_timeout(&e), "{e:?}");
        assert!(took < Duration::from_millis(700), "took {took:?}");
        drop(a);
        dripper.join().unwrap();
    }

    #[test]
    fn partial_writes_share_one_deadline() {
        // Nobody reads: the socket buffer fills and the write blocks until the deadline.
        let (a, _b) = UnixStream::pair().unwrap();
        let mut d = DeadlineStream::new(&a, Instant::now() + Duration::from_millis(300));
        let start = Instant::now();
        let big = vec![0u8; 8 << 20];
        let e = d.write_all(&big).unwrap_err();
        let took = start.elapsed();
        assert!(is_timeout(&e), "{e:?}");
        assert!(took < Duration::from_millis(800), "took {took:?}");
    }

    #[test]
    fn frames_round_trip_within_the_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let req = Request::Hello {
            protocol_version: crate::PROTOCOL_VERSION,
        };
        write_frame(&mut DeadlineStream::new(&a, deadline), &req).unwrap();
        let got: Request = read_frame(&mut DeadlineStream::new(&b, deadline)).unwrap();
        assert_eq!(got, req);
        let late: Result<Request, IpcError> =
            read_frame(&mut DeadlineStream::new(&b, Instant::now()));
        let e = late.unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
    }
}
