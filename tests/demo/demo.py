#!/usr/bin/env python3
"""make demo: the problem retrysafe solves, and the fix, in about 20 s.

A payment API that honours Idempotency-Key (like Stripe) takes 2 s to
create a charge. An unmodified curl gives up after 1 s and retries. Without
retrysafe each retry is a new charge; under `retrysafe run` the retries
carry the first attempt's key and the customer is charged once.
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


def attempt(label, shim, env):
    server = KeyServer(delay=DELAY)
    url = server.url("/v1/charges")
    prefix = [TOOL, "run", "--hosts", server.authority, "--"] if shim else []
    curl = ["curl", "-sS", "--max-time", "1", "--retry", "3",
            "--retry-all-errors", "-d", "amount=2000", url]
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
    print("  curl: %d attempt(s) in %.1f s, %s" % (len(server.requests), took,
                                                  outcome))
    print("  server: %s, %s" % (
        plural(server.count, "charge"),
        "Idempotency-Key: " + ", ".join(keys) if keys
        else "no Idempotency-Key"))
    print()
    return label, server.count, keys


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
    print(textwrap.fill(__doc__.strip().split("\n\n")[1], 76))
    print()
    results = []
    try:
        results.append(attempt("without retrysafe", False, env))
        results.append(attempt("with retrysafe", True, env))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    width = max(len(label) for label, _, _ in results) + 1
    for label, count, keys in results:
        print("%-*s %s%s" % (width, label + ":", plural(count, "charge"),
                             "  (key %s)" % keys[0] if keys else ""))
    without, with_ = results[0][1], results[1][1]
    return 0 if with_ == 1 and without > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
