//! Services of the contract whose implementation has not landed yet.
//!
//! Their traits are generated with default methods that answer UNIMPLEMENTED
//! (`generate_default_stubs` in build.rs), so registering them keeps the whole
//! API discoverable through reflection and Envoy while nothing pretends to
//! work. The README's API table lists which RPCs are implemented. Each empty
//! impl below is replaced by a real module when its issue lands.

use crate::pb::fileorganizer::v1::{
    file_service_server::FileService, report_service_server::ReportService,
};

/// FileService: every RPC answers UNIMPLEMENTED for now.
#[derive(Debug, Default)]
pub struct Files;

#[tonic::async_trait]
impl FileService for Files {}

/// ReportService: every RPC answers UNIMPLEMENTED for now.
#[derive(Debug, Default)]
pub struct Reports;

#[tonic::async_trait]
impl ReportService for Reports {}
