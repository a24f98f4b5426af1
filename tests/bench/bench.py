#!/usr/bin/env python3
"""make bench: what the shim costs, measured side by side in one run.

Each case runs against its baseline (mostly: the same program without the
shim), alternating, several rounds; the median of each side is reported
with the ratio measured/baseline. Nothing here is asserted: figures are
printed for README.md and for judging changes.

  a. write() and send() on fds the shim does not track
  b. wrk POSTs over loopback to nginx: the shim preloaded into wrk
  c. the request parser alone, whole requests and 1-byte fragments
  d. the journal: tagged POSTs from 1, 4 and 8 processes at once
  e. process start-up (hyperfine)
  f. the alternative: mitmproxy adding keys in front of nginx
  g. the journal in Redis against the SQLite journal (redis-server on
     loopback)

Settings (environment): BENCH_ROUNDS (3), BENCH_CALLS (10000000 write()
calls), BENCH_PAIRS (1000000 send()+recv() pairs), BENCH_WRK_ROUNDS (3),
BENCH_WRK_SECONDS (2), BENCH_STARTUP_RUNS (300); BENCH_ONLY (abcdefg): the
sections to run, by letter. The defaults keep the whole run near 4 minutes
on a 2-vCPU machine.
"""
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
BENCH = os.path.join(ROOT, "tests", "bench")
SHIM = os.path.join(BUILD, "libretrysafe.so")
TOOL = os.path.join(BUILD, "retrysafe")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CALLS = int(os.environ.get("BENCH_CALLS", "10000000"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "1000000"))
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "3"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "2"))
WRK_THREADS, WRK_CONNECTIONS = 2, 32
STARTUP_RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "300"))


# ---- running and reporting --------------------------------------------------

def run(cmd, env):
    """Runs a bench program; its output is "name value" lines."""
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def base_env(state):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYSAFE_")}
    env.pop("LD_PRELOAD", None)
    env["XDG_STATE_HOME"] = state
    env["RETRYSAFE_SECRET"] = "bench-secret"
    return env


def alternate(baseline, case, rounds=None):
    """Calls baseline() and case() in turn, rounds times; each returns a
    dict of figures. Returns the two lists of dicts."""
    off, on = [], []
    for _ in range(rounds or ROUNDS):
        off.append(baseline())
        on.append(case())
    return off, on


def median(results, metric):
    return statistics.median(r[metric] for r in results)


def run_parallel(cmd, env, procs):
    """Total requests/s of procs copies of cmd started together."""
    started = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(procs)]
    total = 0.0
    for p in started:
        out, _ = p.communicate()
        total += float(out.split()[1])
    return {"requests_per_s": total}


def header():
    print(f"{'case':<44} {'baseline':>12} {'measured':>12} {'unit':<8} {'ratio':>8}")


def section(title):
    print("\n" + textwrap.fill(title, width=100, subsequent_indent="   "))


def row(name, unit, off, on):
    print(f"{name:<44} {off:>12.2f} {on:>12.2f} {unit:<8} {on / off:>7.3f}x")


def rows(name, off, on, metrics):
    """One row per (metric, unit, suffix) of two lists of results."""
    for metric, unit, label in metrics:
        row(f"{name}{label}", unit, median(off, metric), median(on, metric))


