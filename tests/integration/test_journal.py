"""The journal (issue #3): one row per attempt of a request to an enabled
host, written by the shim in every process before the request leaves and
finished when its outcome is known. Rows are read back with
`retrysafe dump --json` / `stats --json`; what the files themselves hold is
checked byte by byte and with python's sqlite3 on a copy of them.

Every test uses the journal at its default place in the test's temp dir
($XDG_STATE_HOME/retrysafe/journal.db) unless it says otherwise."""

import calendar
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import time

from harness import (PYTHON, assert_row, assert_tagged,
                     assert_untagged, client, control_and_shim,
                     default_journal, exchange, expected_key, header_values,
                     musl, need, post_request, timeout)

BODY = "amount=2000&currency=usd"
PATH = "/v1/charges"

# A python client: urllib POSTs from a JSON spec, then (optionally, while
# the process still holds the journal open, so its -wal and -shm exist)
# a scan of a directory: each file's mode and which needles it contains.
PY_POST = r"""
import json, os, sys, time, urllib.request
spec = json.loads(sys.argv[1])
if "umask" in spec:
    os.umask(spec["umask"])
answers = []
for url, body in spec["posts"]:
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers=spec.get("headers", {}))
    with urllib.request.urlopen(req, timeout=8) as r:
        answers.append([r.status, r.read().decode()])
out = {"pid": os.getpid(), "answers": answers, "files": {}}
d = spec.get("scan")
# The shim's writer commits a few ms after the request: scan until the
# first needle (what must be stored) shows up, for at most 2 s.
for _ in range(200) if d else ():
    out["dir_mode"] = os.stat(d).st_mode & 0o7777
    for fn in sorted(os.listdir(d)):
        p = os.path.join(d, fn)
        with open(p, "rb") as f:
            data = f.read()
        out["files"][fn] = {
            "mode": os.stat(p).st_mode & 0o7777, "size": len(data),
            "found": [n for n in spec.get("needles", []) if n.encode() in data]}
    want = spec.get("wait_for")
    if not want or any(want in f["found"] for f in out["files"].values()):
        break
    time.sleep(0.01)
print(json.dumps(out))
"""


def _py_post(ctx, env, posts, **spec):
    """Runs PY_POST; returns (its JSON output, the CompletedProcess)."""
    spec["posts"] = posts
    p = ctx.run([PYTHON, "-c", PY_POST, json.dumps(spec)], env=env)
    return json.loads(p.stdout), p


def _key(req, header="Idempotency-Key"):
    vals = header_values(req.raw, header)
    assert len(vals) == 1, "server got %d key lines: %r" % (len(vals),
                                                            req.raw[:400])
    return vals[0].decode()


def _exe(program):
    """The program name the shim records: basename of /proc/self/exe."""
    return os.path.basename(os.path.realpath(program))


def _journal_lines(stderr):
    return [l for l in stderr.decode(errors="replace").splitlines()
            if "journal" in l.lower()]


def _assert_quiet(p, what):
    assert p.stderr == b"", "%s wrote to stderr: %r" % (what, p.stderr[-800:])


def _files(directory):
    """{name: bytes} of every file in directory."""
    out = {}
    for fn in sorted(os.listdir(directory)):
        path = os.path.join(directory, fn)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[fn] = f.read()
    return out


def _assert_absent(directory, needles, what):
    """No needle (str) occurs in any file of directory."""
    files = _files(directory)
    assert files, "no files in %s" % directory
    hits = ["%r in %s" % (n, fn) for fn, data in files.items()
            for n in needles if n.encode() in data]
    assert not hits, "%s: found %s" % (what, ", ".join(hits))
    return files


def _sqlite_values(ctx, db):
    """Every value of every table of the journal at db, read with python's
    sqlite3 from a copy (db and its -wal), so the original is untouched."""
    copy_dir = os.path.join(ctx.tmp, "journal-copy-%d" % time.monotonic_ns())
    os.makedirs(copy_dir)
    copy = os.path.join(copy_dir, "journal.db")
    shutil.copyfile(db, copy)
    if os.path.exists(db + "-wal"):
        shutil.copyfile(db + "-wal", copy + "-wal")
    con = sqlite3.connect(copy)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = []
        for t in tables:
            for row in con.execute('SELECT * FROM "%s"' % t.replace('"', '""')):
                values.extend(row)
    finally:
        con.close()
    return tables, values


def _value_hits(values, needles):
    hits = []
    for v in values:
        raw = v.encode() if isinstance(v, str) else (
            bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else b"")
        hits += [n for n in needles if n.encode() in raw]
    return hits


