//! The integration test binary: one module per service or concern, all
//! against real servers started by `common::TestApp`.

mod audit;
mod auth;
mod cache;
mod common;
mod console;
mod files;
mod full_disk;
mod grpc_web;
mod hostile;
mod isolation;
mod kills;
mod limits;
mod loadtest;
mod logs;
mod metrics;
mod migrations;
mod operations;
mod outages;
mod probes;
mod python_sdk;
mod readme;
mod recovery;
mod reflection;
mod reports;
mod rest;
mod rest_conformance;
mod search;
mod soak;
mod streams;
mod system;
mod tokens;
mod tree_changes;
mod typescript_sdk;
