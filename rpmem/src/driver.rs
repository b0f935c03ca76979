//! The one lane driver, whatever moves the bytes: the call API over the
//! core's lane machine ([`CallEngine`]), the loop that drives a call to its
//! result (spin, then sleep, within the data deadline), and the errors that
//! say what the lane was doing and what became of rpmemd.
//!
//! A transport implements [`LaneIo`] over the core machine that owns its
//! lane ([`CallEngine`]: `StreamInitiator` for TCP, `InitiatorLane` for
//! RDMA): one round of moving bytes or posting and reaping
//! ([`LaneIo::pump`]), whether anything still waits in this process
//! ([`LaneIo::flushed`]), a bounded sleep ([`LaneIo::wait`]) and closing the
//! connection. [`Driver`] holds a transport's I/O beside the shared state
//! ([`LaneCx`]) and runs every call ([`Call`]) with one loop. Errors come
//! from [`LaneCx`], which marks the lane broken; the driver closes the
//! connection of a broken lane before the call returns. This module knows
//! no transport: `lane.rs` (TCP) and `verbs_lane.rs` (RDMA) depend on it,
//! not the other way round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem_core::persist::{
    CallError, CallKind, InitiatorLane, LaneError, ReadDest, StreamInitiator, StreamLaneError,
};

use crate::error::Error;
use crate::launch::RemoteInfo;
use crate::oob::STDERR_GRACE;
use crate::region::Region;

/// The core machine of a lane, as the call loop sees it: the calls, the
/// call in flight, and its result once there is one.
pub(crate) trait CallEngine {
    /// Why a call failed (the lane is broken).
    type Fault: std::fmt::Display;
    /// The call in flight, if any.
    fn call_in_flight(&self) -> Option<CallKind>;
    /// Starts `rpmem_persist`.
    fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError>;
    /// Starts `rpmem_deep_persist`.
    fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), CallError>;
    /// Starts `rpmem_flush`.
    fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError>;
    /// Starts `rpmem_drain`.
    fn drain(&mut self, flags: u32) -> Result<(), CallError>;
    /// Starts `rpmem_read` (the bytes go to `ReadDest::User` offsets).
    fn read(&mut self, offset: u64, len: u64) -> Result<(), CallError>;
    /// The call's result, once it is complete.
    fn poll_done(&mut self) -> Option<Result<(), Self::Fault>>;
}

macro_rules! call_engine {
    ($t:ty, $fault:ty, $done:ident) => {
        impl CallEngine for $t {
            type Fault = $fault;
            fn call_in_flight(&self) -> Option<CallKind> {
                <$t>::call_in_flight(self)
            }
            fn persist(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
                <$t>::persist(self, offset, len, flags)
            }
            fn deep_persist(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
                <$t>::deep_persist(self, offset, len)
            }
            fn flush(&mut self, offset: u64, len: u64, flags: u32) -> Result<(), CallError> {
                <$t>::flush(self, offset, len, flags)
            }
            fn drain(&mut self, flags: u32) -> Result<(), CallError> {
                <$t>::drain(self, flags)
            }
            fn read(&mut self, offset: u64, len: u64) -> Result<(), CallError> {
                <$t>::read(self, offset, len)
            }
            fn poll_done(&mut self) -> Option<Result<(), $fault>> {
                <$t>::$done(self)
            }
        }
    };
}

call_engine!(InitiatorLane, LaneError, poll_done);
call_engine!(StreamInitiator, StreamLaneError, poll_completion);

/// The state of a lane that is not about moving bytes.
#[derive(Debug)]
pub(crate) struct LaneCx<E> {
    /// The lane's number.
    pub(crate) index: u32,
    /// The core's machine: what to post or send, when a call is done.
    pub(crate) engine: E,
    /// rpmemd (or ssh), to say what became of it.
    pub(crate) remote: Option<Arc<RemoteInfo>>,
    /// Why the lane is broken, once it is.
    pub(crate) broken: Option<String>,
    /// The target host, for messages.
    pub(crate) host: String,
    /// Spin budget of a wait.
    pub(crate) spin: Duration,
    /// Data deadline: a call without progress for this long fails.
    pub(crate) stall: Duration,
    /// Appended to "on lane N" in messages (`""`, `" (RDMA)"`).
    pub(crate) label: &'static str,
}

