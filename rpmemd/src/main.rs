//! rpmemd — the target process of rpmem.
fn main() {}
