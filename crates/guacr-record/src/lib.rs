//! guacr-record
