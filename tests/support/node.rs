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
            && modules.join("playwright-core").exists()
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

/// Runs `script` of [`dir`] with `args` to its end and returns the JSON report it
/// prints as its last line (panics with its output when there is none).
pub async fn report(script: &'static str, args: Vec<String>) -> serde_json::Value {
    install();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(dir())
            .output()
            .expect("node is installed (apt-get install nodejs npm)")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{script} said: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
