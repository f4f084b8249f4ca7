//! The backbone on a thread of its own, so that a batch of face crops is embedded while the
//! next frames are meshed: on two cores the landmark model and the backbone then run side by
//! side instead of one after the other.
//!
//! Jobs are answered in the order they were sent. At most [`IN_FLIGHT`] batches wait for the
//! thread, so a slow backbone makes the sender wait rather than pile up crops. A failed or
//! panicking run answers with an error; a thread that is gone makes every later call an error,
//! never a wait.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use image::RgbImage;

use super::embed::{EmbedError, Embedder, Manifest};

/// Batches that may wait for the backbone before [`EmbedWorker::submit`] blocks.
pub const IN_FLIGHT: usize = 4;

type Answer = Result<Vec<Vec<f32>>, EmbedError>;

/// The backbone, run on its own thread.
pub struct EmbedWorker {
    manifest: Manifest,
    jobs: Option<SyncSender<Vec<RgbImage>>>,
    answers: Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
    /// Batches sent and not yet answered, oldest first: their crop counts.
    waiting: VecDeque<usize>,
}

impl std::fmt::Debug for EmbedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedWorker")
            .field("manifest", &self.manifest.name)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl EmbedWorker {
    /// Moves `embedder` to a new thread.
    pub fn spawn(mut embedder: Embedder) -> Result<Self, EmbedError> {
        let manifest = embedder.manifest().clone();
        let (jobs, inbox) = mpsc::sync_channel::<Vec<RgbImage>>(IN_FLIGHT);
        let (outbox, answers) = mpsc::channel::<Answer>();
        let thread = std::thread::Builder::new()
            .name("authnet-embed".into())
            .spawn(move || {
                for crops in inbox {
                    let answer = catch_unwind(AssertUnwindSafe(|| embedder.embed(&crops)))
                        .unwrap_or(Err(EmbedError::Worker {
                            what: "panicked while embedding",
                        }));
                    if outbox.send(answer).is_err() {
                        break;
                    }
                }
            })
            .map_err(|_| EmbedError::Worker {
                what: "could not be started",
            })?;
        Ok(Self {
            manifest,
            jobs: Some(jobs),
            answers,
            thread: Some(thread),
            waiting: VecDeque::new(),
        })
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.manifest.output_dim
    }

    /// Sends a batch; its embeddings come back, in order, from [`Self::receive`] or
    /// [`Self::try_receive`]. Waits only while [`IN_FLIGHT`] batches are queued.
    pub fn submit(&mut self, crops: Vec<RgbImage>) -> Result<(), EmbedError> {
        let n = crops.len();
        let jobs = self.jobs.as_ref().ok_or(GONE)?;
        jobs.send(crops).map_err(|_| GONE)?;
        self.waiting.push_back(n);
        Ok(())
    }

    /// The oldest batch's embeddings, waiting for them; `None` when nothing was sent.
    pub fn receive(&mut self) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        let n = self.waiting.pop_front()?;
        Some(
            self.answers
                .recv()
                .map_err(|_| GONE)
                .and_then(|a| check(a, n)),
        )
    }

    /// The oldest batch's embeddings if they are ready.
    pub fn try_receive(&mut self) -> Option<Result<Vec<Vec<f32>>, EmbedError>> {
        let n = *self.waiting.front()?;
        let answer = match self.answers.try_recv() {
            Ok(a) => check(a, n),
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err(GONE),
        };
        self.waiting.pop_front();
        Some(answer)
    }

    /// Waits for and drops every batch still owed (an utterance abandoned half-way must not
    /// hand its embeddings to the next one).
    pub fn discard(&mut self) {
        while self.receive().is_some() {}
    }

    /// Embeds `crops` and waits for them (after dropping anything still owed).
    pub fn embed(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.discard();
        self.submit(crops.to_vec())?;
        self.receive().unwrap_or(Err(GONE))
    }
}

/// The error of a worker thread that is no longer there.
const GONE: EmbedError = EmbedError::Worker {
    what: "has stopped",
};

/// An answer must hold one embedding per crop sent.
fn check(answer: Answer, sent: usize) -> Answer {
    match answer {
        Ok(v) if v.len() != sent => Err(EmbedError::Worker {
            what: "returned a different number of embeddings than crops sent",
        }),
        other => other,
    }
}

impl Drop for EmbedWorker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop once the current batch is done.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
