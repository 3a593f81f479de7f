//! The organize engine: a library that knows nothing of gRPC.
//!
//! Pipeline: [`scan`] → [`categorize`] → [`duplicates`] → [`plan`] → journal
//! (`db::file_records`) → apply (`jobs::organize`) → report; plus undo and
//! crash recovery (`jobs`). [`progress`] is shared by all steps.

pub mod categorize;
pub mod duplicates;
pub mod plan;
pub mod progress;
pub mod scan;
pub mod template;
