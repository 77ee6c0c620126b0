//! Database console protocols (work in progress).
pub mod complete;
pub mod editor;
pub mod sql;
pub mod table;