def note(text):
    print(f"  {text}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds):
    """True once something accepts on port; False if proc ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- a. untracked fds ------------------------------------------------------

def bench_untracked(off, on, port):
    section(f"a. untracked fds: {CALLS} write() calls to /dev/null, {PAIRS} send()+recv() "
            f"pairs on a socketpair, per run; baseline: no shim")
    loop = [os.path.join(BUILD, "bench", "write_loop"), str(CALLS), str(port), str(PAIRS)]
    w_off, w_on = alternate(lambda: run(loop, off), lambda: run(loop, on))
    row("write() on an untracked fd", "ns/call",
        median(w_off, "write_ns"), median(w_on, "write_ns"))
    row("send()+recv() on an untracked socket", "ns/pair",
        median(w_off, "send_recv_ns"), median(w_on, "send_recv_ns"))


# ---- b and f. wrk over loopback --------------------------------------------

NGINX_CONF = """\
# nginx for make bench: one process in the foreground, as this user.
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/err.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # wrk keeps its connections: no reconnects every 1000 requests.
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        # Answers the Idempotency-Key it was sent: checks the proxy adds one.
        location = /key {{ return 200 "$http_idempotency_key\\n"; }}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def start_nginx(tmp):
    """nginx on a free loopback port; returns (process, port) or a reason."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not nginx:
        return None, "nginx not installed (apt-get install nginx-light)"
    home = os.path.join(tmp, "nginx")
    os.makedirs(home)
    port = free_port()
    conf = os.path.join(home, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=home, port=port))
    proc = subprocess.Popen([nginx, "-p", home, "-c", conf, "-e", os.path.join(home, "err.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_port(port, proc, 10):
        stop(proc)
        with open(os.path.join(home, "err.log")) as f:
            return None, "nginx did not start: " + f.read().strip()
    return proc, port


def nginx_reads_bodies(port):
    """True if nginx reads the bodies of POSTs it answers with `return`:
    two POSTs sent back to back on one connection get two answers, where
    an unread body would be taken for the next request (400)."""
    body = b'{"x":"' + b"POST / HTTP/1.1\r\n" * 64 + b'"}'
    req = (b"POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req * 2)
        got = b""
        while got.count(b"ok\n") < 2:
            data = s.recv(65536)
            if not data:
                break
            got += data
    return got.count(b"HTTP/1.1 200 OK") == 2


def parse_wrk(out):
    """requests/s, latency p50 and p99 in ms, and completed requests from
    wrk --latency output; errors: wrk's error lines, if any."""
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(m.group(1)) * scale[m.group(2)]

    errors = [line.strip() for line in out.splitlines()
              if line.strip().startswith(("Socket errors", "Non-2xx"))]
    return {
        "requests_per_s": float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1)),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "requests": int(re.search(r"^\s*(\d+) requests in ", out, re.M).group(1)),
        "errors": errors,
    }


def run_wrk(url, env, nonce):
    cmd = [shutil.which("wrk"), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}",
           f"-d{WRK_SECONDS}s", "--latency", "-s", os.path.join(BENCH, "wrk_post.lua"),
           url, "--", nonce]
    return parse_wrk(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                    check=True).stdout)


def journal_rows(state):
    """Rows in the journal under state (XDG_STATE_HOME), counted from
    `retrysafe dump --json`, one JSON object a line; or an error."""
    path = os.path.join(state, "retrysafe", "journal.db")
    if not os.path.exists(path):
        return None, "no journal at " + path
    dump = subprocess.run([TOOL, "dump", "--json", "--journal", path],
                          capture_output=True, text=True)
    if dump.returncode != 0:
        return None, dump.stderr.strip()
    return sum(1 for line in dump.stdout.splitlines() if line.strip()), None


WRK_METRICS = [("requests_per_s", "req/s", ", requests/s"),
               ("p50_ms", "ms", ", latency p50"),
               ("p99_ms", "ms", ", latency p99")]


def report_errors(results, name):
    errors = [e for r in results for e in r["errors"]]
    if errors:
        note(f"{name}: wrk reported errors: " + "; ".join(sorted(set(errors))))


def report_journal(name, results):
    """The journal check of one case: every request wrk completed is in its
    run's journal. wrk stops with up to one request in flight on each
    connection; those may be journaled too."""
    journaled = sum(r["journaled"] for r in results if r["journaled"] is not None)
    completed = sum(r["requests"] for r in results)
    problems = [r["journal_error"] for r in results if r["journal_error"]]
    short = [r for r in results if r["journaled"] is not None and r["journaled"] < r["requests"]]
    over = [r for r in results
            if r["journaled"] is not None and r["journaled"] > r["requests"] + WRK_CONNECTIONS]
    if problems:
        verdict = "NOT CHECKED: " + "; ".join(problems)
    elif short:
        verdict = (f"INCOMPLETE: {sum(r['requests'] - r['journaled'] for r in short)} "
                   f"completed requests missing in {len(short)} of {len(results)} runs")
    elif over:
        verdict = f"MORE than expected in {len(over)} of {len(results)} runs"
    else:
        verdict = "complete"
    note(f"{name}: journaled {journaled} of {completed} requests ({len(results)} runs): "
         f"{verdict}")


