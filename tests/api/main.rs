//! The integration test binary: one module per service or concern, all
//! against real servers started by `common::TestApp`.

mod auth;
mod common;
mod grpc_web;
mod migrations;
mod operations;
mod readme;
mod recovery;
mod reflection;
mod rest;
mod system;
