//! Compiles `proto/` with protox (pure Rust: no system `protoc`).
//!
//! Two outputs land in OUT_DIR:
//! - the prost/tonic code for every package, included by `src/pb.rs`;
//! - `descriptor.bin`, the encoded FileDescriptorSet *with imports and source
//!   info*, embedded in the binary for gRPC reflection and written out by
//!   `fileorg descriptor` for Envoy's transcoder. It must come from
//!   `encode_file_descriptor_set()`: a round trip through prost_types drops the
//!   `google.api.http` options and Envoy would then transcode nothing.
//!
//! It also sets FILEORG_GIT_SHA for `fileorg_build_info`: the variable of
//! that name when the build has it (the Dockerfile's build argument: its
//! context has no .git), else `git rev-parse HEAD` of the source tree, else
//! `unknown` (a tarball, no git installed). The build reruns when HEAD moves.

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

    println!("cargo:rustc-env=FILEORG_GIT_SHA={}", git_sha());

    println!("cargo:rerun-if-changed=proto");
    for file in compiler.files() {
        if let Some(path) = file.path() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}

/// The commit being built (see the module docs).
fn git_sha() -> String {
    println!("cargo:rerun-if-env-changed=FILEORG_GIT_SHA");
    if let Ok(sha) = env::var("FILEORG_GIT_SHA")
        && !sha.trim().is_empty()
    {
        return sha.trim().to_string();
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let Some(sha) = git(&["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    // Rebuild when HEAD or the branch it names moves (only files that
    // exist: a missing one would rerun the script on every build).
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let loose = branch
        .as_deref()
        .and_then(|r| git(&["rev-parse", "--git-path", r]))
        .filter(|path| std::path::Path::new(path).exists());
    let packed = || git(&["rev-parse", "--git-path", "packed-refs"]);
    let head = git(&["rev-parse", "--git-path", "HEAD"]);
    let files = [head, loose.clone(), loose.is_none().then(packed).flatten()];
    for file in files.into_iter().flatten() {
        if std::path::Path::new(&file).exists() {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    sha
}