def _summary(rows):
    return [(r.get("path"), r.get("key"), r.get("attempt"), r.get("outcome"),
             r.get("status")) for r in rows]


# -- 1. rows of real clients --------------------------------------------------

def test_journal_curl_post_row(ctx):
    s = ctx.recording_server()
    other = ctx.recording_server()   # not enabled: leaves no row
    env = ctx.shim_env(s.authority)
    target = PATH + "?token=secret-Tk7qZ2&expand=customer"
    start = time.time()
    _, reqs = exchange(s, lambda: ctx.curl("-d", BODY, s.url(target),
                                           env=env))
    _, oreqs = exchange(other, lambda: ctx.curl("-d", BODY, other.url(PATH),
                                                env=env))
    assert header_values(oreqs[0].raw, "Idempotency-Key") == []
    key = _key(reqs[0])
    assert key == expected_key("POST", s.authority, target, BODY).decode()
    rows = ctx.dump()
    assert len(rows) == 1, "expected 1 row (the enabled host's), got %r" % (
        _summary(rows),)
    r = rows[0]
    assert_row(r, "curl's row", method="POST", host=s.authority, path=PATH,
               key=key, attempt=1, generation=0, status=200,
               outcome="completed", tls=False, body_len=len(BODY),
               exe=_exe(need("curl")))
    assert isinstance(r["pid"], int) and r["pid"] > 0, r
    assert isinstance(r["duration_ms"], int) and r["duration_ms"] >= 0, r
    assert r["fingerprint"], r
    when = calendar.timegm(time.strptime(r["time"][:19],
                                         "%Y-%m-%dT%H:%M:%S"))
    assert r["time"].endswith("Z") and start - 2 <= when <= time.time() + 2, (
        "time %r is not this run's UTC time" % r["time"])
    # The query string never reaches the journal's files.
    _assert_absent(os.path.dirname(ctx.journal_path),
                   ["secret", "token=", "expand=customer"],
                   "query string stored")


def test_journal_python_urllib_row(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    target = "/v1/orders?token=secret-Pq3wX9"
    jdir = os.path.dirname(ctx.journal_path)
    key = expected_key("POST", s.authority, target, BODY).decode()
    out, p = _py_post(ctx, env, [[s.url(target), BODY]], scan=jdir,
                      needles=["secret", "token=", key], wait_for=key)
    _assert_quiet(p, "python")
    assert out["answers"] == [[200, "ok"]], out
    got = s.wait_requests(1)
    assert _key(got[0]) == key
    # While python still has the journal open: the key is in its files
    # (the scan works), the query is in none, -wal included.
    found = {fn: f["found"] for fn, f in out["files"].items()}
    assert any(key in f for f in found.values()), (
        "the key is in no journal file while the process runs: %r" % found)
    leaks = {fn: [n for n in f if n != key] for fn, f in found.items()}
    assert not any(leaks.values()), "query stored: %r" % leaks
    rows = ctx.dump()
    assert len(rows) == 1, _summary(rows)
    assert_row(rows[0], "python's row", method="POST", host=s.authority,
               path="/v1/orders", key=key, attempt=1, generation=0,
               status=200, outcome="completed", pid=out["pid"],
               exe=_exe(PYTHON), body_len=len(BODY), tls=False)
    _assert_absent(jdir, ["secret", "token="], "query stored")


# -- 2. retries ---------------------------------------------------------------

def test_journal_retry_same_key_attempts(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    keys = []
    for _ in range(2):
        _, reqs = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH),
                                               env=env))
        keys.append(_key(reqs[0]))
    want = expected_key("POST", s.authority, PATH, BODY).decode()
    assert keys == [want, want], keys
    rows = ctx.dump()
    assert [(r["key"], r["attempt"], r["generation"], r["outcome"])
            for r in rows] == [(want, 1, 0, "completed"),
                               (want, 2, 0, "completed")], _summary(rows)
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"], rows
    st = ctx.stats()
    assert set(st) == {s.authority}, st
    h = st[s.authority]
    assert (h["requests"], h["keys"], h["retried_keys"]) == (2, 1, 1), h
    assert h["outcomes"]["completed"] == 2, h


# -- 3. many processes at once ------------------------------------------------

PY_LOAD = r"""
import http.client, sys
port, n, tag, keepalive = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
    sys.argv[4] == "1"
sys.stdin.readline()       # everyone starts together
c = None
for i in range(n):
    if c is None or not keepalive:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    c.request("POST", "/v1/load", body=("p=%s&i=%d" % (tag, i)).encode())
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"ok"
    if not keepalive:
        c.close()
print("done")
"""


