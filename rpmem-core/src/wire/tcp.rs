//! Framing of the TCP data path.
