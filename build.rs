//! Compiles `proto/` with protox (pure Rust: no system `protoc`).
//!
//! Two outputs land in OUT_DIR:
//! - the prost/tonic code for every package, included by `src/pb.rs`;
//! - `descriptor.bin`, the encoded FileDescriptorSet *with imports and source
//!   info*, embedded in the binary for gRPC reflection and written out by
//!   `fileorg descriptor` for Envoy's transcoder. It must come from
//!   `encode_file_descriptor_set()`: a round trip through prost_types drops the
//!   `google.api.http` options and Envoy would then transcode nothing.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut files: Vec<PathBuf> = fs::read_dir("proto/fileorganizer/v1")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .map(|p| p.strip_prefix("proto").map(PathBuf::from))
        .collect::<Result<_, _>>()?;
    files.sort();
    // The rich error details clients decode; kept in the descriptor so Envoy
    // can render them as typed JSON.
    files.push("google/rpc/error_details.proto".into());
    files.push("google/rpc/status.proto".into());

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    fs::write(
        out_dir.join("descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .generate_default_stubs(true)
        .compile_fds(compiler.file_descriptor_set())?;

    println!("cargo:rerun-if-changed=proto");
    for file in compiler.files() {
        if let Some(path) = file.path() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
