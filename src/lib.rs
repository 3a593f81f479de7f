//! FileOrganizer Pro: a multi-tenant gRPC service that organizes users' files.
//!
//! Layout:
//! - [`domain`]: the operation's types every layer shares (states, kinds,
//!   phases, record statuses, roles, policies, specs, counters, snapshots,
//!   reports); layers point one way, [`api`] → [`jobs`] → [`engine`] →
//!   [`storage`], with [`db`] beside them, and all use [`domain`];
//! - [`api`]: thin tonic handlers, one module per service;
//! - [`auth`]: credentials (passwords, tokens, API keys) and the principal;
//! - [`db`]: the Postgres pool, migrations and queries; [`schema`] is diesel's;
//! - [`layers`]: tower layers around every RPC; [`observability`]: metrics;
//! - [`health`]: dependency checks and grpc.health.v1; [`console`]: the browser console's files;
//! - [`server`]: assembles and runs the server; [`state`] is what handlers share;
//! - [`config`], [`error`], [`pagination`], [`pb`] (generated code).

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod error;
pub mod infra;
pub mod jobs;
pub mod layers;
pub mod pagination;
pub mod pb;
pub mod reports;
pub mod schema;
pub mod server;
pub mod state;
pub mod storage;

#[cfg(test)]
pub(crate) mod testing;