@timeout(30)
def test_journal_concurrent_processes(ctx):
    # 8 processes x 25 POSTs, half on one keep-alive connection each, half
    # on a new connection per POST: every attempt journaled, no
    # SQLITE_BUSY (or any warning) reaching anyone.
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    procs = [subprocess.Popen([PYTHON, "-c", PY_LOAD, str(s.port), "25",
                               "proc%d" % i, str(i % 2)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ctx.tmp)
             for i in range(8)]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=25) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and out.strip() == b"done", (
            "process %d exited %d: %r %r" % (i, p.returncode, out, err[-800:]))
        assert err == b"", "process %d wrote to stderr: %r" % (i, err[-800:])
    got = s.wait_requests(200)
    sent = sorted(_key(r) for r in got)
    assert len(set(sent)) == 200, "server keys not distinct"
    rows = ctx.dump()
    assert len(rows) == 200, "expected 200 rows, got %d" % len(rows)
    bad = [r for r in rows if r["outcome"] != "completed" or r["status"] != 200
           or r["attempt"] != 1]
    assert not bad, "%d rows not completed/200/attempt 1, e.g. %r" % (
        len(bad), bad[:3])
    assert sorted(r["key"] for r in rows) == sent, \
        "journal keys differ from the keys the server received"
    assert len({r["pid"] for r in rows}) == 8, {r["pid"] for r in rows}
    assert {p.pid for p in procs} == {r["pid"] for r in rows}


PY_THREADS = r"""
import http.client, sys, threading
port = int(sys.argv[1])
errors = []

def worker(t):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
        for i in range(10):
            c.request("POST", "/v1/t%d" % t, body=b"t=%d&i=%d" % (t, i))
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"ok"
    except Exception as e:
        errors.append(repr(e))

ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(errors or "done")
"""


def test_journal_concurrent_threads(ctx):
    # 8 threads of one process share its journal: 80 rows, each matched to
    # its own connection's answer.
    s = ctx.recording_server()
    p = ctx.python(PY_THREADS, s.port, env=ctx.shim_env(s.authority))
    assert p.stdout.strip() == b"done", p.stdout
    _assert_quiet(p, "python (threads)")
    sent = {(r.target.decode(), _key(r)) for r in s.wait_requests(80)}
    rows = ctx.dump()
    assert len(rows) == 80, "expected 80 rows, got %d" % len(rows)
    assert {(r["path"], r["key"]) for r in rows} == sent, \
        "journal (path, key) pairs differ from what the server received"
    assert {(r["outcome"], r["status"], r["attempt"]) for r in rows} == {
        ("completed", 200, 1)}, _summary(rows)


# -- 4. outcome unknown -------------------------------------------------------

@timeout(15)
def test_journal_client_timeout_unknown(ctx):
    k = ctx.key_server(delay=3.0)
    p = ctx.curl("--max-time", "1", "-d", BODY, k.url(PATH),
                 env=ctx.shim_env(k.authority), check=False)
    assert p.returncode == 28, "curl should time out (28), exited %d: %r" % (
        p.returncode, p.stderr)
    assert len(k.requests) == 1, k.requests
    rows = ctx.dump()
    assert len(rows) == 1, _summary(rows)
    assert_row(rows[0], "timed-out request", key=k.requests[0]["key"],
               attempt=1, status=None, outcome="unknown", path=PATH)


PY_SEND_AND_EXIT = r"""
import socket, sys
port = int(sys.argv[1])
c = socket.create_connection(("127.0.0.1", port))
body = b"amount=1"
c.sendall(b"POST /v1/exit HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
c.recv(1)     # blocks until the server answers or the test kills us
"""