def bench_wrk(tmp, port):
    section(f"b. wrk POSTs to nginx over loopback, {WRK_THREADS} threads, {WRK_CONNECTIONS} "
            f"connections, ~130 B JSON bodies, each unique; {WRK_ROUNDS} rounds of "
            f"{WRK_SECONDS} s per side (shorter than the 4 s a single run would use, to keep "
            f"make bench near 4 minutes); baseline: wrk without the shim, before each run. "
            f"Journal check: every request wrk completed must be in its run's journal; "
            f"wrk stops with up to {WRK_CONNECTIONS} requests in flight (one a connection), "
            f"which may be journaled too but are not in wrk's count")
    url = f"http://127.0.0.1:{port}/v1/orders"
    runs = itertools.count()

    def one_run(extra, journaled):
        """One wrk run with a state directory of its own: a fresh journal
        (guard mode would replay an earlier run's requests from an old one)."""
        state = os.path.join(tmp, f"wrk-{next(runs)}")
        os.makedirs(state)
        result = run_wrk(url, dict(base_env(state), **extra), os.path.basename(state))
        if journaled:
            result["journaled"], result["journal_error"] = journal_rows(state)
        return result

    hosts = f"127.0.0.1:{port}"
    cases = [
        ("wrk, no shim (A/A: the noise)", {}, False),
        ("wrk, shim, host not enabled",
         {"LD_PRELOAD": SHIM, "RETRYSAFE_HOSTS": "not-this-host.example"}, False),
        ("wrk, tag mode, journal",
         {"LD_PRELOAD": SHIM, "RETRYSAFE_HOSTS": hosts}, True),
        ("wrk, guard mode, journal",
         {"LD_PRELOAD": SHIM, "RETRYSAFE_HOSTS": hosts, "RETRYSAFE_MODE": "guard"}, True),
    ]
    # One loop over rounds, each case after its own baseline run.
    results = [([], []) for _ in cases]
    for _ in range(WRK_ROUNDS):
        for (name, extra, journaled), (off, on) in zip(cases, results):
            off.append(one_run({}, False))
            on.append(one_run(extra, journaled))
    for (name, extra, journaled), (off, on) in zip(cases, results):
        rows(name, off, on, WRK_METRICS)
        report_errors(off + on, name)
        if journaled:
            report_journal(name, on)
    return results[0][0]


