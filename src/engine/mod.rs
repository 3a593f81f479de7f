//! The organize engine: a library that knows nothing of gRPC.
//!
//! Pipeline: scan → categorize → find duplicates → plan → journal → apply →
//! report; plus undo and crash recovery.

pub mod categorize;
pub mod template;
