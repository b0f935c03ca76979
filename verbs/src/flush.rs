//! IBTA RDMA FLUSH (the third persistency method): what the headers, the
//! device and the provider offer, found out at run time.
//!
//! FLUSH needs three things, each of which may be missing:
//!
//! * rdma-core >= 45 headers when this crate is built (`ibv_wr_flush`,
//!   `IBV_QP_EX_WITH_FLUSH`, `IBV_ACCESS_FLUSH_*`); `build.rs` looks for
//!   them in the headers rdma-sys generates its bindings from and sets the
//!   cfg `rpmem_verbs_flush`. Without it every query here answers "no";
//! * a kernel driver that advertises the placement types in
//!   `device_cap_flags_ex` (`IB_UVERBS_DEVICE_FLUSH_GLOBAL`, bit 38, and
//!   `IB_UVERBS_DEVICE_FLUSH_PERSISTENT`, bit 39; rdma-core passes the
//!   kernel's bits through `ibv_query_device_ex` and names neither): rxe from
//!   Linux 6.2;
//! * a user-space provider (of the libibverbs loaded at run time) that
//!   creates queue pairs with `IBV_QP_EX_WITH_FLUSH` in `send_ops_flags` and
//!   fills in `ibv_qp_ex::wr_flush`: rdma-core >= 45's rxe provider. A
//!   program built against new headers but run with an older libibverbs
//!   gets a refusal here, which [`probe`] turns into "no".
//!
//! The extended verbs are reached through our own `verbs_context` lookup:
//! rdma-sys 0.3.0's `verbs_get_ctx` compares `abi_compat` with `u32::MAX`
//! instead of the pointer-sized maximum and so finds no extended context on
//! 64-bit hosts.

/// Placement type of an RDMA FLUSH (IBTA vol. 1, 9.4.8 / oA19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushType {
    /// Global visibility: earlier WRITEs to the range are visible to the
    /// target's CPUs (`IBV_FLUSH_GLOBAL`).
    Global,
    /// Persistence: earlier WRITEs to the range are in the persistence
    /// domain of the target's (persistent) memory (`IBV_FLUSH_PERSISTENT`).
    /// rxe accepts it only on registrations whose every page the kernel
    /// lists as persistent memory.
    Persistent,
}

impl FlushType {
    /// The registration right the target's memory needs for this type
    /// ([`Access::FLUSH_GLOBAL`](crate::Access::FLUSH_GLOBAL) or
    /// [`Access::FLUSH_PERSISTENT`](crate::Access::FLUSH_PERSISTENT)).
    pub fn access(self) -> crate::Access {
        match self {
            FlushType::Global => crate::Access::FLUSH_GLOBAL,
            FlushType::Persistent => crate::Access::FLUSH_PERSISTENT,
        }
    }

    /// `enum ibv_placement_type` value (`IBV_FLUSH_GLOBAL` = 1,
    /// `IBV_FLUSH_PERSISTENT` = 2).
    pub fn placement(self) -> u8 {
        match self {
            FlushType::Global => 1,
            FlushType::Persistent => 2,
        }
    }
}

impl std::fmt::Display for FlushType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlushType::Global => "global visibility",
            FlushType::Persistent => "persistence",
        })
    }
}

/// Which RDMA FLUSH placement types can be posted. All `false` when the
/// headers, the device or the provider lack FLUSH (never an error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlushSupport {
    /// `FLUSH` with [`FlushType::Global`].
    pub global: bool,
    /// `FLUSH` with [`FlushType::Persistent`].
    pub persistent: bool,
}

impl FlushSupport {
    /// Neither type.
    pub const NONE: FlushSupport = FlushSupport {
        global: false,
        persistent: false,
    };

    /// Whether `kind` is supported.
    pub fn supports(self, kind: FlushType) -> bool {
        match kind {
            FlushType::Global => self.global,
            FlushType::Persistent => self.persistent,
        }
    }

    /// Whether any type is.
    pub fn any(self) -> bool {
        self.global || self.persistent
    }

    /// The device capability bits (`device_cap_flags_ex`) as support.
    #[cfg_attr(not(rpmem_verbs_flush), allow(dead_code))]
    pub(crate) fn from_cap_flags_ex(flags: u64) -> FlushSupport {
        FlushSupport {
            global: flags & CAP_FLUSH_GLOBAL != 0,
            persistent: flags & CAP_FLUSH_PERSISTENT != 0,
        }
    }
}

