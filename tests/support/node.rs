//! The npm packages the tests run with node (`tests/node`): installed from its
//! lockfile with `npm ci` the first time a test binary needs them (`.ci/run` does it
//! beforehand).

use std::process::Command;
use std::sync::OnceLock;

/// `tests/node`.
pub fn dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/node")
}

/// `npm ci` in [`dir`] unless its packages are there, once per test binary.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let modules = std::path::Path::new(dir()).join("node_modules");
        if modules.join("oidc-provider").exists()
            && modules.join("@modelcontextprotocol/sdk").exists()
        {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir())
            .status()
            .expect("npm is installed (apt-get install nodejs npm)");
        assert!(status.success(), "npm ci in {} failed: {status}", dir());
    });
}
