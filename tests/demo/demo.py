#!/usr/bin/env python3
"""make demo: the problem retrysafe solves, and the fix, in about 40 s.

A payment API takes 2 s to create a charge. An unmodified curl gives up
after 1 s and retries. Without retrysafe each retry is a new charge. If the
API honours Idempotency-Key (like Stripe), `retrysafe run` (tag mode) is
enough: the retries carry the first attempt's key. If it knows nothing of
keys, `retrysafe run --mode guard` keeps the first answer when it comes
late and replays it to the retry, which never reaches the server.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from servers import KeyServer  # noqa: E402

TOOL = os.path.join(ROOT, "build", "retrysafe")
DELAY = 2.0


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def attempt(label, mode, honour_keys, env):
    server = KeyServer(delay=DELAY, honour_keys=honour_keys)
    url = server.url("/v1/charges")
    prefix = []
    if mode:
        prefix = [TOOL, "run", "--hosts", server.authority]
        prefix += ["--mode", mode] if mode != "tag" else []
        prefix += ["--"]
    curl = ["curl", "-sS", "--max-time", "1", "--retry", "3",
            "--retry-delay", "1", "--retry-all-errors", "-d", "amount=2000",
            url]
    print("%s:" % label)
    print("  $ %s" % " ".join(prefix + curl).replace(ROOT + "/", ""))
    start = time.monotonic()
    p = subprocess.run(prefix + curl, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=40)
    took = time.monotonic() - start
    server.wait_idle(DELAY + 5)   # let the work of abandoned attempts finish
    server.stop()
    keys = sorted({r["key"] for r in server.requests if r["key"]})
    if p.returncode == 0:
        outcome = "got " + p.stdout.decode(errors="replace").strip()
    else:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        outcome = "gave up: " + (err[-1] if err else "exit %d" % p.returncode)
    print("  curl: finished in %.1f s, %s" % (took, outcome))
    print("  server: %s, %s" % (
        plural(len(server.requests), "request"), plural(server.count, "charge")))
    print()
    return label, server.count


def main():
    if not shutil.which("curl"):
        print("demo: curl is not installed", file=sys.stderr)
        return 1
    if not os.path.exists(TOOL):
        print("demo: build/retrysafe missing; run make", file=sys.stderr)
        return 1
    state = tempfile.mkdtemp(prefix="retrysafe-demo-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RETRYSAFE_") and k != "LD_PRELOAD"
           and "proxy" not in k.lower()}
    # The demo keeps its journal and secret to itself.
    env.update(XDG_STATE_HOME=state, RETRYSAFE_LOG="error")
    print(textwrap.fill(" ".join(__doc__.strip().split("\n\n")[1].split()),
                        76))
    print()
    results = []
    honouring = "API honouring keys"
    ignorant = "API ignoring keys"
    try:
        for label, mode, honour in (
                (honouring + ", without retrysafe", None, True),
                (honouring + ", retrysafe (tag)", "tag", True),
                (ignorant + ", without retrysafe", None, False),
                (ignorant + ", retrysafe (tag)", "tag", False),
                (ignorant + ", retrysafe (guard)", "guard", False)):
            results.append(attempt(label, mode, honour, env))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    width = max(len(label) for label, _ in results) + 1
    for label, count in results:
        print("%-*s %s" % (width, label + ":", plural(count, "charge")))
    counts = [count for _, count in results]
    # Without the shim, and with keys alone against a server that ignores
    # them, the retries charge again; tag and guard mode charge once.
    ok = (counts[0] > 1 and counts[1] == 1 and counts[2] > 1 and
          counts[3] > 1 and counts[4] == 1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