@timeout(15)
def test_journal_pending_then_killed_shown_unknown(ctx):
    # In flight: pending, no status. Killed (no exit handlers run): the row
    # stays pending in the file, and the tool shows it as unknown.
    k = ctx.key_server(delay=6.0)
    p = subprocess.Popen([PYTHON, "-c", PY_SEND_AND_EXIT, str(k.port)],
                         env=ctx.shim_env(k.authority), cwd=ctx.tmp,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while not k.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert k.requests, "server never got the request"
        # The writer holds an attempt back up to 100 ms for its outcome,
        # then writes it pending: well within the server's 6 s.
        rows = ctx.dump()
        while not rows and time.monotonic() < deadline + 1:
            time.sleep(0.02)
            rows = ctx.dump()
        assert len(rows) == 1, _summary(rows)
        assert_row(rows[0], "request in flight", outcome="pending",
                   status=None, pid=p.pid, key=k.requests[0]["key"])
        st = ctx.stats()[k.authority]
        assert st["outcomes"]["pending"] == 1, st
    finally:
        p.kill()
        p.communicate()
    rows = ctx.dump()
    assert_row(rows[0], "request of a killed process", outcome="unknown",
               status=None, pid=p.pid)
    st = ctx.stats()[k.authority]
    assert (st["outcomes"]["unknown"], st["outcomes"]["pending"]) == (1, 0), (
        "stats must show a dead process's pending attempt as unknown, as "
        "dump does: %r" % st)


@timeout(15)
def test_journal_process_exit_unknown(ctx):
    # The process ends (normally, exit handlers run) before the answer.
    k = ctx.key_server(delay=3.0)
    p = subprocess.Popen([PYTHON, "-c", PY_SEND_AND_EXIT.replace(
        "c.recv(1)", "sys.exit(0)"), str(k.port)],
        env=ctx.shim_env(k.authority), cwd=ctx.tmp, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=8)
    assert p.returncode == 0, err
    rows = ctx.dump()
    assert len(rows) == 1, _summary(rows)
    assert_row(rows[0], "request of an exited process", outcome="unknown",
               status=None, pid=p.pid, path="/v1/exit")


# -- 5. fork ------------------------------------------------------------------

PY_FORK = r"""
import http.client, json, os, sys
port = int(sys.argv[1])

def post(path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    c.request("POST", path, body=body)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"ok"
    c.close()

post("/parent-1", b"p=1")
pid = os.fork()
if pid == 0:
    post("/child", b"c=1")
    os._exit(0)
_, status = os.waitpid(pid, 0)
post("/parent-2", b"p=2")
print(json.dumps({"parent": os.getpid(), "child": pid, "status": status}))
"""


def test_journal_fork_child_rows(ctx):
    s = ctx.recording_server()
    p = ctx.python(PY_FORK, s.port, env=ctx.shim_env(s.authority))
    _assert_quiet(p, "python (fork)")
    ids = json.loads(p.stdout)
    assert ids["status"] == 0, ids
    got = s.wait_requests(3)
    sent = {r.target.decode(): _key(r) for r in got}
    rows = ctx.dump()
    assert [(r["path"], r["pid"]) for r in rows] == [
        ("/parent-1", ids["parent"]), ("/child", ids["child"]),
        ("/parent-2", ids["parent"])], _summary(rows)
    for r in rows:
        assert_row(r, r["path"], outcome="completed", status=200, attempt=1,
                   key=sent[r["path"]])


PY_FORK_CHILD_CLOSES = r"""
import os, socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=8)
s.sendall(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 2\r\n\r\n{}" % port)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)       # until the parent has its answer
    s.close()           # the child closes its inherited copy
    os._exit(0)
reply = s.recv(4096)
os.write(w, b"x")
os.waitpid(pid, 0)
sys.stdout.write(reply.decode())
"""


def test_journal_fork_child_closing_leaves_parent_row(ctx):
    # The child inherits the connection and its flight; the row is the
    # parent's: the child closing its copy must not mark it unknown.
    s = ctx.recording_server()
    p = ctx.python(PY_FORK_CHILD_CLOSES, s.port, env=ctx.shim_env(s.authority))
    assert p.stdout.endswith(b"ok"), p.stdout
    rows = ctx.dump()
    assert [(r["outcome"], r["status"]) for r in rows] == [("completed", 200)], rows


# -- 7. file modes ------------------------------------------------------------

def _check_modes(out, jpath, what):
    jdir, name = os.path.split(jpath)
    assert out["dir_mode"] == 0o700, "%s: directory %s mode %o, expected 700" % (
        what, jdir, out["dir_mode"])
    files = out["files"]
    assert name in files, "%s: no %s while the process runs: %r" % (
        what, name, sorted(files))
    assert name + "-wal" in files and name + "-shm" in files, (
        "%s: no -wal/-shm beside the journal while it is open (WAL mode, "
        "issue #3 part 1): %r" % (what, sorted(files)))
    for fn in (name, name + "-wal", name + "-shm"):
        assert files[fn]["mode"] == 0o600, "%s: %s mode %o, expected 600" % (
            what, fn, files[fn]["mode"])
    for fn in os.listdir(jdir):        # after exit, whatever is left
        if fn.startswith(name):
            mode = os.stat(os.path.join(jdir, fn)).st_mode & 0o7777
            assert mode == 0o600, "%s: %s mode %o after exit" % (what, fn,
                                                                  mode)


def test_journal_file_modes_default_location(ctx):
    # umask 0: the modes must not depend on the caller's umask.
    s = ctx.recording_server()
    jpath = ctx.journal_path
    out, _ = _py_post(ctx, ctx.shim_env(s.authority), [[s.url(PATH), BODY]],
                      umask=0, scan=os.path.dirname(jpath))
    _check_modes(out, jpath, "$XDG_STATE_HOME")


def test_journal_file_modes_home_fallback(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    del env["XDG_STATE_HOME"]
    jpath = default_journal(env)
    assert jpath == os.path.join(env["HOME"], ".local", "state", "retrysafe",
                                 "journal.db")
    out, _ = _py_post(ctx, env, [[s.url(PATH), BODY]], umask=0,
                      scan=os.path.dirname(jpath))
    _check_modes(out, jpath, "~/.local/state")
    assert not os.path.exists(ctx.journal_path), "journal under XDG too"
    rows = ctx.dump("--journal", jpath)
    assert [r["outcome"] for r in rows] == ["completed"], _summary(rows)


def test_journal_file_modes_custom_path(ctx):
    # RETRYSAFE_JOURNAL wins over the state directory; its directory is
    # created (0700) when missing.
    s = ctx.recording_server()
    jpath = os.path.join(ctx.tmp, "custom", "my.db")
    env = ctx.shim_env(s.authority, journal=jpath)
    out, _ = _py_post(ctx, env, [[s.url(PATH), BODY]], umask=0,
                      scan=os.path.dirname(jpath))
    _check_modes(out, jpath, "RETRYSAFE_JOURNAL")
    assert not os.path.exists(ctx.journal_path), \
        "a journal at the default location although RETRYSAFE_JOURNAL was set"
    rows = ctx.dump("--journal", jpath)
    assert [r["outcome"] for r in rows] == ["completed"], _summary(rows)
    env2 = dict(ctx.env, RETRYSAFE_JOURNAL=jpath)
    assert ctx.dump(env=env2) == rows, "RETRYSAFE_JOURNAL not read by dump"


# -- 8. nothing secret stored -------------------------------------------------

def test_journal_stores_no_body_or_credentials(ctx):
    s = ctx.recording_server()
    body = "card=4242424242424242&note=BODY-MARKER-q8Zr3v"
    secret_bits = ["BODY-MARKER-q8Zr3v", "4242424242424242",
                   "AUTH-MARKER-k2Lw9", "COOKIE-MARKER-p4Xn7", "QUERY-MARKER"]
    target = "/v1/pay?sig=QUERY-MARKER"
    key = expected_key("POST", s.authority, target, body).decode()
    jdir = os.path.dirname(ctx.journal_path)
    out, p = _py_post(
        ctx, ctx.shim_env(s.authority), [[s.url(target), body]],
        headers={"Authorization": "Bearer AUTH-MARKER-k2Lw9",
                 "Cookie": "session=COOKIE-MARKER-p4Xn7"},
        scan=jdir, needles=secret_bits + [key], wait_for=key)
    got = s.wait_requests(1)
    assert b"AUTH-MARKER-k2Lw9" in got[0].raw and _key(got[0]) == key
    # While the process runs (db, -wal, -shm) ...
    found = {fn: f["found"] for fn, f in out["files"].items()}
    assert any(key in f for f in found.values()), (
        "key in no file: the scan would prove nothing: %r" % found)
    leaks = {fn: [n for n in f if n != key] for fn, f in found.items()}
    assert not any(leaks.values()), "stored while running: %r" % leaks
    # ... after it ended ...
    _assert_absent(jdir, secret_bits, "stored after exit")
    # ... and every value of every table, as SQLite reads it.
    tables, values = _sqlite_values(ctx, ctx.journal_path)
    assert key in values, "key not among the journal's values (tables %r)" % (
        tables,)
    hits = _value_hits(values, secret_bits)
    assert not hits, "journal tables hold %r" % hits


# -- 9. fail open -------------------------------------------------------------

PY_THREE = r"""
import sys, urllib.request
url, body = sys.argv[1], sys.argv[2].encode()
for i in range(3):
    with urllib.request.urlopen(urllib.request.Request(
            url + "/%d" % i, data=body, method="POST"), timeout=8) as r:
        assert r.read() == b"ok"
print("done")
"""


def _fails_open(ctx, jpath, env_journal=None):
    """Three POSTs in one process with an unusable journal: all go out
    tagged, the client succeeds, and stderr has exactly one line, a
    warning about the journal."""
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, journal=env_journal or jpath)
    p = ctx.python(PY_THREE, s.url(PATH), BODY, env=env)
    assert p.stdout.strip() == b"done", p.stdout
    got = s.wait_requests(3)
    for i, r in enumerate(got):
        path = "%s/%d" % (PATH, i)
        assert _key(r) == expected_key("POST", s.authority, path,
                                       BODY).decode(), (path, r.raw)
    lines = p.stderr.decode(errors="replace").splitlines()
    assert len(lines) == 1 and "journal" in lines[0].lower(), (
        "expected one warning line about the journal, got %r" % lines)
    return lines[0]


def test_journal_unwritable_path_fails_open(ctx):
    # A path under a regular file: mkdir/open fail with ENOTDIR, for root
    # too.
    blocker = ctx.write(b"not a directory\n", "blocker")
    jpath = os.path.join(blocker, "sub", "journal.db")
    _fails_open(ctx, jpath)
    with open(blocker, "rb") as f:
        assert f.read() == b"not a directory\n"


def test_journal_corrupt_file_fails_open(ctx):
    jdir = os.path.join(ctx.tmp, "corrupt")
    os.makedirs(jdir, 0o700)
    jpath = os.path.join(jdir, "journal.db")
    junk = random.Random(3).randbytes(16384)
    with open(jpath, "wb") as f:
        f.write(junk)
    os.chmod(jpath, 0o600)
    _fails_open(ctx, jpath)


def test_journal_foreign_sqlite_file_fails_open(ctx):
    # Another program's SQLite database at the journal's path is neither a
    # journal nor empty (journal.h): not used, and left as it was.
    jdir = os.path.join(ctx.tmp, "foreign")
    os.makedirs(jdir, 0o700)
    jpath = os.path.join(jdir, "journal.db")
    con = sqlite3.connect(jpath)
    con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO accounts(name) VALUES ('alice')")
    con.commit()
    con.close()
    os.chmod(jpath, 0o600)
    _fails_open(ctx, jpath)
    con = sqlite3.connect(jpath)
    try:
        tables = sorted(r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
        names = [r[0] for r in con.execute("SELECT name FROM accounts")]
    finally:
        con.close()
    assert (tables, names) == (["accounts"], ["alice"]), (
        "the foreign database was changed: tables %r, rows %r"
        % (tables, names))


@timeout(20)
def test_journal_locked_fails_open_bounded(ctx):
    # Another process holds the journal's write lock far too long: the
    # request waits a bounded time (curl's own 8 s limit here), goes out
    # tagged, and one warning says why it was not recorded.
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    _, first = exchange(s, lambda: ctx.curl("-d", "first=1", s.url(PATH),
                                            env=env))
    con = sqlite3.connect(ctx.journal_path, isolation_level=None, timeout=5)
    try:
        con.execute("BEGIN EXCLUSIVE")
        out, reqs = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH),
                                                 env=env, check=False))
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert _key(reqs[0]) == expected_key("POST", s.authority, PATH,
                                         BODY).decode()
    assert out.returncode == 0 and out.stdout == b"ok", out
    warn = _journal_lines(out.stderr)
    assert len(warn) == 1, "expected one journal warning, got %r" % (
        out.stderr,)
    rows = ctx.dump()
    assert [r["key"] for r in rows] == [_key(first[0])], _summary(rows)


