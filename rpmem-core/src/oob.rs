//! Sans-IO out-of-band (ssh channel) client and server machines.