def mitm_adds_keys(port):
    """True if the proxy on port adds a 32-hex-digit key (nginx's /key
    answers the key it was sent)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/key", data=b'{"a":1}',
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return re.fullmatch(r"[0-9a-f]{32}\n", answer.read().decode()) is not None


def bench_mitm(tmp, nginx_port):
    section("f. the alternative: mitmdump (reverse proxy, an addon adding an HMAC-SHA256 "
            "Idempotency-Key) in front of nginx, the same wrk, no shim; baseline: wrk to "
            f"nginx directly, before each run; {WRK_ROUNDS} rounds of {WRK_SECONDS} s")
    mitmdump = shutil.which("mitmdump")
    if not mitmdump:
        note("skipped: mitmdump not installed (apt-get install mitmproxy)")
        return
    port = free_port()
    env = base_env(os.path.join(tmp, "mitm-state"))
    log_path = os.path.join(tmp, "mitmdump.log")
    log = open(log_path, "w")
    # Its own confdir: mitmproxy writes a CA there, not in ~/.mitmproxy.
    proxy = subprocess.Popen(
        [mitmdump, "--mode", f"reverse:http://127.0.0.1:{nginx_port}",
         "--listen-host", "127.0.0.1", "-p", str(port), "-q",
         "--set", f"confdir={os.path.join(tmp, 'mitmproxy')}",
         "-s", os.path.join(BENCH, "mitm_key_addon.py")],
        env=env, stdout=log, stderr=log)
    try:
        if not wait_for_port(port, proxy, 30):
            stop(proxy)
            with open(log_path) as f:
                note("skipped: mitmdump did not start: " + f.read().strip())
            return
        if not mitm_adds_keys(port):
            note("skipped: mitmdump answered, but without adding an Idempotency-Key")
            return
        nonce = itertools.count()
        off, on = alternate(
            lambda: run_wrk(f"http://127.0.0.1:{nginx_port}/v1/orders", env, f"direct-{next(nonce)}"),
            lambda: run_wrk(f"http://127.0.0.1:{port}/v1/orders", env, f"mitm-{next(nonce)}"),
            WRK_ROUNDS)
        rows("wrk via mitmdump + key addon", off, on, WRK_METRICS)
        report_errors(off + on, "mitmdump")
    finally:
        stop(proxy)
        log.close()


# ---- c. the request parser --------------------------------------------------

def bench_parser():
    section("c. the request parser (src/http.c) alone: ~1 KiB JSON POSTs back to back; "
            "baseline: each request fed whole (256 MiB a run); measured: 1-byte feeds "
            "(32 MiB a run); MB = 10^6 bytes")
    loop = os.path.join(BUILD, "bench", "parse_loop")
    whole, bytewise = alternate(lambda: run([loop, "whole", "256"], {}),
                                lambda: run([loop, "bytes", "32"], {}))
    floor = [run([loop, "floor", "32"], {}) for _ in range(ROUNDS)]
    w = median(whole, "mb_per_s")
    b = median(bytewise, "mb_per_s")
    row("parser, whole buffers", "MB/s", w, w)
    row("parser, 1-byte fragments", "MB/s", w, b)
    # What no parser fed a byte per call can beat on this machine: the call.
    row("parser, 1-byte fragments vs a call per byte", "MB/s",
        median(floor, "mb_per_s"), b)


# ---- d. the journal ---------------------------------------------------------

def bench_journal(off, on):
    section("d. the journal: POSTs over one kept-alive loopback connection per process "
            "(post_loop); baseline: no shim")
    post = [os.path.join(BUILD, "bench", "post_loop"), "5000", "64"]
    journal_off = dict(on, RETRYSAFE_JOURNAL="off")
    guard = dict(on, RETRYSAFE_MODE="guard")
    post_big = [os.path.join(BUILD, "bench", "post_loop"), "1000", "65536"]
    for name, cmd, env in [("tagged POST, 64 B body, journal off", post, journal_off),
                           ("tagged POST, 64 B body, SQLite journal", post, on),
                           ("guarded POST, 64 B body, SQLite journal", post, guard),
                           ("tagged POST, 64 KiB body, SQLite journal", post_big, on)]:
        p_off, p_on = alternate(lambda: run(cmd, off), lambda: run(cmd, env))
        row(name, "req/s", median(p_off, "requests_per_s"), median(p_on, "requests_per_s"))
    for procs in (1, 4, 8):
        c_off, c_on = alternate(lambda: run_parallel(post, off, procs),
                                lambda: run_parallel(post, on, procs))
        row(f"{procs} process(es) tagging at once, journal", "req/s",
            median(c_off, "requests_per_s"), median(c_on, "requests_per_s"))


# ---- g. the journal in Redis -------------------------------------------------

def start_redis(tmp):
    """A redis-server of our own on a free loopback port, as a fleet would
    run it minus the network: no persistence, so it measures the journal,
    not the disk."""
    server = shutil.which("redis-server")
    if not server:
        return None, "redis-server not installed (apt-get install redis-server)"
    port = free_port()
    data = os.path.join(tmp, "redis")
    os.makedirs(data, exist_ok=True)
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for_port(port, proc, 5):
        stop(proc)
        return None, "redis-server did not start"
    return proc, port


def bench_redis(tmp, on):
    section("g. the journal in Redis (redis-server on loopback, no persistence): POSTs "
            "over one kept-alive connection per process (post_loop), each unique; "
            "baseline: the same mode with the SQLite journal")
    redis, port = start_redis(tmp)
    if not redis:
        note(f"skipped: {port}")
        return
    try:
        post = [os.path.join(BUILD, "bench", "post_loop"), "3000", "64"]
        location = f"redis://127.0.0.1:{port}"
        added = []
        for mode in ("tag", "guard"):
            sqlite = dict(on, RETRYSAFE_MODE=mode)
            in_redis = dict(sqlite, RETRYSAFE_JOURNAL=location)
            p_sqlite, p_redis = alternate(lambda: run(post, sqlite), lambda: run(post, in_redis))
            rps_sqlite = median(p_sqlite, "requests_per_s")
            rps_redis = median(p_redis, "requests_per_s")
            row(f"{mode} mode, Redis journal vs SQLite", "req/s", rps_sqlite, rps_redis)
            added.append((mode, 1e6 / rps_redis - 1e6 / rps_sqlite, 1e6 / rps_redis))
        for procs in (4, 8):
            c_sqlite, c_redis = alternate(
                lambda: run_parallel(post, on, procs),
                lambda: run_parallel(post, dict(on, RETRYSAFE_JOURNAL=location), procs))
            row(f"{procs} processes tagging at once, Redis vs SQLite", "req/s",
                median(c_sqlite, "requests_per_s"), median(c_redis, "requests_per_s"))
        for mode, extra_us, total_us in added:
            note(f"{mode} mode: {total_us:.0f} us per request with the journal in Redis, "
                 f"{extra_us:+.0f} us against SQLite")
        note("every request asks Redis for its window before it leaves; tag mode writes "
             "from a background thread, one script per batch; guard mode claims a new "
             "request with one more script before it leaves")
    finally:
        stop(redis)


# ---- e. process start-up ----------------------------------------------------

def bench_startup(tmp, off, on):
    section(f"e. process start-up: `true` run by hyperfine (no shell, {STARTUP_RUNS} runs "
            "after 20 warm-up runs, medians), through env(1) on both sides; baseline: "
            "no shim")
    hyperfine = shutil.which("hyperfine")
    if not hyperfine:
        note("skipped: hyperfine not installed (apt-get install hyperfine)")
        return
    # hyperfine itself runs without the shim; env(1) preloads it into true.
    plain = "env true"
    shimmed = " ".join(["env", shlex.quote(f"LD_PRELOAD={SHIM}"),
                        shlex.quote(f"RETRYSAFE_HOSTS={on['RETRYSAFE_HOSTS']}"), "true"])
    export = os.path.join(tmp, "hyperfine.json")

    def both():
        subprocess.run([hyperfine, "-N", "--warmup", "20", "--runs", str(STARTUP_RUNS),
                        "--style", "none", "--export-json", export, plain, shimmed],
                       env=off, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        with open(export) as f:
            results = json.load(f)["results"]
        return [{"ms": r["median"] * 1e3} for r in results]

    rounds = [both() for _ in range(ROUNDS)]
    start_off = [r[0] for r in rounds]
    start_on = [r[1] for r in rounds]
    plain_ms, shimmed_ms = median(start_off, "ms"), median(start_on, "ms")
    row("process start-up, `true`", "ms/run", plain_ms, shimmed_ms)
    added = shimmed_ms - plain_ms
    note(f"start-up added by the shim: {added:.2f} ms per process (target: at most 1 ms)")


# ---- main -------------------------------------------------------------------

def main():
    started = time.monotonic()
    only = set(os.environ.get("BENCH_ONLY", "abcdefg").replace(",", ""))
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]

        off = base_env(state)
        on = dict(off, LD_PRELOAD=SHIM, RETRYSAFE_HOSTS="127.0.0.1")
        print(f"rounds: {ROUNDS} (BENCH_ROUNDS), wrk: {WRK_ROUNDS} (BENCH_WRK_ROUNDS); "
              "median of each side; ratio = measured / baseline")
        header()

        # b and f share one nginx.
        nginx, nginx_port = None, "not needed"
        if only & set("bf"):
            if not shutil.which("wrk"):
                nginx_port = "wrk not installed (apt-get install wrk)"
            else:
                nginx, nginx_port = start_nginx(tmp)
                if nginx and not nginx_reads_bodies(nginx_port):
                    stop(nginx)
                    nginx, nginx_port = None, "nginx does not read the POST bodies it answers"
        try:
            if "a" in only:
                bench_untracked(off, on, port)
            if "b" in only:
                if nginx:
                    bench_wrk(tmp, nginx_port)
                else:
                    section("b. wrk POSTs to nginx")
                    note(f"skipped: {nginx_port}")
            if "c" in only:
                bench_parser()
            if "d" in only:
                bench_journal(off, on)
            if "e" in only:
                bench_startup(tmp, off, on)
            if "f" in only:
                if nginx:
                    bench_mitm(tmp, nginx_port)
                else:
                    section("f. the alternative: mitmdump in front of nginx")
                    note(f"skipped: {nginx_port}")
            if "g" in only:
                bench_redis(tmp, on)
        finally:
            stop(nginx)
        listener.close()
    print(f"\nmake bench took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