# -- 11. the host's own sqlite3 and ssl -----------------------------------------

PY_HOST_LIBS = r"""
import hashlib, hmac, json, os, sqlite3, ssl, sys, urllib.request
url, dbpath = sys.argv[1], sys.argv[2]
out = {"sqlite_version": sqlite3.sqlite_version,
       "openssl": ssl.OPENSSL_VERSION, "steps": []}

def db(tag):
    con = sqlite3.connect(dbpath)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS t(a TEXT, b BLOB)")
    con.execute("INSERT INTO t VALUES (?, ?)", (tag, os.urandom(4)))
    con.commit()
    rows = [r[0] for r in con.execute("SELECT a FROM t ORDER BY rowid")]
    con.close()
    mem = sqlite3.connect(":memory:")
    mem.execute("CREATE TABLE m(x)")
    mem.executemany("INSERT INTO m VALUES (?)", [(i,) for i in range(100)])
    total = mem.execute("SELECT sum(x) FROM m").fetchone()[0]
    mem.close()
    return [rows, total]

def crypto():
    c = ssl.create_default_context()
    return [c.verify_mode == ssl.CERT_REQUIRED, c.check_hostname,
            len(c.get_ciphers()) > 0, len(c.get_ca_certs()) >= 0,
            hashlib.sha256(b"abc").hexdigest(),
            hmac.new(b"k", b"m", hashlib.sha256).hexdigest(),
            hashlib.md5(b"abc").hexdigest()]

def post(i):
    r = urllib.request.urlopen(urllib.request.Request(
        url, data=b"n=%d" % i, method="POST"), timeout=8)
    return r.read().decode()

out["steps"].append(db("before"))
out["steps"].append(crypto())
out["steps"].append(post(1))
out["steps"].append(db("between"))
out["steps"].append(crypto())
out["steps"].append(post(2))
out["steps"].append(db("after"))
print(json.dumps(out))
"""


