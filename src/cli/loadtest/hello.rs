//! The ceiling for `--mix get-operation`: a bare tonic server answering
//! `OperationService.GetOperation` with a fixed, realistically filled
//! operation, without a database, cache, auth or any tower layer.
//!
//! `fileorg loadtest --serve-hello-world ADDR` runs it (in its own process,
//! like `fileorg serve`), and `fileorg loadtest --addr ADDR --hello-world
//! --concurrent C --mix get-operation` drives it with the very client code
//! that measures the real server, so the two figures differ only by what the
//! real server does per request. Every other RPC answers UNIMPLEMENTED.

use std::net::SocketAddr;

use fileorganizer::pb::fileorganizer::v1::{
    self as pb, OperationState,
    operation_service_server::{OperationService, OperationServiceServer},
};
use tonic::{Request, Response, Status};

/// The operation name the load clients ask for.
pub const OPERATION: &str = "operations/00000000-0000-4000-8000-000000000000";

struct Hello;

#[tonic::async_trait]
impl OperationService for Hello {
    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let name = request.into_inner().name;
        let now = prost_types::Timestamp {
            seconds: 1_796_000_000,
            nanos: 0,
        };
        Ok(Response::new(pb::Operation {
            name,
            state: OperationState::Succeeded as i32,
            source_path: "inbox".into(),
            destination_path: "organized".into(),
            layout_template: "{category}/{year}/{name}".into(),
            counters: Some(Default::default()),
            create_time: Some(now),
            start_time: Some(now),
            end_time: Some(now),
            update_time: Some(now),
            ..Default::default()
        }))
    }
}

/// Serves until the process is stopped (loopback addresses only).
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--serve-hello-world only listens on loopback"
    );
    println!("hello-world GetOperation server on {addr}");
    tonic::transport::Server::builder()
        .add_service(OperationServiceServer::new(Hello))
        .serve(addr)
        .await?;
    Ok(())
}
