//! `librpmem.so.1`: PMDK 1.12.1's librpmem C API and ABI over the Rust
//! [`rpmem`] crate.
//!
//! C programs written for PMDK's librpmem (and PMDK's own libpmemobj and
//! libpmempool, which `dlopen("librpmem.so.1")`) use this library
//! unchanged: the header `include/librpmem.h` declares what PMDK's does,
//! and the shared object exports exactly PMDK's twelve functions under
//! PMDK's symbol version `LIBRPMEM_1.0`, with the soname `librpmem.so.1`
//! (`build.rs`, `librpmem.map`).
//!
//! The functions are the `unsafe extern "C"` functions of this crate
//! ([`rpmem_create`], ...); their `# Safety` sections are the C contract.
//! See `docs/librpmem.md` for the manual and the differences from PMDK.
//!
//! # Why the symbols are defined in assembly
//!
//! rustc links a cdylib with a version script of its own that makes every
//! `#[no_mangle]` function an unversioned global symbol, and the linker
//! keeps that first assignment over `LIBRPMEM_1.0`. So the Rust functions
//! keep their mangled (local) names, and `global_asm!` below defines each
//! C name as a one-instruction function that jumps to its Rust function
//! (an alias made with `.set` would stay undefined when the Rust function
//! is in another codegen unit). The only version script that names the C
//! functions is ours, which puts them under `LIBRPMEM_1.0`.

#![warn(missing_docs)]
// No panic on untrusted input (issue 15), as in rpmem and rpmemd: outside
// tests, no unwrap, expect, panic! or unchecked indexing.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod api;
pub mod attr;
pub mod env;
pub mod errmsg;