def test_journal_host_sqlite_and_ssl_work(ctx):
    s = ctx.recording_server()
    ctl = ctx.python(PY_HOST_LIBS, s.url(PATH), os.path.join(ctx.tmp, "a.db"))
    got = ctx.python(PY_HOST_LIBS, s.url(PATH), os.path.join(ctx.tmp, "b.db"),
                     env=ctx.shim_env(s.authority))
    _assert_quiet(got, "python (sqlite3, ssl)")
    assert json.loads(got.stdout) == json.loads(ctl.stdout), (
        "python's sqlite3/ssl behave differently under the shim:\n  with: "
        "%s\n  without: %s" % (got.stdout, ctl.stdout))
    rows = ctx.dump()
    assert [(r["outcome"], r["status"]) for r in rows] == [
        ("completed", 200)] * 2, _summary(rows)


# -- 12. the window -------------------------------------------------------------

@timeout(15)
def test_journal_window_new_generation(ctx):
    # RETRYSAFE_WINDOW=2s, measured from the operation's first attempt:
    # t=0 POST (key k0), t~1.1 POST (k0, attempt 2), t~2.5 POST: 2.5 s after
    # the first attempt but only ~1.4 s after the last: a new operation
    # (k1, generation 1, attempt 1); t~2.6 POST (k1, attempt 2).
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, window="2s")
    tool_env = dict(ctx.env, RETRYSAFE_WINDOW="2s")
    body_file = ctx.write(BODY)

    def post():
        _, reqs = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH),
                                               env=env))
        return _key(reqs[0])

    def tool_key():
        return ctx.tool("key", "POST", s.url(PATH), body_file,
                        env=tool_env).stdout.decode().strip()

    k0 = expected_key("POST", s.authority, PATH, BODY).decode()
    t0 = time.monotonic()
    assert post() == k0
    time.sleep(max(0.0, t0 + 1.1 - time.monotonic()))
    assert post() == k0, "second attempt within the window got a new key"
    assert tool_key() == k0, "retrysafe key within the window"
    time.sleep(max(0.0, t0 + 2.5 - time.monotonic()))
    k1 = tool_key()
    assert k1 != k0, "retrysafe key after the window still prints k0"
    third = post()
    assert third != k0, "the first request after the window reused %s" % k0
    assert third == k1, "server got %s, retrysafe key predicted %s" % (
        third, k1)
    assert post() == k1, "a retry of the new operation got another key"
    rows = ctx.dump()
    assert [(r["key"], r["generation"], r["attempt"]) for r in rows] == [
        (k0, 0, 1), (k0, 0, 2), (k1, 1, 1), (k1, 1, 2)], _summary(rows)
    assert len({r["fingerprint"] for r in rows}) == 1, rows
    assert ctx.stats()[s.authority]["retried_keys"] == 2


