//! Criterion benchmarks of the paywall crates, kept out of the crates' own
//! dev-dependencies so that `cargo test -p paywall` builds only what the core's tests
//! need. Run them with `cargo bench -p paywall-benches` (or `--bench engine`, `verify`,
//! `limits`, `full_path`, `shared`); `benches/e2e.sh` loads the quickstart servers end
//! to end. Figures and their commands are in the workspace's BENCHMARKS.md.

#![forbid(unsafe_code)]
