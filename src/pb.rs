//! Generated protobuf and gRPC code. Module nesting mirrors the proto packages
//! because the generated code refers to siblings with `super::super::…`.

#![allow(clippy::all, missing_docs)]

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod fileorganizer {
    pub mod v1 {
        tonic::include_proto!("fileorganizer.v1");
    }
}

/// The encoded FileDescriptorSet (with imports and source info) of every
/// proto this server implements: served by reflection and written by
/// `fileorg descriptor` for Envoy. Byte-for-byte what protox produced.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