# -- 13. off --------------------------------------------------------------------

def test_journal_off(ctx):
    s = ctx.recording_server()
    run = lambda env: ctx.curl("-d", BODY, s.url(PATH), env=env)
    ctl, got, _, out = control_and_shim(ctx, s, run,
                                        ctx.shim_env(s.authority,
                                                     journal="off"))
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH, BODY)
    _assert_quiet(out, "curl")
    made = [os.path.join(d, f) for d, _, fs in os.walk(ctx.tmp) for f in fs
            if f.startswith("journal")]
    assert not made, "RETRYSAFE_JOURNAL=off created %r" % made
    p = ctx.tool("dump", env=dict(ctx.env, RETRYSAFE_JOURNAL="off"),
                 check=False)
    assert p.returncode != 0 and b"journal" in p.stderr, p


# -- 14. skipped ----------------------------------------------------------------

def test_journal_skipped_body_over_limit(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, max_body="10")
    big, small = "a=12345678", "a=123456789"      # 10 and 11 bytes
    assert (len(big), len(small)) == (10, 11)
    run = lambda e: ctx.curl("-d", small, s.url(PATH), env=e)
    ctl, got, _, _ = control_and_shim(ctx, s, run, env)
    assert_untagged(got[0].raw, ctl[0].raw)
    _, reqs = exchange(s, lambda: ctx.curl("-d", big, s.url("/v1/ten"),
                                           env=env))
    rows = ctx.dump()
    assert len(rows) == 2, _summary(rows)
    assert_row(rows[0], "11-byte body", outcome="skipped", key="",
               path=PATH, method="POST", host=s.authority, body_len=11)
    assert_row(rows[1], "10-byte body", outcome="completed",
               key=_key(reqs[0]), status=200, body_len=10, path="/v1/ten")
    st = ctx.stats()[s.authority]
    assert st["outcomes"]["skipped"] == 1 and st["keys"] == 1, st


