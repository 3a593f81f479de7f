//! Subcommands of the `fileorg` binary that are not the server: they live in
//! the binary, not the library, and nothing in the library imports them.
//!
//! - [`loadtest`]: `fileorg loadtest`, the benchmark client;
//! - [`dbtools`]: `fileorg db optimize | analyze | stats`;
//! - [`find_duplicates`]: `fileorg find-duplicates DIR`, the engine's
//!   duplicate finder on a local folder.

pub mod dbtools;
pub mod find_duplicates;
pub mod loadtest;
