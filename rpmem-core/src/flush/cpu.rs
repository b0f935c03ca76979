//! CPU flush instructions.