# -- 15. failed -----------------------------------------------------------------

PY_REFUSED = r"""
import errno, json, socket, sys
port = int(sys.argv[1])
steps = []
s = socket.socket()
s.setblocking(False)
r = s.connect_ex(("127.0.0.1", port))
steps.append("connect: %s" % errno.errorcode.get(r, r))
body = b"amount=500"
req = (b"POST /v1/refused HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
       b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
try:
    steps.append("send: %d" % s.send(req))
except OSError as e:
    steps.append("send: %s" % errno.errorcode.get(e.errno, e.errno))
print(json.dumps(steps))
"""


def test_journal_failed_refused_before_sending(ctx):
    # What the client does: a non-blocking connect to a loopback port that
    # is bound but not listening (so nothing else can take it), which
    # returns EINPROGRESS (so the shim tracks the socket); then at once one
    # send() of a whole POST. Linux reports the refusal on that send
    # (ECONNREFUSED): nothing was sent. The control run (no shim) shows
    # what the kernel did; the shim run must show the same to the client.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    port = hole.getsockname()[1]
    authority = "127.0.0.1:%d" % port
    try:
        ctl = json.loads(ctx.python(PY_REFUSED, port).stdout)
        got = json.loads(ctx.python(PY_REFUSED, port,
                                    env=ctx.shim_env(authority)).stdout)
    finally:
        hole.close()
    assert ctl == ["connect: EINPROGRESS", "send: ECONNREFUSED"], (
        "this kernel did not refuse on the first send: %r; the test "
        "cannot produce a refused request here" % ctl)
    rows = ctx.dump()
    assert len(rows) == 1, _summary(rows)
    assert_row(rows[0], "refused request", outcome="failed", status=None,
               path="/v1/refused", host=authority, attempt=1,
               key=expected_key("POST", authority, "/v1/refused",
                                "amount=500").decode())
    # Never break the host: the refusal reaches the client as it would
    # without the shim (a send that reports the bytes as sent turns a
    # refused connection, safe to retry, into a lost answer).
    assert got == ctl, "client saw %r under the shim, %r without" % (got, ctl)


def test_observe_mode_journals_without_tagging(ctx):
    # RETRYSAFE_MODE=observe: the server gets the request byte for byte as
    # without the shim; the journal records it with the key it would carry.
    s = ctx.recording_server()
    run = lambda env: ctx.curl("-d", BODY, s.url(PATH), env=env)
    _, control = exchange(s, lambda: run(ctx.env))
    s.clear()
    _, observed = exchange(s, lambda: run(ctx.shim_env(s.authority,
                                                        mode="observe")))
    assert_untagged(observed[0].raw, control[0].raw)
    rows = ctx.dump()
    assert len(rows) == 1, _summary(rows)
    assert_row(rows[0], "observed row", method="POST", host=s.authority,
               path=PATH, attempt=1, status=200, outcome="completed",
               key=expected_key("POST", s.authority, PATH, BODY).decode())


@musl
def test_journal_raw_client_rows(ctx):
    # A C client (built for glibc, and for musl by `run.py --musl`): two
    # POSTs on one connection in one writev; one row each, completed.
    s = ctx.recording_server()
    reqs = [post_request(s.authority, PATH, b"n=1"),
            post_request(s.authority, PATH, b"n=2")]
    f = ctx.write(b"".join(reqs))
    exchange(s, lambda: ctx.run([client("raw_send"), "-m", "writev", "-n", 2,
                                 s.host, s.port, f],
                                env=ctx.shim_env(s.authority)), n=2)
    rows = ctx.dump()
    assert len(rows) == 2, _summary(rows)
    for r, body in zip(rows, (b"n=1", b"n=2")):
        assert_row(r, "raw_send's row", method="POST", host=s.authority,
                   path=PATH, attempt=1, status=200, outcome="completed",
                   body_len=len(body), exe="raw_send",
                   key=expected_key("POST", s.authority, PATH, body).decode())
