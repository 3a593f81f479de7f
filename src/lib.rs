//! FileOrganizer Pro: a multi-tenant gRPC service that organizes users' files.
//!
//! Layout (docs/architecture.md says what each may import; `tests/architecture.rs`
//! checks it):
//! - [`domain`]: the vocabulary every layer shares (states, kinds, phases,
//!   record statuses, roles, policies, built-in categories, specs, counters,
//!   snapshots, reports); it imports nothing else of the crate;
//! - [`api`]: thin tonic handlers, one module per service; the one protobuf
//!   mapping (`api::convert`);
//! - [`jobs`]: workers that claim operations and run them;
//! - [`engine`]: the organize pipeline (scan, categorize, duplicates, plan);
//! - [`storage`]: the only code that touches users' files;
//! - [`db`]: the Postgres pool, migrations and queries; [`schema`] is diesel's;
//! - [`reports`]: report computation and the CSV/JSON/HTML writers;
//! - [`auth`]: credentials (passwords, tokens, API keys, scopes), the principal;
//! - [`layers`]: tower layers around every RPC (context, auth, limits, metrics);
//! - [`infra`]: cache, rate limits, metrics, health, telemetry, console files;
//! - [`server`]: assembles and runs the server; [`state`]: the handles handlers share;
//! - [`config`], [`error`] (the one error story), [`pagination`], [`pb`] (generated).

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub(crate) mod error;
pub mod infra;
pub mod jobs;
pub mod layers;
pub(crate) mod pagination;
pub mod pb;
pub mod reports;
pub mod schema;
pub mod server;
pub mod state;
pub mod storage;

#[cfg(test)]
pub(crate) mod testing;
