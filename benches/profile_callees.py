"""Where the time under one function goes, from a profile with call stacks.

    RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release \
        --target-dir /tmp/fp-target -p quickstart-axum
    # run /tmp/fp-target/release/axum-quickstart under wrk (server on core 0), then:
    perf record -F 2999 --call-graph fp -p <server pid> -o /tmp/fp.data -- sleep 9
    python3 benches/profile_callees.py /tmp/fp.data 'PaywallService<S> as tower_service::Service'

For every sample whose stack holds a frame matching the pattern (the outermost one),
adds the sample to that frame's direct callee (or to "(self)") and, leaving out the
inner service's subtree (axum's route future, the handler), to the leaf function.
Prints both as shares of all samples: multiplied by the server's CPU time per request,
they are microseconds per request. `profile_share.py` groups self time by library
instead; this one needs a build with frame pointers, or user-space stacks are cut
short.
"""

import collections
import re
import subprocess
import sys

INNER = ("RouteFuture", "Handler<")


def stacks(data):
    """Each sample's stack, leaf first, as function names."""
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "ip,sym"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stack = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            if stack:
                yield stack
            stack = []
            continue
        parts = line.split(" ", 1)
        stack.append(parts[1] if len(parts) > 1 else parts[0])
    if stack:
        yield stack


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, anchor = sys.argv[1], sys.argv[2]
    total = 0
    under = 0
    callees = collections.Counter()
    leaves = collections.Counter()
    for stack in stacks(data):
        total += 1
        found = [i for i, frame in enumerate(stack) if anchor in frame]
        if not found:
            continue
        under += 1
        top = max(found)
        callee = stack[top - 1] if top > 0 else "(self)"
        callees[re.sub(r"<[^<>]*>", "<>", callee)[:110]] += 1
        if any(any(inner in frame for inner in INNER) for frame in stack[:top]):
            leaves["(inner service)"] += 1
        else:
            leaves[stack[0][:110]] += 1
    if total == 0:
        sys.exit("no samples")
    print(f"{100 * under / total:6.2f} %  under {anchor} ({total} samples)")
    print("by direct callee:")
    for name, count in callees.most_common(25):
        print(f"{100 * count / total:6.2f} %  {name}")
    print("by leaf function:")
    for name, count in leaves.most_common(30):
        print(f"{100 * count / total:6.2f} %  {name}")


if __name__ == "__main__":
    main()
