#!/usr/bin/env python3
"""make bench: what the shim costs, measured side by side in one run.

Each case runs without and with the shim, alternating, several rounds; the
median of each side is reported with the ratio shim/baseline. Nothing here
is asserted: figures are printed for README.md and for judging changes.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
SHIM = os.path.join(BUILD, "libretrysafe.so")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def base_env(state):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYSAFE_")}
    env.pop("LD_PRELOAD", None)
    env["XDG_STATE_HOME"] = state
    env["RETRYSAFE_SECRET"] = "bench-secret"
    return env


def side_by_side(cmd, env_off, env_on, metric):
    off, on = [], []
    for _ in range(ROUNDS):
        off.append(run(cmd, env_off)[metric])
        on.append(run(cmd, env_on)[metric])
    return statistics.median(off), statistics.median(on)


def run_parallel(cmd, env, procs):
    """Total requests/s of procs copies of cmd started together."""
    started = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(procs)]
    total = 0.0
    for p in started:
        out, _ = p.communicate()
        total += float(out.split()[1])
    return total


def side_by_side_parallel(cmd, env_off, env_on, procs):
    off, on = [], []
    for _ in range(ROUNDS):
        off.append(run_parallel(cmd, env_off, procs))
        on.append(run_parallel(cmd, env_on, procs))
    return statistics.median(off), statistics.median(on)


def row(name, unit, off, on, ratio):
    print(f"{name:<44} {off:>12.2f} {on:>12.2f} {unit:<8} {ratio:>7.3f}x")


def main():
    with tempfile.TemporaryDirectory() as state:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]

        off = base_env(state)
        on = dict(off, LD_PRELOAD=SHIM, RETRYSAFE_HOSTS="127.0.0.1")
        print(f"rounds: {ROUNDS} (median of each side); ratio = shim / no shim")
        print(f"{'case':<44} {'no shim':>12} {'shim':>12} {'unit':<8} {'ratio':>8}")

        calls = os.environ.get("BENCH_CALLS", "10000000")
        loop = [os.path.join(BUILD, "bench", "write_loop"), calls, str(port)]
        w_off, w_on = side_by_side(loop, off, on, "write_ns")
        row("write() on an untracked fd", "ns/call", w_off, w_on, w_on / w_off)
        s_off, s_on = side_by_side(loop, off, on, "send_recv_ns")
        row("send()+recv() on an untracked socket", "ns/pair", s_off, s_on, s_on / s_off)

        post = [os.path.join(BUILD, "bench", "post_loop"), "5000", "64"]
        journal_off = dict(on, RETRYSAFE_JOURNAL="off")
        p_off, p_on = side_by_side(post, off, journal_off, "requests_per_s")
        row("tagged POST, 64 B body, journal off", "req/s", p_off, p_on, p_on / p_off)
        p_off, p_on = side_by_side(post, off, on, "requests_per_s")
        row("tagged POST, 64 B body, SQLite journal", "req/s", p_off, p_on, p_on / p_off)
        guard = dict(on, RETRYSAFE_MODE="guard")
        g_off, g_on = side_by_side(post, off, guard, "requests_per_s")
        row("guarded POST, 64 B body, SQLite journal", "req/s", g_off, g_on, g_on / g_off)
        post_big = [os.path.join(BUILD, "bench", "post_loop"), "1000", "65536"]
        b_off, b_on = side_by_side(post_big, off, on, "requests_per_s")
        row("tagged POST, 64 KiB body, SQLite journal", "req/s", b_off, b_on, b_on / b_off)
        for procs in (1, 4, 8):
            c_off, c_on = side_by_side_parallel(post, off, on, procs)
            row(f"{procs} process(es) tagging at once, journal", "req/s", c_off, c_on,
                c_on / c_off)
        listener.close()


if __name__ == "__main__":
    sys.exit(main())
