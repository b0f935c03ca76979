//! Out-of-band messages, byte-compatible with PMDK 1.12.1 `rpmem_proto.h`.
