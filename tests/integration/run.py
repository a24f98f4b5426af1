#!/usr/bin/env python3
"""The integration test runner.

usage: python3 tests/integration/run.py [-j N] [-v] [--keep] [--list] [--musl]
                                       [--build DIR] [FILTER...]

Runs every function test_* of tests/integration/test_*.py whose name (or
"module.name") contains one of the FILTERs, each in its own process group
with a fresh temp directory and a time limit (10 s unless the test is marked
with @timeout). Prints one line per test, PASS, FAIL or SKIP, then the time
taken and, last, "N passed, N failed" (", N skipped" when some were). Exits
1 if any test failed.

  -j N     run N tests at a time (default 2)
  -v       after a failing test, print everything it wrote
  --keep   keep the temp directories (they are printed)
  --list   print the selected test names and exit
  --musl   run the tests marked @musl against build/musl (make musl): the
           shim, tool and C clients built with musl-gcc
  --build DIR  test the shim, tool and C clients in DIR (default build).
           When its library is sanitized (make SANITIZE=address,undefined
           builds build/san-address-undefined), the ASan runtime is
           preloaded ahead of it, and a test fails when any of its programs
           wrote a sanitizer report
"""

import argparse
import concurrent.futures
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if "--musl" in sys.argv:
    # Before the harness is imported: it picks build/musl's files.
    os.environ["RETRYSAFE_TEST_LIBC"] = "musl"
if "--build" in sys.argv[1:-1]:
    os.environ["RETRYSAFE_TEST_BUILD"] = sys.argv[sys.argv.index("--build") + 1]

import harness  # noqa: E402


# Files run in this order (the harness checks itself first); any other
# test_*.py follows in alphabetical order.
ORDER = ["test_harness.py", "test_programs.py", "test_keys.py",
         "test_filters.py", "test_framing.py", "test_connections.py",
         "test_launcher.py",
         "test_retry.py"]


def discover():
    """(module, name, function) for each test, in file and definition
    order."""
    tests, seen = [], {}
    files = sorted(fn for fn in os.listdir(HERE)
                   if fn.startswith("test_") and fn.endswith(".py"))
    files.sort(key=lambda fn: ORDER.index(fn) if fn in ORDER else len(ORDER))
    for fn in files:
        mod = importlib.import_module(fn[:-3])
        for name, obj in vars(mod).items():
            if name.startswith("test_") and callable(obj):
                if name in seen:
                    raise SystemExit("duplicate test name %s in %s and %s"
                                     % (name, seen[name], fn))
                seen[name] = fn
                tests.append((mod.__name__, name, obj))
    return tests


def run_child(module, name, tmp, result_path):
    """Runs one test in this process and writes its result."""
    os.chdir(tmp)
    status, reason = "pass", ""
    ctx = None
    try:
        mod = importlib.import_module(module)
        ctx = harness.Context(tmp)
        getattr(mod, name)(ctx)
    except harness.Skip as e:
        status, reason = "skip", str(e)
    except AssertionError as e:
        status, reason = "fail", str(e) or "assertion failed"
        traceback.print_exc()
    except BaseException as e:   # noqa: B036 - a test may raise anything
        status, reason = "fail", "%s: %s" % (type(e).__name__, e)
        traceback.print_exc()
    finally:
        if ctx is not None:
            ctx.close()
    with open(result_path, "w") as f:
        json.dump({"status": status, "reason": reason}, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)   # servers' daemon threads must not hold the exit


def run_one(module, name, limit, root):
    tmp = os.path.join(root, name)
    os.makedirs(tmp)
    result_path = os.path.join(root, name + ".result")
    log_path = os.path.join(root, name + ".log")
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", module,
             name, tmp, result_path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        # End the test's whole process group: its programs and their
        # children, whether or not the test finished.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    elapsed = time.monotonic() - start
    status, reason = result(proc, timed_out, limit, result_path, log_path)
    # After the whole group ended: a report of any program of the test,
    # even one it expected to fail, fails it.
    reports = harness.sanitizer_reports(tmp)
    if reports:
        with open(log_path, "a") as log:
            for fn, text in reports:
                log.write("== sanitizer report %s\n%s" % (fn, text))
        status, reason = "fail", "%d sanitizer report(s); %s: %s (%s)" % (
            len(reports), reports[0][0], reports[0][1].strip()[:1000],
            reason or "the test itself passed")
    return status, reason, elapsed, log_path


def result(proc, timed_out, limit, result_path, log_path):
    """(status, reason) of the test run by proc."""
    if timed_out:
        return "fail", "timed out after %gs" % limit
    try:
        with open(result_path) as f:
            res = json.load(f)
    except (OSError, ValueError):
        with open(log_path, "rb") as f:
            tail = f.read()[-500:].decode(errors="replace")
        return ("fail", "test process died (exit %s): %s"
                % (proc.returncode, tail))
    return res["status"], res["reason"]


def one_line(text, limit=1500):
    text = " | ".join(l.rstrip() for l in text.strip().splitlines())
    return text if len(text) <= limit else text[:limit] + " ..."


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, HERE)
        run_child(*sys.argv[2:6])
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--musl", action="store_true")
    ap.add_argument("--build", metavar="DIR")   # read above, before harness
    ap.add_argument("filters", nargs="*")
    args = ap.parse_args()

    tests = discover()
    if args.musl:
        tests = [t for t in tests if getattr(t[2], "musl", False)]
    if args.filters:
        tests = [t for t in tests
                 if any(f in t[1] or f in "%s.%s" % (t[0], t[1])
                        for f in args.filters)]
    if args.list:
        for _, name, _ in tests:
            print(name)
        return 0
    if not tests:
        print("no test matches %s" % " ".join(args.filters), file=sys.stderr)
        print("0 passed, 0 failed")
        return 1

    for err in harness.build_clients():
        print(err, file=sys.stderr)

    root = tempfile.mkdtemp(prefix="retrysafe-it-")
    start = time.monotonic()
    counts = {"pass": 0, "fail": 0, "skip": 0}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [(name, pool.submit(run_one, module, name,
                                      getattr(fn, "timeout",
                                              harness.DEFAULT_TIMEOUT), root))
                   for module, name, fn in tests]
        for name, fut in futures:
            status, reason, elapsed, log_path = fut.result()
            counts[status] += 1
            if status == "pass":
                print("PASS %s" % name, flush=True)
            else:
                print("%s %s: %s" % (status.upper(), name, one_line(reason)),
                      flush=True)
            if status == "fail" and args.verbose:
                with open(log_path, "rb") as f:
                    sys.stdout.write(f.read().decode(errors="replace"))
                sys.stdout.flush()
    took = time.monotonic() - start
    if args.keep:
        print("temp directories kept in %s" % root)
    else:
        subprocess.run(["rm", "-rf", root])
    print("%d tests in %.1fs" % (len(tests), took))
    line = "%d passed, %d failed" % (counts["pass"], counts["fail"])
    if counts["skip"]:
        line += ", %d skipped" % counts["skip"]
    print(line)
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