pub use api::{
    rpmem_check_version, rpmem_close, rpmem_create, rpmem_deep_persist, rpmem_drain,
    rpmem_errormsg, rpmem_flush, rpmem_open, rpmem_persist, rpmem_read, rpmem_remove,
    rpmem_set_attr, RpmemPool, HDR_SIZE, MAJOR_VERSION, MINOR_VERSION,
};
pub use attr::RpmemPoolAttr;

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".globl rpmem_create",
    ".type rpmem_create, @function",
    "rpmem_create:",
    "jmp {create}",
    ".size rpmem_create, . - rpmem_create",
    ".globl rpmem_open",
    ".type rpmem_open, @function",
    "rpmem_open:",
    "jmp {open}",
    ".size rpmem_open, . - rpmem_open",
    ".globl rpmem_set_attr",
    ".type rpmem_set_attr, @function",
    "rpmem_set_attr:",
    "jmp {set_attr}",
    ".size rpmem_set_attr, . - rpmem_set_attr",
    ".globl rpmem_close",
    ".type rpmem_close, @function",
    "rpmem_close:",
    "jmp {close}",
    ".size rpmem_close, . - rpmem_close",
    ".globl rpmem_remove",
    ".type rpmem_remove, @function",
    "rpmem_remove:",
    "jmp {remove}",
    ".size rpmem_remove, . - rpmem_remove",
    ".globl rpmem_flush",
    ".type rpmem_flush, @function",
    "rpmem_flush:",
    "jmp {flush}",
    ".size rpmem_flush, . - rpmem_flush",
    ".globl rpmem_drain",
    ".type rpmem_drain, @function",
    "rpmem_drain:",
    "jmp {drain}",
    ".size rpmem_drain, . - rpmem_drain",
    ".globl rpmem_persist",
    ".type rpmem_persist, @function",
    "rpmem_persist:",
    "jmp {persist}",
    ".size rpmem_persist, . - rpmem_persist",
    ".globl rpmem_deep_persist",
    ".type rpmem_deep_persist, @function",
    "rpmem_deep_persist:",
    "jmp {deep_persist}",
    ".size rpmem_deep_persist, . - rpmem_deep_persist",
    ".globl rpmem_read",
    ".type rpmem_read, @function",
    "rpmem_read:",
    "jmp {read}",
    ".size rpmem_read, . - rpmem_read",
    ".globl rpmem_check_version",
    ".type rpmem_check_version, @function",
    "rpmem_check_version:",
    "jmp {check_version}",
    ".size rpmem_check_version, . - rpmem_check_version",
    ".globl rpmem_errormsg",
    ".type rpmem_errormsg, @function",
    "rpmem_errormsg:",
    "jmp {errormsg}",
    ".size rpmem_errormsg, . - rpmem_errormsg",
    create = sym api::rpmem_create,
    open = sym api::rpmem_open,
    set_attr = sym api::rpmem_set_attr,
    close = sym api::rpmem_close,
    remove = sym api::rpmem_remove,
    flush = sym api::rpmem_flush,
    drain = sym api::rpmem_drain,
    persist = sym api::rpmem_persist,
    deep_persist = sym api::rpmem_deep_persist,
    read = sym api::rpmem_read,
    check_version = sym api::rpmem_check_version,
    errormsg = sym api::rpmem_errormsg,
);

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".globl rpmem_create",
    ".type rpmem_create, @function",
    "rpmem_create:",
    "b {create}",
    ".size rpmem_create, . - rpmem_create",
    ".globl rpmem_open",
    ".type rpmem_open, @function",
    "rpmem_open:",
    "b {open}",
    ".size rpmem_open, . - rpmem_open",
    ".globl rpmem_set_attr",
    ".type rpmem_set_attr, @function",
    "rpmem_set_attr:",
    "b {set_attr}",
    ".size rpmem_set_attr, . - rpmem_set_attr",
    ".globl rpmem_close",
    ".type rpmem_close, @function",
    "rpmem_close:",
    "b {close}",
    ".size rpmem_close, . - rpmem_close",
    ".globl rpmem_remove",
    ".type rpmem_remove, @function",
    "rpmem_remove:",
    "b {remove}",
    ".size rpmem_remove, . - rpmem_remove",
    ".globl rpmem_flush",
    ".type rpmem_flush, @function",
    "rpmem_flush:",
    "b {flush}",
    ".size rpmem_flush, . - rpmem_flush",
    ".globl rpmem_drain",
    ".type rpmem_drain, @function",
    "rpmem_drain:",
    "b {drain}",
    ".size rpmem_drain, . - rpmem_drain",
    ".globl rpmem_persist",
    ".type rpmem_persist, @function",
    "rpmem_persist:",
    "b {persist}",
    ".size rpmem_persist, . - rpmem_persist",
    ".globl rpmem_deep_persist",
    ".type rpmem_deep_persist, @function",
    "rpmem_deep_persist:",
    "b {deep_persist}",
    ".size rpmem_deep_persist, . - rpmem_deep_persist",
    ".globl rpmem_read",
    ".type rpmem_read, @function",
    "rpmem_read:",
    "b {read}",
    ".size rpmem_read, . - rpmem_read",
    ".globl rpmem_check_version",
    ".type rpmem_check_version, @function",
    "rpmem_check_version:",
    "b {check_version}",
    ".size rpmem_check_version, . - rpmem_check_version",
    ".globl rpmem_errormsg",
    ".type rpmem_errormsg, @function",
    "rpmem_errormsg:",
    "b {errormsg}",
    ".size rpmem_errormsg, . - rpmem_errormsg",
    create = sym api::rpmem_create,
    open = sym api::rpmem_open,
    set_attr = sym api::rpmem_set_attr,
    close = sym api::rpmem_close,
    remove = sym api::rpmem_remove,
    flush = sym api::rpmem_flush,
    drain = sym api::rpmem_drain,
    persist = sym api::rpmem_persist,
    deep_persist = sym api::rpmem_deep_persist,
    read = sym api::rpmem_read,
    check_version = sym api::rpmem_check_version,
    errormsg = sym api::rpmem_errormsg,
);
