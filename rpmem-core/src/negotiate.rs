//! What a session's two sides agree on, computed once: the target's grant
//! ([`grant`]), the initiator's acceptance of the answer ([`accept`]), and
//! [`SessionParams`], from which rpmemd, rpmem and the simulator all derive
//! their per-lane ([`LaneParams`]) and target ([`TargetParams`]) parameters.
//!
//! The out-of-band request carries the lanes and the inline buffer size the
//! initiator asks for (`nlanes`, `buff_size`); the answer carries the lanes
//! granted (`ibc.nlanes`) and, in our extension, the inline size granted
//! (`ext.max_inline`). Whether the pool has headers is not negotiated: the
//! target knows it from the pool set (`OPTION NOHDRS`), the initiator from
//! the attributes (all zero means none, librpmem's rule). Both sides carry
//! it as [`SessionParams::headers`], and the lowest writable offset follows
//! from it in one place ([`SessionParams::min_offset`]).

use crate::flush::FlushMode;
use crate::persist::{
    LaneParams, Method, Placement, TargetParams, DEFAULT_INLINE_MAX, MAX_SEND_WINDOW, POOL_HDR_SIZE,
};
use crate::wire::persist::HEADER_LEN as PERSIST_HEADER_LEN;
use crate::wire::tcp::FRAME_HEADER_LEN;

/// Most lanes a request may ask for (libpmemobj asks for 1024); a request
/// for more is refused (`RPMEM_ERR_BADNLANES`).
pub const MAX_NLANES: u32 = 1024;
/// Largest inline buffer a request may ask for (`RPMEM_ERR_FATAL` above, as
/// PMDK fails allocating an unreasonable one).
pub const MAX_BUFF_SIZE: u64 = 1 << 20;
/// Memory the lanes of one session may hold for inline persist messages
/// together; it bounds the lanes granted for large buffers.
pub const INLINE_BUDGET: u64 = 256 << 20;
/// Smallest inline buffer granted: one 8-byte atomic word.
pub const MIN_INLINE: u64 = 8;

/// What a target is willing to grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offer {
    /// Most lanes (at most [`MAX_NLANES`] in practice).
    pub max_nlanes: u32,
    /// Largest inline payload.
    pub max_inline: u64,
    /// Worker threads the target runs lanes on (one per lane); 0: no limit.
    pub nthreads: u32,
    /// Memory all lanes' inline receive buffers may take together.
    pub inline_budget: u64,
    /// Receive buffers one lane keeps: 1 on TCP (the stream is read into
    /// one buffer), [`MAX_SEND_WINDOW`] on RDMA (one posted per message in
    /// flight).
    pub buffers_per_lane: u32,
}

impl Offer {
    /// rpmemd's limits over TCP: [`MAX_NLANES`], [`MAX_BUFF_SIZE`], no thread
    /// limit, [`INLINE_BUDGET`], one buffer per lane.
    pub const DEFAULT: Offer = Offer {
        max_nlanes: MAX_NLANES,
        max_inline: MAX_BUFF_SIZE,
        nthreads: 0,
        inline_budget: INLINE_BUDGET,
        buffers_per_lane: 1,
    };

    /// The same over RDMA: [`MAX_SEND_WINDOW`] posted buffers per lane.
    pub const RDMA: Offer = Offer {
        buffers_per_lane: MAX_SEND_WINDOW,
        ..Offer::DEFAULT
    };
}

impl Default for Offer {
    fn default() -> Self {
        Offer::DEFAULT
    }
}

/// What the target grants for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Lanes (at least 1, at most the request).
    pub nlanes: u32,
    /// Most data bytes one inline persist carries.
    pub inline_max: u64,
}

