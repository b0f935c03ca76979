//! The 4096-byte pool header of PMDK 1.12.1.
