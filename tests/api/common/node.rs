//! Node.js for the TypeScript tests: builds the npm workspaces (the SDK with tsc, the console
//! with vite) once per test binary, so the tests never run a stale build of either.

use std::{process::Command, sync::OnceLock};

use super::repo_root;

/// Runs `npm run build` (sdk/typescript, then console) the first time it is called; later
/// calls, from any thread, wait for that one build. Needs `npm ci` (scripts/setup-tools.sh).
pub fn build_workspaces() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            repo_root().join("node_modules/.bin/tsc").exists(),
            "node_modules is missing: run scripts/setup-tools.sh (npm ci)"
        );
        let output = Command::new("npm")
            .args(["run", "build", "--silent"])
            .current_dir(repo_root())
            .output()
            .expect("run npm");
        assert!(
            output.status.success(),
            "npm run build failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// `node` in the repository root.
pub fn node() -> Command {
    let mut command = Command::new("node");
    command.current_dir(repo_root());
    command
}