impl<E: CallEngine> LaneCx<E> {
    /// The call in flight, in words.
    pub(crate) fn what(&self) -> &'static str {
        match self.engine.call_in_flight() {
            Some(CallKind::Persist) => "persist",
            Some(CallKind::DeepPersist) => "deep persist",
            Some(CallKind::Flush) => "flush",
            Some(CallKind::Drain) => "drain",
            Some(CallKind::Read) => "read",
            None => "finishing a flush",
        }
    }

    /// What became of rpmemd (waiting a little for its exit status).
    pub(crate) fn describe_remote(&self) -> String {
        match &self.remote {
            Some(r) => r.describe(STDERR_GRACE),
            None => "no process to ask".to_owned(),
        }
    }

    /// Marks the lane broken (the first cause stays).
    pub(crate) fn note_broken(&mut self, cause: String) {
        if self.broken.is_none() {
            self.broken = Some(cause);
        }
    }

    fn during(&self) -> String {
        format!("{} on lane {}{}", self.what(), self.index, self.label)
    }

    /// Breaks the lane for a reason of this side or a protocol violation.
    pub(crate) fn fail(&mut self, cause: String) -> Error {
        self.note_broken(cause.clone());
        Error::Protocol {
            host: self.host.clone(),
            during: self.during(),
            detail: cause,
        }
    }

    /// Breaks the lane because the connection went away: `what` happened,
    /// and rpmemd's fate is added.
    pub(crate) fn lost(&mut self, what: String) -> Error {
        let words = self.describe_remote();
        self.note_broken(format!("{what}: {words}"));
        Error::Connection {
            host: self.host.clone(),
            lane: self.index,
            what,
            message: words,
        }
    }

    /// Breaks the lane because rpmemd's channel (ssh, or rpmemd's stdout)
    /// hung up.
    pub(crate) fn hung_up(&mut self) -> Error {
        let words = self.describe_remote();
        self.note_broken(format!("rpmemd's channel hung up: {words}"));
        Error::Disconnected {
            host: self.host.clone(),
            during: self.during(),
            message: words,
        }
    }

    /// Breaks the lane because nothing moved for the data deadline;
    /// `waiting` says for what.
    pub(crate) fn timed_out(&mut self, waiting: &str) -> Error {
        let words = match &self.remote {
            Some(r) => r.describe(Duration::ZERO),
            None => "no process to ask".to_owned(),
        };
        let during = format!("{} ({waiting})", self.during());
        self.note_broken(format!("timed out after {:?} during {during}", self.stall));
        Error::Timeout {
            host: self.host.clone(),
            during,
            after: self.stall,
            message: words,
        }
    }
}

/// A transport's I/O for one lane: what moves the bytes (or posts and
/// reaps the work requests) of the core machine [`LaneIo::Engine`]. The
/// shared state comes in as `cx`; [`Driver`] runs the calls over it.
pub(crate) trait LaneIo {
    /// The core machine the lane drives.
    type Engine: CallEngine;
    /// One round: move what the machine allows, feed it what arrived.
    /// Returns whether anything moved.
    fn pump(
        &mut self,
        cx: &mut LaneCx<Self::Engine>,
        into: &mut ReadInto<'_>,
    ) -> Result<bool, Error>;
    /// True when nothing of the calls so far waits in this process (a
    /// finished flush must leave nothing behind for the next call).
    fn flushed(&self) -> bool;
    /// Sleeps until something may move, at most `limit`.
    fn wait(
        &mut self,
        cx: &mut LaneCx<Self::Engine>,
        into: &mut ReadInto<'_>,
        limit: Duration,
    ) -> Result<(), Error>;
    /// What the lane waits for when the deadline passes, in words.
    fn waiting_for(&self, cx: &LaneCx<Self::Engine>) -> &'static str;
    /// Closes the connection (rpmemd sees the lane end).
    fn shutdown(&self);
}

/// One call of the API, with where its READ bytes go.
#[derive(Debug)]
pub(crate) enum Call<'a> {
    /// `rpmem_persist`.
    Persist { offset: u64, len: u64, flags: u32 },
    /// `rpmem_deep_persist`.
    DeepPersist { offset: u64, len: u64 },
    /// `rpmem_flush`.
    Flush { offset: u64, len: u64, flags: u32 },
    /// `rpmem_drain`.
    Drain { flags: u32 },
    /// `rpmem_read` into the caller's buffer.
    Read { offset: u64, buf: &'a mut [u8] },
    /// `rpmem_read` into the region at the same offset.
    ReadToRegion { offset: u64, len: u64 },
}

impl<'a> Call<'a> {
    /// Starts the call on `engine`; gives back where its READ bytes go.
    fn start<E: CallEngine>(self, engine: &mut E) -> (Result<(), CallError>, ReadInto<'a>) {
        match self {
            Call::Persist { offset, len, flags } => {
                (engine.persist(offset, len, flags), ReadInto::Nothing)
            }
            Call::DeepPersist { offset, len } => {
                (engine.deep_persist(offset, len), ReadInto::Nothing)
            }
            Call::Flush { offset, len, flags } => {
                (engine.flush(offset, len, flags), ReadInto::Nothing)
            }
            Call::Drain { flags } => (engine.drain(flags), ReadInto::Nothing),
            Call::Read { offset, buf } => {
                let len = buf.len() as u64;
                (engine.read(offset, len), ReadInto::User(buf))
            }
            Call::ReadToRegion { offset, len } => {
                (engine.read(offset, len), ReadInto::Region { offset, len })
            }
        }
    }
}

