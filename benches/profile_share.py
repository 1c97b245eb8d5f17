"""Shares of a server's CPU samples by part, from a `perf record` file.

    python3 benches/profile_share.py /tmp/profiles/quickstart-hs256.data

Reads `perf report` (self time, no call graph) and adds each symbol's share to the first
part that matches its library and name: the kernel, clock reads, the allocator, `mem*`,
SQLite, moka, hashing, JWT verification, JSON, the paywall's own crates (what the
compiler did not inline elsewhere), tracing, HTTP (hyper, http, bytes, axum, actix,
tower), the tokio runtime, the rest. `benches/e2e.sh` runs it
for every target when PROFILE is set.
"""

import re
import subprocess
import sys

# (part, pattern on the library, pattern on the symbol): the first match wins.
PARTS = [
    ("kernel", r"kernel", r""),
    ("clock reads (vDSO)", r"vdso", r""),
    ("allocator", r"libc", r"malloc|free|realloc|calloc|_int_|tcache|consolidate"),
    ("mem* (copies, compares)", r"libc", r"mem|str"),
    ("libc (other)", r"libc", r""),
    # The binary's C code is the bundled SQLite: its symbols have no Rust path.
    ("SQLite", r"", r"sqlite3|rusqlite|^\[\.\] [A-Za-z_][A-Za-z0-9_.]*$"),
    ("moka", r"", r"moka|crossbeam|quanta|tagptr"),
    ("hashing", r"", r"siphash|SipHasher|core::hash|Hasher|ahash|foldhash"),
    ("JWT (verify, HMAC, base64)", r"", r"jsonwebtoken|hmac|sha2|ring::|aws_lc|base64"),
    ("JSON", r"", r"serde_json|serde::"),
    ("paywall crates", r"", r"paywall"),
    ("tracing and metrics", r"", r"tracing|metrics"),
    ("HTTP (hyper, http, bytes, axum, actix, tower)", r"", r"hyper|httparse|http::|bytes::|axum|actix|h1::|tower"),
    ("tokio runtime and mio", r"", r"tokio|mio::|parking_lot"),
]


def shares(path):
    report = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym",
         "-g", "none", "--percent-limit", "0", "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout
    totals = {name: 0.0 for name, _, _ in PARTS}
    totals["other"] = 0.0
    line = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+(.*)$")
    for row in report.splitlines():
        match = line.match(row)
        if not match:
            continue
        share, dso, symbol = float(match.group(1)), match.group(2), match.group(3)
        for name, library, pattern in PARTS:
            if re.search(library, dso) and re.search(pattern, symbol):
                totals[name] += share
                break
        else:
            totals["other"] += share
    return totals


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, share in shares(sys.argv[1]).items():
        print(f"{share:6.1f} %  {name}")


if __name__ == "__main__":
    main()
