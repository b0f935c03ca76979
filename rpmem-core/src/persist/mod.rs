//! Per-lane persist engines of the initiator and the target.
