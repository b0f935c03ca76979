//! Persistency method policy.