/// The target's answer to a request for `nlanes` lanes and a `buff_size`
/// inline buffer:
///
/// * the inline size is the request, or PMDK's default 8192 when it asks for
///   0, within [`MIN_INLINE`] and `offer.max_inline`;
/// * the lanes are the request, at most `offer.max_nlanes`, at most
///   `offer.nthreads` when set, and at most as many as the budget holds
///   (each lane keeps `buffers_per_lane` buffers of one framed message), and
///   always at least 1.
pub fn grant(nlanes: u32, buff_size: u64, offer: &Offer) -> Grant {
    let asked = if buff_size == 0 {
        DEFAULT_INLINE_MAX
    } else {
        buff_size
    };
    let inline_max = asked.clamp(MIN_INLINE, offer.max_inline.max(MIN_INLINE));
    let mut cap = offer.max_nlanes;
    if offer.nthreads > 0 {
        cap = cap.min(offer.nthreads);
    }
    let per_lane = inline_max
        .saturating_add(PERSIST_HEADER_LEN as u64)
        .saturating_add(FRAME_HEADER_LEN as u64)
        .saturating_mul(u64::from(offer.buffers_per_lane.max(1)));
    let by_budget = u32::try_from(offer.inline_budget / per_lane).unwrap_or(u32::MAX);
    Grant {
        nlanes: nlanes.min(cap).min(by_budget).max(1),
        inline_max,
    }
}

/// What both sides of a session derive their parameters from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionParams {
    /// Lanes of the session.
    pub nlanes: u32,
    /// Size of the pool (and of the initiator's region) in bytes.
    pub pool_size: u64,
    /// The pool has headers: its first [`POOL_HDR_SIZE`] bytes hold the pool
    /// header and cannot be written through the data path.
    pub headers: bool,
    /// Most data bytes one inline persist carries.
    pub inline_max: u64,
    /// The method the initiator's lanes run.
    pub method: Method,
    /// The method the target announced in PMDK's `persist_method` field
    /// (differs from `method` when the initiator chose RDMA FLUSH).
    pub announced: Method,
}

impl SessionParams {
    /// The target's view of a grant: the lanes run the announced method.
    pub fn granted(grant: Grant, pool_size: u64, headers: bool, announced: Method) -> Self {
        SessionParams {
            nlanes: grant.nlanes,
            pool_size,
            headers,
            inline_max: grant.inline_max,
            method: announced,
            announced,
        }
    }

    /// Lowest offset the data path may write: [`POOL_HDR_SIZE`] with
    /// headers, else 0.
    pub fn min_offset(&self) -> u64 {
        if self.headers {
            POOL_HDR_SIZE
        } else {
            0
        }
    }

    /// The engine parameters of initiator lane `lane`. Every transport lets
    /// a lane have [`MAX_SEND_WINDOW`] persist messages in flight (the TCP
    /// server answers in order and needs no receive buffers, rpmemd's RDMA
    /// lane keeps that many posted); the work queue and the largest
    /// operation keep [`LaneParams::new`]'s defaults for the driver to set.
    pub fn lane(&self, lane: u32, placement: Placement) -> LaneParams {
        let mut p = LaneParams::new(
            lane,
            self.nlanes,
            self.method,
            self.pool_size,
            self.min_offset(),
            placement,
        );
        p.inline_max = self.inline_max;
        p.send_window = MAX_SEND_WINDOW;
        p
    }

    /// The target engine's parameters with flush mode `flush_mode`. The
    /// target knows the method it announced, not the one the initiator chose
    /// (it executes every valid message whatever the method).
    pub fn target(&self, flush_mode: FlushMode) -> TargetParams {
        TargetParams {
            nlanes: self.nlanes,
            pool_size: self.pool_size,
            min_offset: self.min_offset(),
            inline_max: self.inline_max,
            flush_mode,
            method: self.announced,
        }
    }
}

/// The initiator's side: what it asked for and what the answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Answer {
    /// Lanes granted (`ibc.nlanes`; the out-of-band client has checked that
    /// they are at least 1 and at most the request).
    pub nlanes: u32,
    /// Inline size granted (`ext.max_inline`), if the answer has our
    /// extension.
    pub max_inline: Option<u32>,
    /// Method announced in `persist_method`.
    pub announced: Method,
}

