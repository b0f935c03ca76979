//! `rpmem_msg_persist` and `rpmem_msg_persist_resp`.
