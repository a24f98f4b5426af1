"""Guard mode's claim table (src/claim_table.c) where it can go wrong: a dead
twin's attempt the journal cannot take, a retry killed while it waits, a
batch given up, a filter file replaced under running processes, and exec.
Each was a duplicate, a false refusal or a stuck key in review of the
first version; each test holds or breaks the journal to reach the case."""
import os
import subprocess
import time

from harness import PYTHON, timeout
from test_guard import (_raw, _raw_popen, _raw_run, _request, _key_rows, _warmed,
                        _sent_keys, _kill_mid_request, _wait_request, _JournalLocked,
                        PY_RAW, _finish)


@timeout(40)
def test_claim_dead_twin_not_journaled_is_refused(ctx):
    # The retry finds a dead twin's slot but cannot journal its attempt
    # (the journal is locked past a busy wait): it is refused, and the slot
    # stays the dead twin's, so that once the journal is free nothing is
    # sent a second time.
    k, env, key = _warmed(ctx, delay=0.5)
    lock = _JournalLocked(ctx)
    lock.__enter__()
    _kill_mid_request(ctx, k, env)          # fast claim, row unwritten, slot of a dead pid
    p = _raw_popen(ctx, k, dict(env, RETRYSAFE_LOG="info"))
    err = b""
    while b"before journaling it" not in err:
        b = os.read(p.stderr.fileno(), 4096)
        assert b, err
        err += b
    time.sleep(2.08)                        # record_dead_twin's busy wait has given up
    lock.__exit__()
    out, e2 = p.communicate(timeout=20)
    k.wait_idle(10)
    rows = _key_rows(ctx, k, key)
    assert k.count == 2, ("%d side effects (warm-up included): %r; rows %r; out %r; err %r"
                          % (k.count, _sent_keys(k), [(r['outcome'], r['status']) for r in rows],
                             out[:80], (err + e2)[-400:]))


@timeout(40)
def test_claim_killed_waiter_leaves_no_unknown(ctx):
    # A retry waiting for its in-flight twin is killed; it never sent
    # anything. The twin gets a retryable 503, so the next retry is sent
    # (the waiter held no slot that would read as an unknown outcome).
    k, env, key = _warmed(ctx, delay=1.5, status=[200, 503, 200])
    a = _raw_popen(ctx, k, env)
    _wait_request(k, 2)
    time.sleep(0.3)                          # a's row written, slot free
    b = _raw_popen(ctx, k, env)              # takes the slot, waits in journal_decides
    time.sleep(0.5)
    b.kill(); b.communicate()
    _finish(a, "a")
    r = _raw_run(ctx, k, dict(env, RETRYSAFE_LOG="info"))
    k.wait_idle(10)
    rows = [(x["outcome"], x["status"], x["pid"]) for x in _key_rows(ctx, k, key)]
    assert k.count == 3, ("count %d; answer %r; rows %r; err %r" % (k.count, r.stdout[:200], rows, r.stderr[-300:]))


@timeout(40)
def test_claim_unwritten_row_does_not_hold_key(ctx):
    # A process whose row's batch is given up (journal locked > 10 s) does
    # not keep the key's slot while it lives: the slot is held by no one,
    # and a retry is not told the twin is still in flight.
    k, env, key = _warmed(ctx, wait="1s", delay=0.0)
    script = PY_RAW + "\nimport time; sys.stdout.buffer.write(out); sys.stdout.flush(); time.sleep(25)\n"
    with _JournalLocked(ctx):
        a = _raw_popen(ctx, k, env, script=script)
        _wait_request(k, 2)
        time.sleep(11.5)                     # 5 busy waits of 2 s: the batch is given up
    r = _raw_run(ctx, k, env)
    rows = [(x["outcome"], x["status"]) for x in _key_rows(ctx, k, key)]
    a.kill(); a.communicate()
    assert b"in-flight" not in r.stdout, ("retry refused in-flight by a live process's leaked slot; "
                                          "rows %r; %r" % (rows, r.stdout[:300]))


@timeout(40)
def test_claim_replaced_filter_is_followed(ctx):
    # The filter file is deleted and made again while a process has the old
    # one mapped: its next claim follows the new file, so a retry in another
    # process sees the request and is not sent again.
    k, env, key = _warmed(ctx, delay=0.0)
    go = os.path.join(ctx.tmp, "go")
    script = (PY_RAW +
              "\nimport os, time\nwhile not os.path.exists(%r): time.sleep(0.05)\n" % go +
              "c = socket.create_connection(('127.0.0.1', port)); c.sendall(open(sys.argv[3],'rb').read())\n"
              "out = b''\nwhile True:\n    d = c.recv(65536)\n    if not d: break\n    out += d\n"
              "sys.stdout.buffer.write(out)\n")
    p1 = subprocess.Popen([PYTHON, "-c", script, str(k.port), ctx.write(_request(k, body="warm=2")),
                           ctx.write(_request(k))], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_request(k, 2)
    os.unlink(ctx.journal_path + "-seen")
    _raw(ctx, k, env, body="warm=3")             # a new filter, filled from the journal
    open(go, "w").close()
    _finish(p1, "p1")                             # R sent once, answered 200, journaled
    time.sleep(0.3)
    r = _raw(ctx, k, env)                         # the retry of R
    k.wait_idle(10)
    rows = [(x["outcome"], x["status"]) for x in _key_rows(ctx, k, key)]
    assert _sent_keys(k).count(key) == 1, ("R sent %d times; rows %r; %r"
                                           % (_sent_keys(k).count(key), rows, r[:60]))


@timeout(40)
def test_claim_exec_writes_rows_first(ctx):
    # A program that execs right after its request: its rows are written
    # before the image goes, so its slot is not held by the new program.
    k, env, key = _warmed(ctx, wait="1s", delay=0.0)
    script = PY_RAW + "\nsys.stdout.flush(); os_ = __import__('os'); os_.execv('/bin/sleep', ['sleep', '6'])\n"
    a = _raw_popen(ctx, k, env, script=script)
    _wait_request(k, 2)
    time.sleep(0.5)
    r = _raw_run(ctx, k, env)
    rows = [(x["outcome"], x["status"]) for x in _key_rows(ctx, k, key)]
    a.kill(); a.communicate()
    assert b"in-flight" not in r.stdout, ("after exec: rows %r; %r" % (rows, r.stdout[:120]))