/// `IB_UVERBS_DEVICE_FLUSH_GLOBAL` (kernel uapi `ib_user_verbs.h`).
const CAP_FLUSH_GLOBAL: u64 = 1 << 38;
/// `IB_UVERBS_DEVICE_FLUSH_PERSISTENT`.
const CAP_FLUSH_PERSISTENT: u64 = 1 << 39;

/// Whether this build of the crate can post RDMA FLUSH at all: it was
/// compiled against rdma-core headers that have `ibv_wr_flush` (rdma-core
/// 45 or later). When false, [`Pd::flush_support`](crate::Pd::flush_support)
/// always answers [`FlushSupport::NONE`].
pub fn flush_compiled() -> bool {
    cfg!(rpmem_verbs_flush)
}

#[cfg(rpmem_verbs_flush)]
pub(crate) use imp::{create_qp_with_flush, post, probe};

/// Without FLUSH in the headers nothing can be posted: no support.
#[cfg(not(rpmem_verbs_flush))]
pub(crate) fn probe(
    _ctx: std::ptr::NonNull<rdma_sys::ibv_context>,
    _pd: *mut rdma_sys::ibv_pd,
) -> FlushSupport {
    FlushSupport::NONE
}

#[cfg(rpmem_verbs_flush)]
mod imp {
    use std::ptr::NonNull;

    use rdma_sys::{
        ibv_access_flags, ibv_context, ibv_create_cq, ibv_destroy_cq, ibv_destroy_qp,
        ibv_device_attr_ex, ibv_qp, ibv_qp_cap, ibv_qp_create_send_ops_flags, ibv_qp_ex,
        ibv_qp_init_attr_ex, ibv_qp_init_attr_mask, ibv_qp_to_qp_ex, ibv_qp_type, verbs_context,
    };

    use super::FlushSupport;

    // The bindings must agree with the values this crate uses without them.
    const _: () = assert!(ibv_access_flags::IBV_ACCESS_FLUSH_GLOBAL.0 == 1 << 8);
    const _: () = assert!(ibv_access_flags::IBV_ACCESS_FLUSH_PERSISTENT.0 == 1 << 9);
    const _: () = assert!(rdma_sys::IBV_FLUSH_GLOBAL == 1);
    const _: () = assert!(rdma_sys::IBV_FLUSH_PERSISTENT == 2);

    /// Operations a queue pair that may FLUSH is created with: FLUSH
    /// through `ibv_wr_flush`, and the ones `ibv_post_send` posts (so a
    /// provider that checks `send_ops_flags` for those too accepts them).
    pub(crate) const SEND_OPS: u64 = (ibv_qp_create_send_ops_flags::IBV_QP_EX_WITH_RDMA_WRITE.0
        | ibv_qp_create_send_ops_flags::IBV_QP_EX_WITH_RDMA_READ.0
        | ibv_qp_create_send_ops_flags::IBV_QP_EX_WITH_SEND.0
        | ibv_qp_create_send_ops_flags::IBV_QP_EX_WITH_FLUSH.0)
        as u64;

    /// The extended context of `ctx`, if libibverbs made one
    /// (`verbs_get_ctx`, done right: `abi_compat` is `(void *)UINTPTR_MAX`).
    fn extended(ctx: NonNull<ibv_context>) -> Option<NonNull<verbs_context>> {
        // SAFETY: `ctx` is a valid device context; `abi_compat` is a plain
        // pointer-sized field of it.
        let compat = unsafe { (*ctx.as_ptr()).abi_compat } as usize;
        if compat != usize::MAX {
            return None;
        }
        // `struct ibv_context` is the last member of `struct verbs_context`
        // (container_of).
        let off = std::mem::offset_of!(verbs_context, context);
        NonNull::new(
            ctx.as_ptr()
                .cast::<u8>()
                .wrapping_sub(off)
                .cast::<verbs_context>(),
        )
    }

    /// Whether the library that made `vctx` knows the member at `offset`
    /// (`verbs_get_ctx_op`: newer members are added at the front, and `sz`
    /// says how many bytes the library's `verbs_context` has).
    fn has_member(vctx: NonNull<verbs_context>, offset: usize) -> bool {
        // SAFETY: `sz` lies right before `context` at a fixed distance from
        // it in every version of the structure, so it is readable whatever
        // the library's version.
        let sz = unsafe { (*vctx.as_ptr()).sz };
        std::mem::size_of::<verbs_context>()
            .checked_sub(offset)
            .is_some_and(|need| sz >= need)
    }