/// One connected lane: the shared state with the core machine, and the
/// transport's I/O. The calls and their loop are here, once for every
/// transport.
pub(crate) struct Driver<T: LaneIo> {
    /// The shared state.
    pub(crate) cx: LaneCx<T::Engine>,
    /// The transport's part.
    pub(crate) io: T,
}

impl<T: LaneIo + std::fmt::Debug> std::fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("index", &self.cx.index)
            .field("broken", &self.cx.broken)
            .field("io", &self.io)
            .finish()
    }
}

impl<T: LaneIo> Driver<T> {
    /// The lane's number.
    pub(crate) fn index(&self) -> u32 {
        self.cx.index
    }

    /// Closes the connection (rpmemd sees the lane end).
    pub(crate) fn shutdown(&self) {
        self.io.shutdown();
    }

    /// Starts a call on the engine and drives it to its result. A lane
    /// that broke is closed before the error is returned.
    pub(crate) fn call(&mut self, call: Call<'_>) -> Result<(), Error> {
        let cx = &mut self.cx;
        if let Some(cause) = &cx.broken {
            return Err(Error::LaneBroken {
                lane: cx.index,
                cause: cause.clone(),
            });
        }
        let (started, mut into) = call.start(&mut cx.engine);
        let started = started.map_err(|source| match source {
            CallError::Broken(e) => cx.fail(format!("the lane engine is broken: {e}")),
            source => Error::Call {
                lane: cx.index,
                source,
            },
        });
        let result = started.and_then(|()| self.run(&mut into));
        if result.is_err() && self.cx.broken.is_some() {
            self.io.shutdown();
        }
        result
    }

    /// Drives the call in flight to its result: pump while things move;
    /// when nothing does, spin (yielding the CPU) for the spin budget, then
    /// sleep in [`LaneIo::wait`]; fail when nothing moved for the data
    /// deadline.
    fn run(&mut self, into: &mut ReadInto<'_>) -> Result<(), Error> {
        let mut last_progress = Instant::now();
        let mut spin_until = last_progress + self.cx.spin;
        let mut done = false;
        loop {
            let progressed = self.io.pump(&mut self.cx, into)?;
            if !done {
                match self.cx.engine.poll_done() {
                    Some(Ok(())) => done = true,
                    Some(Err(e)) => return Err(self.cx.fail(e.to_string())),
                    None => {}
                }
            }
            // A flush is done once everything is posted; keep going until
            // nothing waits in this process for the next call.
            if done && self.io.flushed() {
                return Ok(());
            }
            let now = Instant::now();
            if progressed {
                last_progress = now;
                spin_until = now + self.cx.spin;
                continue;
            }
            if now < spin_until {
                // Let any other runnable thread of this CPU (the kernel's
                // network work, the target on a small machine) go first:
                // spinning must not delay the answer it waits for.
                std::thread::yield_now();
                continue;
            }
            let idle = now.saturating_duration_since(last_progress);
            let stall = self.cx.stall;
            if idle >= stall {
                let waiting = self.io.waiting_for(&self.cx);
                return Err(self.cx.timed_out(waiting));
            }
            self.io.wait(&mut self.cx, into, stall - idle)?;
        }
    }
}

/// Where the bytes of the call's READs go.
pub(crate) enum ReadInto<'a> {
    /// The call reads nothing.
    Nothing,
    /// Region `[offset, offset + len)`.
    Region {
        /// Region offset of buffer offset 0.
        offset: u64,
        /// Length of the destination.
        len: u64,
    },
    /// The caller's buffer.
    User(&'a mut [u8]),
}

/// Puts staged READ_RESP bytes `src` at body offset `got`; false when they
/// do not fit the destination.
pub(crate) fn deliver(
    region: &Region,
    into: &mut ReadInto<'_>,
    dest: ReadDest,
    got: u64,
    src: &[u8],
) -> bool {
    let ReadDest::User { buf_offset } = dest else {
        // APM's flushing READ: the bytes are thrown away.
        return true;
    };
    let Some(at) = buf_offset.checked_add(got) else {
        return false;
    };
    let Some(end) = at.checked_add(src.len() as u64) else {
        return false;
    };
    match into {
        ReadInto::Nothing => false,
        ReadInto::Region { offset, len } => {
            if end > *len {
                return false;
            }
            let Some(start) = offset.checked_add(at).and_then(|s| usize::try_from(s).ok()) else {
                return false;
            };
            if region.check(start, src.len()).is_err() {
                return false;
            }
            region.copy_in(start, src);
            true
        }
        ReadInto::User(buf) => {
            let (Ok(at), Ok(end)) = (usize::try_from(at), usize::try_from(end)) else {
                return false;
            };
            match buf.get_mut(at..end) {
                Some(d) => {
                    d.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }
}