/// The initiator accepts `answer` to a request for a `buff_size` inline
/// buffer on a pool of `pool_size` bytes with or without `headers`, and runs
/// its lanes with `method` (the announced one, or RDMA FLUSH where the
/// policy chose it). The inline size is the smaller of the request (PMDK's
/// default for 0) and the grant; without the extension, the request.
pub fn accept(
    buff_size: u64,
    pool_size: u64,
    headers: bool,
    answer: &Answer,
    method: Method,
) -> SessionParams {
    let asked = if buff_size == 0 {
        DEFAULT_INLINE_MAX
    } else {
        buff_size
    };
    let inline_max = match answer.max_inline {
        Some(granted) => asked.min(u64::from(granted)),
        None => asked,
    };
    SessionParams {
        nlanes: answer.nlanes,
        pool_size,
        headers,
        inline_max,
        method,
        announced: answer.announced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_follows_the_request_within_the_limits() {
        let g = grant(4, 65536, &Offer::DEFAULT);
        assert_eq!((g.nlanes, g.inline_max), (4, 65536));
        // 0 asks for PMDK's default; tiny and huge requests are clamped.
        assert_eq!(grant(1, 0, &Offer::DEFAULT).inline_max, 8192);
        assert_eq!(grant(1, 1, &Offer::DEFAULT).inline_max, MIN_INLINE);
        assert_eq!(
            grant(1, u64::MAX, &Offer::DEFAULT).inline_max,
            MAX_BUFF_SIZE
        );
        // libpmemobj's 1024 lanes with the default buffer: all granted.
        assert_eq!(grant(1024, 8192, &Offer::DEFAULT).nlanes, 1024);
        assert_eq!(grant(2000, 8192, &Offer::DEFAULT).nlanes, MAX_NLANES);
        // Zero lanes asked still gives one.
        assert_eq!(grant(0, 8192, &Offer::DEFAULT).nlanes, 1);
    }

    #[test]
    fn threads_and_the_budget_bound_the_lanes() {
        let few_threads = Offer {
            nthreads: 3,
            ..Offer::DEFAULT
        };
        assert_eq!(grant(8, 8192, &few_threads).nlanes, 3);
        // 1 MiB buffers: 256 MiB holds 255 framed ones over TCP ...
        let per = MAX_BUFF_SIZE + PERSIST_HEADER_LEN as u64 + FRAME_HEADER_LEN as u64;
        let tcp = grant(1024, MAX_BUFF_SIZE, &Offer::DEFAULT).nlanes;
        assert_eq!(u64::from(tcp), INLINE_BUDGET / per);
        // ... and a sixteenth of that over RDMA, 16 buffers a lane.
        let rdma = grant(1024, MAX_BUFF_SIZE, &Offer::RDMA).nlanes;
        assert_eq!(u64::from(rdma), INLINE_BUDGET / (per * 16));
        assert!(rdma >= 1);
    }

    #[test]
    fn both_sides_derive_the_same_parameters() {
        let g = grant(3, 16384, &Offer::DEFAULT);
        let target = SessionParams::granted(g, 1 << 20, true, Method::Gpspm);
        let init = accept(
            16384,
            1 << 20,
            true,
            &Answer {
                nlanes: g.nlanes,
                max_inline: u32::try_from(g.inline_max).ok(),
                announced: Method::Gpspm,
            },
            Method::Gpspm,
        );
        assert_eq!(target, init);
        let t = init.target(FlushMode::Cpu);
        let l = init.lane(2, Placement::Stream);
        assert_eq!((t.min_offset, l.min_offset), (POOL_HDR_SIZE, POOL_HDR_SIZE));
        assert_eq!((t.inline_max, l.inline_max), (16384, 16384));
        assert_eq!((t.nlanes, l.nlanes, l.lane), (3, 3, 2));
        assert_eq!(l.send_window, MAX_SEND_WINDOW);
    }

    #[test]
    fn the_initiator_takes_the_smaller_inline_size_and_no_headers_means_offset_zero() {
        let answer = Answer {
            nlanes: 1,
            max_inline: Some(4096),
            announced: Method::Apm,
        };
        let s = accept(65536, 8192, false, &answer, Method::RdmaFlush);
        assert_eq!(s.inline_max, 4096);
        assert_eq!(s.min_offset(), 0);
        assert_eq!((s.method, s.announced), (Method::RdmaFlush, Method::Apm));
        assert_eq!(s.target(FlushMode::Cpu).method, Method::Apm);
        let old = Answer {
            max_inline: None,
            ..answer
        };
        assert_eq!(accept(0, 8192, false, &old, Method::Apm).inline_max, 8192);
    }
}
