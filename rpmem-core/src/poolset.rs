//! The pool set file grammar of `poolset(5)`.