    /// `ibv_query_device_ex`'s capability bits, or `None` when the library
    /// or the driver has no extended query.
    fn cap_flags_ex(ctx: NonNull<ibv_context>) -> Option<u64> {
        let vctx = extended(ctx)?;
        if !has_member(vctx, std::mem::offset_of!(verbs_context, query_device_ex)) {
            return None;
        }
        // SAFETY: the library's structure has this member (checked above).
        let query = unsafe { (*vctx.as_ptr()).query_device_ex }?;
        // SAFETY: all-zero is a valid ibv_device_attr_ex (plain numbers).
        let mut attr: ibv_device_attr_ex = unsafe { std::mem::zeroed() };
        // SAFETY: a valid context, no input, and an output of the size we
        // pass (the library fills at most `attr_size` bytes).
        let rc = unsafe {
            query(
                ctx.as_ptr(),
                std::ptr::null(),
                &mut attr,
                std::mem::size_of::<ibv_device_attr_ex>(),
            )
        };
        (rc == 0).then_some(attr.device_cap_flags_ex)
    }

    /// What `ctx`'s device and provider support: the device's capability
    /// bits, confirmed by creating (and destroying) a queue pair that asks
    /// for FLUSH and checking the provider gave it `wr_flush`.
    pub(crate) fn probe(ctx: NonNull<ibv_context>, pd: *mut rdma_sys::ibv_pd) -> FlushSupport {
        let Some(flags) = cap_flags_ex(ctx) else {
            return FlushSupport::NONE;
        };
        let support = FlushSupport::from_cap_flags_ex(flags);
        if !support.any() {
            return support;
        }
        let Some(vctx) = extended(ctx) else {
            return FlushSupport::NONE;
        };
        if !has_member(vctx, std::mem::offset_of!(verbs_context, create_qp_ex)) {
            return FlushSupport::NONE;
        }
        // SAFETY: the library's structure has this member (checked above).
        let Some(create) = (unsafe { (*vctx.as_ptr()).create_qp_ex }) else {
            return FlushSupport::NONE;
        };
        // SAFETY: a valid context; a one-entry CQ without channel.
        let cq = unsafe {
            ibv_create_cq(
                ctx.as_ptr(),
                1,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if cq.is_null() {
            return FlushSupport::NONE;
        }
        let mut attr = init_attr(cq, pd, small_cap());
        // SAFETY: a valid context, and an attribute block whose PD and CQ
        // belong to it.
        let qp = unsafe { create(ctx.as_ptr(), &mut attr) };
        let ok = !qp.is_null() && qp_can_flush(qp);
        // SAFETY: our probe QP (if made) and CQ, destroyed in that order.
        unsafe {
            if !qp.is_null() {
                ibv_destroy_qp(qp);
            }
            ibv_destroy_cq(cq);
        }
        if ok {
            support
        } else {
            FlushSupport::NONE
        }
    }

    fn small_cap() -> ibv_qp_cap {
        ibv_qp_cap {
            max_send_wr: 1,
            max_recv_wr: 1,
            max_send_sge: 1,
            max_recv_sge: 1,
            max_inline_data: 0,
        }
    }

    /// An RC attribute block asking for [`SEND_OPS`] on `pd`.
    pub(crate) fn init_attr(
        cq: *mut rdma_sys::ibv_cq,
        pd: *mut rdma_sys::ibv_pd,
        cap: ibv_qp_cap,
    ) -> ibv_qp_init_attr_ex {
        // SAFETY: all-zero is a valid ibv_qp_init_attr_ex (null pointers,
        // zero numbers).
        let mut attr: ibv_qp_init_attr_ex = unsafe { std::mem::zeroed() };
        attr.send_cq = cq;
        attr.recv_cq = cq;
        attr.cap = cap;
        attr.qp_type = ibv_qp_type::IBV_QPT_RC;
        attr.comp_mask = ibv_qp_init_attr_mask::IBV_QP_INIT_ATTR_PD.0
            | ibv_qp_init_attr_mask::IBV_QP_INIT_ATTR_SEND_OPS_FLAGS.0;
        attr.pd = pd;
        attr.send_ops_flags = SEND_OPS;
        attr
    }

    /// The extended QP of `qp` if its provider filled in everything
    /// `post_flush` calls.
    pub(crate) fn qp_ex_for_flush(qp: *mut ibv_qp) -> Option<NonNull<ibv_qp_ex>> {
        // SAFETY: a valid QP created with send_ops_flags (so libibverbs
        // marked it extended); the call only reads it.
        let qpx = NonNull::new(unsafe { ibv_qp_to_qp_ex(qp) })?;
        // SAFETY: a QP created with IBV_QP_EX_WITH_FLUSH by a library whose
        // provider accepted that flag knows `wr_flush` (a provider that
        // predates it refuses the flag), so these members exist.
        let complete = unsafe {
            let q = qpx.as_ptr();
            (*q).wr_start.is_some() && (*q).wr_flush.is_some() && (*q).wr_complete.is_some()
        };
        complete.then_some(qpx)
    }

    fn qp_can_flush(qp: *mut ibv_qp) -> bool {
        qp_ex_for_flush(qp).is_some()
    }

    /// Posts one signaled RDMA FLUSH of `[raddr, raddr + len)` under
    /// `rkey` through the `ibv_wr_*` API; the `ibv_wr_complete` result.
    ///
    /// # Safety
    ///
    /// `qpx` is the extended handle of a live QP created with
    /// [`SEND_OPS`], checked by [`qp_ex_for_flush`], and no other thread
    /// posts to it during the call (no `ibv_post_send` inside the
    /// `ibv_wr_start`..`ibv_wr_complete` critical region).
    pub(crate) unsafe fn post(
        qpx: NonNull<ibv_qp_ex>,
        wr_id: u64,
        rkey: u32,
        raddr: u64,
        len: u32,
        placement: u8,
    ) -> i32 {
        let q = qpx.as_ptr();
        // SAFETY: the members exist (checked by qp_ex_for_flush when the
        // endpoint was made, on a QP the caller keeps alive); reading them
        // copies three function pointers.
        let (Some(start), Some(flush), Some(complete)) =
            (unsafe { ((*q).wr_start, (*q).wr_flush, (*q).wr_complete) })
        else {
            return libc::EOPNOTSUPP;
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        // SAFETY: the caller's contract; the builder calls happen between
        // wr_start and wr_complete as the ibv_wr_post(3) API requires.
        unsafe {
            start(q);
            (*q).wr_id = wr_id;
            (*q).wr_flags = rdma_sys::ibv_send_flags::IBV_SEND_SIGNALED.0;
            flush(
                q,
                rkey,
                raddr,
                len,
                placement,
                rdma_sys::IBV_FLUSH_RANGE as u8,
            );
            complete(q)
        }
    }

    /// `rdma_create_qp_ex` with [`SEND_OPS`]; the QP's extended handle when
    /// the provider took it, `Err` with the errno otherwise (the caller
    /// then creates a plain QP).
    pub(crate) fn create_qp_with_flush(
        id: *mut rdma_sys::rdma_cm_id,
        pd: *mut rdma_sys::ibv_pd,
        cq: *mut rdma_sys::ibv_cq,
        cap: ibv_qp_cap,
    ) -> Result<(ibv_qp_cap, Option<NonNull<ibv_qp_ex>>), std::io::Error> {
        let mut attr = init_attr(cq, pd, cap);
        // SAFETY: an identifier without a QP, a PD of its device and a CQ
        // of its context.
        if unsafe { rdma_sys::rdma_create_qp_ex(id, &mut attr) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: rdma_create_qp_ex set the identifier's qp.
        let qp = unsafe { (*id).qp };
        let qpx = if qp.is_null() {
            None
        } else {
            qp_ex_for_flush(qp)
        };
        Ok((attr.cap, qpx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_bits_map_to_types() {
        assert_eq!(FlushSupport::from_cap_flags_ex(0), FlushSupport::NONE);
        let both = FlushSupport::from_cap_flags_ex((1 << 38) | (1 << 39) | 1);
        assert!(both.global && both.persistent && both.any());
        let global = FlushSupport::from_cap_flags_ex(1 << 38);
        assert!(global.supports(FlushType::Global));
        assert!(!global.supports(FlushType::Persistent));
        let persistent = FlushSupport::from_cap_flags_ex(1 << 39);
        assert!(!persistent.supports(FlushType::Global));
        assert!(persistent.supports(FlushType::Persistent));
        assert!(!FlushSupport::from_cap_flags_ex(1 << 40).any());
    }

    #[test]
    fn placement_values_and_access_rights() {
        assert_eq!(FlushType::Global.placement(), 1);
        assert_eq!(FlushType::Persistent.placement(), 2);
        assert_eq!(FlushType::Global.access(), crate::Access::FLUSH_GLOBAL);
        assert_eq!(
            FlushType::Persistent.access(),
            crate::Access::FLUSH_PERSISTENT
        );
        assert_ne!(crate::Access::FLUSH_GLOBAL, crate::Access::FLUSH_PERSISTENT);
    }
}
