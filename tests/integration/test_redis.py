"""The journal in Redis (RETRYSAFE_JOURNAL=redis://[user:password@]host:port
[/db]): one journal for a fleet of machines.

Each test starts Debian's redis-server (servers.RedisServer, nothing
persisted) and plays several "machines": processes with their own HOME and
XDG_STATE_HOME (tmp/machine-NAME), so that nothing but Redis is shared
between them. What is checked is what a fleet relies on:

- guard mode deduplicates across machines: a retry on another machine is
  answered from the journal, byte for byte; of twins racing on several
  machines one is sent, the others wait for its answer or are refused;
- a process killed with its request in flight holds the key only as long
  as its lease (15 s): then the key's outcome is unknown to every machine;
- the key secret is shared through Redis when RETRYSAFE_SECRET is unset;
- Redis down, stopped, restarted, paused, refusing the password, or asked
  for over TLS (rediss://): requests still go out tagged, one warning per
  process, never the password; once it is back, rows are written again;
- the tool (dump, stats, prune, forget, key) reads and writes it;
- answers expire with RETRYSAFE_WINDOW; nothing is kept in files beside it.

The key layout under "retrysafe:" is src/journal_redis_lua.c's.
"""

import collections
import json
import os
import re
import select
import signal
import subprocess
import time

from harness import (PYTHON, assert_bytes, assert_tagged, client,
                     expected_key, musl, need, post_request, timeout)
from test_guard import (BODY, FORM, PATH, PY_RAW, _answer_of, _assert_rows,
                        _finish, _key, _kill_mid_request, _problem, _raw,
                        _raw_popen, _raw_run, _request, _sent_keys, _split,
                        _values, assert_not_replay, assert_replay)
from test_journal import PY_FORK

P = "retrysafe:"
WARNING = b"journal unusable"


# -- machines -----------------------------------------------------------------

def _machine(ctx, name):
    """HOME and XDG_STATE_HOME of machine `name`: tmp/machine-NAME/home and
    .../state, shared with no other machine."""
    base = os.path.join(ctx.tmp, "machine-" + name)
    dirs = {"HOME": os.path.join(base, "home"),
            "XDG_STATE_HOME": os.path.join(base, "state")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    return dirs


def _shim(ctx, name, hosts, journal, secret=True, **kw):
    """The shim's environment on machine name, with journal (None: the
    default, a SQLite file in the machine's state dir); without
    RETRYSAFE_SECRET unless secret."""
    if journal is not None:
        kw["journal"] = journal
    env = ctx.shim_env(hosts, **kw)
    env.update(_machine(ctx, name))
    if not secret:
        del env["RETRYSAFE_SECRET"]
    return env


def _guard(ctx, name, k, redis, **kw):
    """Guard mode on machine name for k's host, the journal in redis; a
    RETRYSAFE_WAIT of 5 s unless the test sets one."""
    kw.setdefault("wait", "5s")
    journal = kw.pop("journal", None) or redis.url()
    return _shim(ctx, name, k.authority, journal, mode="guard", **kw)


def _tool_env(ctx, redis, url=None):
    """The tool's environment (no shim) on a machine of its own, the
    journal in redis."""
    env = dict(ctx.env, RETRYSAFE_JOURNAL=url or redis.url())
    env.update(_machine(ctx, "tool"))
    return env


def _server(ctx, **kw):
    """A KeyServer that knows nothing of keys: every request that reaches
    it is a side effect."""
    return ctx.key_server(honour_keys=False, **kw)


def _rows(ctx, redis, host, url=None):
    """`retrysafe dump --json` of the journal in redis: host's rows."""
    return [r for r in ctx.dump(env=_tool_env(ctx, redis, url))
            if r.get("host") == host]


def _warnings(stderr):
    return [l for l in stderr.splitlines() if WARNING in l]


def _one_warning(stderr, what, *words):
    """stderr has exactly one "journal unusable" line; it holds each of
    words. Returns it."""
    lines = _warnings(stderr)
    assert len(lines) == 1, "%s: %d journal warnings, expected 1: %r" % (
        what, len(lines), stderr[-1500:])
    for w in words:
        assert w in lines[0], "%s: the warning does not say %r: %r" % (
            what, w, lines[0])
    return lines[0]


def _no_warning(stderr, what):
    assert not _warnings(stderr), "%s warned: %r" % (what, stderr[-1000:])


def _wait_for(what, fn, timeout=10.0):
    """Polls fn() until it is true; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("waited %ss for %s" % (timeout, what))
        time.sleep(0.05)


def _files_under(*dirs):
    """Every file under dirs, as paths relative to ctx.tmp's machines."""
    out = []
    for d in dirs:
        for root, _, files in os.walk(d):
            out += [os.path.join(root, f) for f in files]
    return sorted(out)


# -- a long-running client ----------------------------------------------------

# Sends, for each path read from stdin, that file's bytes on a new
# connection, reads the answer to the end of the stream, and prints one
# JSON line: how long it took and the answer. SIGPIPE kills it, as it
# would a C program (python ignores it): the shim's writes to a Redis that
# went away must not raise it in the host.
PY_STEPS = r"""
import json, signal, socket, sys, time
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
port = int(sys.argv[1])
for line in sys.stdin:
    req = open(line.strip(), "rb").read()
    t = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(req)
    with c.makefile("rb") as f:
        out = f.read()
    c.close()
    print(json.dumps({"seconds": time.monotonic() - t,
                      "answer": out.decode("latin-1")}), flush=True)
"""


class _Steps:
    """One process (PY_STEPS) under env that lives across the test: each
    send(body) has it POST one more request to server on a new connection.
    The requests are kept (sent) for the byte check."""

    def __init__(self, ctx, server, env):
        self.ctx, self.server = ctx, server
        self.err = os.path.join(ctx.tmp, "steps-%d.stderr" % id(self))
        with open(self.err, "wb") as err:
            self.p = subprocess.Popen([PYTHON, "-c", PY_STEPS,
                                       str(server.port)], env=env,
                                      stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=err,
                                      cwd=ctx.tmp)
        self.sent = []

    def send(self, body, timeout=15):
        """(seconds the request took, the answer)."""
        raw = post_request(self.server.authority, PATH, body,
                           ["Content-Type: " + FORM, "Connection: close"])
        self.sent.append((body, raw))
        path = self.ctx.write(raw)
        self.p.stdin.write(path.encode() + b"\n")
        self.p.stdin.flush()
        if not select.select([self.p.stdout], [], [], timeout)[0]:
            raise AssertionError("request %r: no answer in %s s; stderr %r"
                                 % (body, timeout, self.stderr()[-800:]))
        line = self.p.stdout.readline()
        assert line, "the client died at %r (exit %r); stderr %r" % (
            body, self.p.poll(), self.stderr()[-800:])
        out = json.loads(line)
        return out["seconds"], out["answer"].encode("latin-1")

    def stderr(self):
        with open(self.err, "rb") as f:
            return f.read()

    def close(self):
        """Ends the client (end of its input); it must exit 0. Returns its
        stderr."""
        self.p.stdin.close()
        try:
            rc = self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError("the client did not exit; stderr %r"
                                 % self.stderr()[-800:])
        assert rc == 0, "the client exited %d; stderr %r" % (
            rc, self.stderr()[-800:])
        return self.stderr()

    def assert_all_tagged(self):
        """Every request sent reached the server, each with its key."""
        reqs = self.server.wait_requests(len(self.sent))
        assert len(reqs) == len(self.sent), "server got %d requests, %d " \
            "were sent" % (len(reqs), len(self.sent))
        return [assert_tagged(req.raw, raw, "POST", self.server.authority,
                              PATH, body, what="request %r" % body).decode()
                for (body, raw), req in zip(self.sent, reqs)]


def _steps_on_machine_a(ctx, **shim):
    """Redis, a RecordingServer, and a long-running client on machine a
    (the journal in that Redis; RETRYSAFE_<NAME> for each keyword)."""
    r = ctx.redis_server()
    s = ctx.recording_server()
    return r, s, _Steps(ctx, s, _shim(ctx, "a", s.authority, r.url(),
                                      **shim))


# -- 1. a retry on another machine --------------------------------------------

def _two_machines_replay(ctx, run):
    """Machine a's request completes; machine b's retry of it is answered
    from the journal in Redis. run(env, k) sends the request, returns
    (answer, stderr)."""
    r = ctx.redis_server()
    # The control: each machine with its own (SQLite) journal. Nothing is
    # shared, so the second machine's request is performed again.
    k0 = _server(ctx)
    for name in ("a0", "b0"):
        run(dict(ctx.shim_env(k0.authority, mode="guard"),
                 **_machine(ctx, name)), k0)
    assert k0.count == 2, "control: %d side effects, expected 2" % k0.count

    k = _server(ctx)
    key = _key(k)
    first, err_a = run(_guard(ctx, "a", k, r), k)
    second, err_b = run(_guard(ctx, "b", k, r), k)
    k.wait_idle(10)
    assert k.count == 1 and _sent_keys(k) == [key], (
        "the server saw %r (%d side effects), expected one request with %s"
        % (_sent_keys(k), k.count, key))
    assert_bytes(_answer_of(k), first, "machine a received")
    assert_not_replay(first, "machine a's answer")
    assert_replay(first, second, "machine b's retry")
    _no_warning(err_a, "machine a")
    _no_warning(err_b, "machine b")
    rows = _rows(ctx, r, k.authority)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)], key)
    assert [row["attempt"] for row in rows] == [1, 2], rows
    assert P + "a:" + key in r.keys(), "no answer kept in Redis: %r" % (
        r.keys(),)


@timeout(30)
def test_redis_retry_on_other_machine_replayed(ctx):
    def run(env, k):
        p = _raw_run(ctx, k, env)
        return p.stdout, p.stderr
    _two_machines_replay(ctx, run)


@musl
@timeout(30)
def test_redis_retry_on_other_machine_replayed_c_client(ctx):
    # The same with a C client (built for glibc, and for musl by `run.py
    # --musl`: the musl build has hiredis linked in).
    def run(env, k):
        f = ctx.write(_request(k))
        p = ctx.run([client("raw_send"), "-n", 0, k.host, k.port, f],
                    env=env, timeout=20)
        return p.stdout, p.stderr
    _two_machines_replay(ctx, run)


@timeout(30)
def test_redis_large_binary_answer_replayed(ctx):
    # A 600 KB answer with every byte value goes through Redis intact; one
    # over RETRYSAFE_MAX_RESPONSE is kept without its body: the retry on
    # the other machine is refused (409 too-large), not sent.
    r = ctx.redis_server()
    k = _server(ctx, payload_size=600000, chunked=True)
    first = _raw(ctx, k, _guard(ctx, "a", k, r))
    second = _raw(ctx, k, _guard(ctx, "b", k, r))
    assert k.count == 1, "%d side effects" % k.count
    assert len(first) > 600000, len(first)
    assert_replay(first, second, "the 600 KB answer on machine b")

    k = _server(ctx, payload_size=4096)
    key = _key(k)
    _raw(ctx, k, _guard(ctx, "a", k, r, max_response="1KiB"))
    second = _raw(ctx, k, _guard(ctx, "b", k, r, max_response="1KiB"))
    assert k.count == 1, "too large: %d side effects" % k.count
    doc = _problem(second, "too-large", key, "the too-large answer")
    assert doc.get("succeeded") is True and doc.get("original_status") == 200
    _assert_rows(_rows(ctx, r, k.authority),
                 [("completed", 200), ("refused", 409)], key)


@timeout(20)
def test_redis_window_ends_across_machines(ctx):
    # RETRYSAFE_WINDOW=1s: the same request on another machine after the
    # window is a new operation (generation 1, a new key), sent; within
    # the window it would be a retry.
    r = ctx.redis_server()
    k = _server(ctx)
    _raw(ctx, k, _guard(ctx, "a", k, r, window="1s"))
    time.sleep(1.3)
    second = _raw(ctx, k, _guard(ctx, "b", k, r, window="1s"))
    k.wait_idle(10)
    assert k.count == 2, "%d side effects" % k.count
    assert_not_replay(second, "after the window")
    keys = _sent_keys(k)
    assert keys[0] == _key(k) and keys[1] != keys[0], keys
    rows = _rows(ctx, r, k.authority)
    assert [(row["key"], row["generation"], row["outcome"]) for row in rows] \
        == [(keys[0], 0, "completed"), (keys[1], 1, "completed")], rows


@timeout(20)
def test_redis_fork_child_journals_on_its_own(ctx):
    # A forked child does not use its parent's connection to Redis: the
    # parent's and the child's requests each get their row.
    r = ctx.redis_server()
    s = ctx.recording_server()
    p = ctx.python(PY_FORK, s.port, env=_shim(ctx, "a", s.authority,
                                              r.url()))
    assert p.stderr == b"", p.stderr[-800:]
    ids = json.loads(p.stdout)
    assert ids["status"] == 0, ids
    sent = {q.target.decode(): q.header("Idempotency-Key").decode()
            for q in s.wait_requests(3)}
    rows = _rows(ctx, r, s.authority)
    assert [(row["path"], row["pid"], row["key"], row["outcome"])
            for row in rows] == [
        ("/parent-1", ids["parent"], sent["/parent-1"], "completed"),
        ("/child", ids["child"], sent["/child"], "completed"),
        ("/parent-2", ids["parent"], sent["/parent-2"], "completed")], rows


# -- 2. twins at once on several machines -------------------------------------

# PY_RAW, started at the time (time.time()) in argv[3].
PY_RAW_AT = ("import sys, time\n"
             "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))\n"
             + PY_RAW)


def _twins_at_once(ctx, r, k, n, **guard):
    """n processes, alternately on machines a and b, send the same request
    at the same moment; their answers."""
    f = ctx.write(_request(k))
    at = time.time() + 1.5     # all started and their shims loaded
    ps = [subprocess.Popen([PYTHON, "-c", PY_RAW_AT, str(k.port), f,
                            "%.3f" % at],
                           env=_guard(ctx, "ab"[i % 2], k, r, **guard),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           cwd=ctx.tmp)
          for i in range(n)]
    outs = [_finish(p, "twin %d" % i, timeout=30) for i, p in enumerate(ps)]
    k.wait_idle(10)
    return outs


@timeout(60)
def test_redis_twins_on_two_machines_one_sent(ctx):
    # Six processes on two machines send the same POST at once to a slow
    # server: one goes out; with RETRYSAFE_WAIT long enough the five others
    # wait for its answer and get it replayed, with a short one they are
    # refused (409 in-flight). Never a second side effect.
    r = ctx.redis_server()
    k = _server(ctx, delay=1.0)
    outs = _twins_at_once(ctx, r, k, 6, wait="15s")
    key = _key(k)
    assert k.count == 1 and _sent_keys(k) == [key], (
        "%d side effects; the server saw %r" % (k.count, _sent_keys(k)))
    original = _answer_of(k)
    replays = [o for o in outs
               if _values(_split(o, "twin")[1], "Idempotent-Replayed")]
    assert len(replays) == 5 and original in outs, (
        "%d replays, expected 5 and the original once: %r" % (len(replays),
                                                               outs))
    for i, o in enumerate(replays):
        assert_replay(original, o, "replay %d" % (i + 1))
    rows = _rows(ctx, r, k.authority)
    got = collections.Counter((row["outcome"], row["status"]) for row in rows)
    assert got == {("completed", 200): 1, ("replayed", 200): 5}, (
        "journal outcomes %r; rows %r" % (dict(got), rows))
    assert {row["key"] for row in rows} == {key}, rows
    assert sorted(row["attempt"] for row in rows) == [1, 2, 3, 4, 5, 6], rows

    k2 = _server(ctx, delay=3.0)
    outs = _twins_at_once(ctx, r, k2, 6, wait="300ms")
    key2 = _key(k2)
    assert k2.count == 1 and _sent_keys(k2) == [key2], (
        "short wait: %d side effects; the server saw %r" % (k2.count,
                                                            _sent_keys(k2)))
    sent = [o for o in outs if o == _answer_of(k2)]
    refused = [o for o in outs if o not in sent]
    assert len(sent) == 1 and len(refused) == 5, outs
    for o in refused:
        _problem(o, "in-flight", key2, "a twin past RETRYSAFE_WAIT")
    rows = _rows(ctx, r, k2.authority)
    got = collections.Counter((row["outcome"], row["status"]) for row in rows)
    assert got == {("completed", 200): 1, ("refused", 409): 5}, (
        "short wait: journal outcomes %r; rows %r" % (dict(got), rows))


# -- 3, 4. Redis down, restarted, paused --------------------------------------

@timeout(60)
def test_redis_stopped_and_restarted_mid_run(ctx):
    # A long-running process keeps sending while Redis goes away and comes
    # back (empty: nothing is persisted). Every request reaches the server
    # tagged, one warning in all; once Redis is back (and the 3 s pause
    # after a failure has passed), rows are written again.
    r, s, steps = _steps_on_machine_a(ctx)
    for i in range(3):
        steps.send("before=%d" % i)
    before = steps.assert_all_tagged()
    _wait_for("the rows written before the stop",
              lambda: len(_rows(ctx, r, s.authority)) == 3)
    assert {row["key"] for row in _rows(ctx, r, s.authority)} == set(before)
    _no_warning(steps.stderr(), "before the stop")

    r.stop()
    for i in range(3):
        steps.send("down=%d" % i)
    steps.assert_all_tagged()
    _one_warning(steps.stderr(), "while Redis is down",
                 b"Redis at redis://127.0.0.1:%d" % r.port)
    assert r.start() is None, "redis-server did not start again: %s" % (
        r.errors(),)
    time.sleep(3.5)
    for i in range(3):
        steps.send("after=%d" % i)
    keys = steps.assert_all_tagged()
    err = steps.close()
    _one_warning(err, "the whole run")
    rows = _rows(ctx, r, s.authority)
    assert sorted(row["key"] for row in rows) == sorted(keys[6:]), (
        "after the restart, rows %r; the keys sent after it %r"
        % ([(row["key"], row["outcome"]) for row in rows], keys[6:]))
    assert all(row["outcome"] == "completed" and row["status"] == 200
               for row in rows), rows


@timeout(20)
def test_redis_scripts_flushed_under_a_live_process(ctx):
    # SCRIPT FLUSH (or a failover to a server without the scripts) under a
    # connected process: its next writes load them again, no warning.
    r, s, steps = _steps_on_machine_a(ctx, mode="guard")
    steps.send("n=1")
    _wait_for("the first row", lambda: _rows(ctx, r, s.authority))
    assert r.cli("SCRIPT", "FLUSH") == b"OK"
    steps.send("n=2")
    keys = steps.assert_all_tagged()
    _no_warning(steps.close(), "after SCRIPT FLUSH")
    rows = _rows(ctx, r, s.authority)
    assert [(row["key"], row["outcome"]) for row in rows] == [
        (keys[0], "completed"), (keys[1], "completed")], rows


@timeout(30)
def test_redis_down_at_start(ctx):
    # Nothing listens where the journal is: both requests go out tagged,
    # one warning naming where, the process exits 0.
    r = ctx.redis_server()
    r.stop()
    s = ctx.recording_server()
    steps = _Steps(ctx, s, _shim(ctx, "a", s.authority, r.url(),
                                 mode="guard"))
    steps.send("n=1")
    steps.send("n=2")
    steps.assert_all_tagged()
    _one_warning(steps.close(), "Redis down", b"cannot connect to Redis at "
                 b"redis://127.0.0.1:%d" % r.port)


@timeout(40)
def test_redis_paused_request_still_goes_out(ctx):
    # Redis stops answering (SIGSTOP: connections are accepted, commands
    # never answered) under a guard-mode process that has used it: the
    # next request goes out tagged after the command timeout, not never.
    r, s, steps = _steps_on_machine_a(ctx, mode="guard")
    steps.send("n=1")
    r.pause()
    seconds, answer = steps.send("n=2")
    assert seconds < 6, "the request took %.1f s with Redis paused" % seconds
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
    steps.assert_all_tagged()
    r.resume()
    time.sleep(3.5)
    steps.send("n=3")
    keys = steps.assert_all_tagged()
    _one_warning(steps.close(), "Redis paused",
                 b"Redis at redis://127.0.0.1:%d" % r.port)
    rows = {row["key"]: row for row in _rows(ctx, r, s.authority)}
    for key in (keys[0], keys[2]):
        assert key in rows and rows[key]["outcome"] == "completed", (
            "key %s: rows %r" % (key, rows))


@timeout(40)
def test_redis_paused_from_the_start(ctx):
    # A fresh process meets a paused Redis: its first request still goes
    # out tagged, within the connect and command timeouts; without
    # RETRYSAFE_SECRET too (the secret cannot be read from Redis either:
    # the machine's own is used, with a warning that says so).
    r = ctx.redis_server()
    s = ctx.recording_server()
    r.pause()
    start = time.monotonic()
    p = _raw_run(ctx, s, _guard(ctx, "a", s, r))
    took = time.monotonic() - start
    assert took < 6, "the process took %.1f s with Redis paused" % took
    req = s.wait_requests(1)[0]
    assert_tagged(req.raw, _request(s), "POST", s.authority, PATH, BODY)
    assert p.stdout.startswith(b"HTTP/1.1 200 OK"), p.stdout[:200]
    _one_warning(p.stderr, "Redis paused",
                 b"Redis at redis://127.0.0.1:%d" % r.port)

    s.clear()
    start = time.monotonic()
    p = _raw_run(ctx, s, _shim(ctx, "b", s.authority, r.url(), mode="guard",
                               secret=False))
    took = time.monotonic() - start
    assert took < 6, "without RETRYSAFE_SECRET the process took %.1f s " \
        "with Redis paused" % took
    assert p.stdout.startswith(b"HTTP/1.1 200 OK"), p.stdout[:200]
    _one_warning(p.stderr, "Redis paused, no RETRYSAFE_SECRET")
    assert b"this machine's own secret" in p.stderr, p.stderr
    with open(os.path.join(ctx.tmp, "machine-b", "state", "retrysafe",
                           "secret"), "rb") as f:
        own = f.read().strip()
    req = s.wait_requests(1)[0]
    assert_tagged(req.raw, _request(s), "POST", s.authority, PATH, BODY,
                  secret=own)


# -- 5. passwords -------------------------------------------------------------

def _dedup_through(ctx, r, url, what):
    """Guard mode with the journal at url deduplicates across machines."""
    k = _server(ctx)
    a = _raw_run(ctx, k, _guard(ctx, "a", k, r, journal=url))
    b = _raw_run(ctx, k, _guard(ctx, "b", k, r, journal=url))
    k.wait_idle(10)
    assert k.count == 1, "%s: %d side effects" % (what, k.count)
    assert_replay(a.stdout, b.stdout, what + ": machine b's retry")
    _no_warning(a.stderr + b.stderr, what)
    _assert_rows(_rows(ctx, r, k.authority, url),
                 [("completed", 200), ("replayed", 200)], _key(k))


@timeout(40)
def test_redis_password_and_acl_user(ctx):
    # requirepass (a password with reserved characters, %-encoded in the
    # URL), then an ACL user (the default user off).
    r = ctx.redis_server(password="pa:ss@w/rd 1")
    url = r.url()
    assert "%40" in url and "%2F" in url, url
    _dedup_through(ctx, r, url, "requirepass")
    assert any(k.startswith(P + "a:") for k in r.keys()), r.keys()

    u = ctx.redis_server(users={"fleet": "acl-pass-7"})
    url = u.url()
    assert url.startswith("redis://fleet:acl-pass-7@"), url
    _dedup_through(ctx, u, url, "ACL user")
    assert any(k.startswith(P + "a:") for k in u.keys()), u.keys()

    # The least rights README gives for such a user: its keys, and the
    # commands its scripts and the tool use. Guard mode and the tool work.
    rules = "~retrysafe:* +@read +@write +@keyspace +@scripting"
    m = ctx.redis_server(users={"admin": "admin-pass", "agent": ("agent-pass", rules)})
    url = m.url(user="agent", password="agent-pass")
    _dedup_through(ctx, m, url, "least-rights ACL user")
    assert any(k.startswith(P + "a:") for k in m.keys()), m.keys()
    for command in (["stats"], ["dump", "--json"], ["prune", "--older-than", "1d"]):
        p = ctx.tool(*command, env=_tool_env(ctx, m, url))
        assert p.returncode == 0 and not p.stderr, (command, p.returncode, p.stderr)


@timeout(40)
def test_redis_wrong_password_warns_without_it(ctx):
    # A refused login: one warning that says so and never quotes the
    # password; the request goes out tagged; nothing is stored.
    r = ctx.redis_server(password="right-pass-1")
    u = ctx.redis_server(users={"fleet": "right-pass-2"})
    s = ctx.recording_server()
    cases = [(r, r.url(password="wrong-pw-AAA"), b"wrong-pw-AAA"),
             (u, u.url(user="fleet", password="wrong-pw-BBB"),
              b"wrong-pw-BBB"),
             (u, u.url(user="", password="%wrong-pw-CCC"),
              b"wrong-pw-CCC"),
             (r, "redis://127.0.0.1:%d" % r.port, None)]
    for i, (server, url, pw) in enumerate(cases):
        body = "case=%d" % i
        s.clear()
        p = _raw_run(ctx, s, _shim(ctx, "a", s.authority, url, mode="guard"),
                     body=body)
        req = s.wait_requests(1)[0]
        assert_tagged(req.raw, _request(s, body=body), "POST", s.authority,
                      PATH, body)
        line = _one_warning(p.stderr, url, b"Redis at redis://127.0.0.1:%d"
                            % server.port)
        assert re.search(rb"(?i)auth|pass|log in", line), (
            "%s: the warning does not say the login failed: %r" % (url,
                                                                  line))
        if pw is not None:
            assert pw not in p.stderr and pw.lower() not in p.stderr.lower(), (
                "the password is in stderr: %r" % p.stderr)
        assert server.keys() == [], "%s: keys stored: %r" % (url,
                                                             server.keys())


# -- 6. the secret ------------------------------------------------------------

@timeout(30)
def test_redis_secret_shared_between_machines(ctx):
    # Without RETRYSAFE_SECRET: two machines that share a Redis journal
    # derive the same key for the same request (the secret stored once in
    # Redis); two machines with journals of their own do not.
    s = ctx.recording_server()

    def key_on(env):
        s.clear()
        p = _raw_run(ctx, s, env)
        _no_warning(p.stderr, "machine")
        vals = s.wait_requests(1)[0].header_values("Idempotency-Key")
        assert len(vals) == 1, vals
        return vals[0].decode()

    local = [key_on(_shim(ctx, name, s.authority, None, secret=False))
             for name in ("l1", "l2")]
    assert local[0] != local[1], "machines with their own secrets derived " \
        "the same key %s" % local[0]

    r = ctx.redis_server()
    shared = [key_on(_shim(ctx, name, s.authority, r.url(), secret=False))
              for name in ("a", "b")]
    assert shared[0] == shared[1], "machines sharing Redis: keys %r" % shared
    secret = r.cli("GET", P + "secret")
    assert secret, "no secret stored at %ssecret: %r" % (P, r.keys())
    assert shared[0] == expected_key("POST", s.authority, PATH, BODY,
                                     secret=secret,
                                     content_type=FORM).decode(), (
        "the key is not derived from the secret in Redis")
    machines = [os.path.join(ctx.tmp, "machine-" + n) for n in ("a", "b")]
    assert not [f for f in _files_under(*machines)
                if os.path.basename(f) == "secret"], (
        "a machine kept a secret of its own: %r" % _files_under(*machines))

    env = _tool_env(ctx, r)
    del env["RETRYSAFE_SECRET"]
    p = ctx.tool("key", "--content-type", FORM, "POST", s.url(PATH),
                 ctx.write(BODY), env=env)
    assert p.stdout.decode().strip() == shared[0], (
        "retrysafe key printed %r, the machines sent %s" % (p.stdout,
                                                            shared[0]))


@timeout(20)
def test_redis_tool_key_journal_option_uses_shared_secret(ctx):
    # `retrysafe key --journal redis://...` (no RETRYSAFE_JOURNAL, no
    # RETRYSAFE_SECRET) predicts what a shim with that journal sends: the
    # key from the secret in Redis, not from this machine's own.
    s = ctx.recording_server()
    r = ctx.redis_server()
    p = _raw_run(ctx, s, _shim(ctx, "a", s.authority, r.url(), secret=False))
    _no_warning(p.stderr, "machine a")
    sent = s.wait_requests(1)[0].header_values("Idempotency-Key")[0].decode()
    env = dict(ctx.env, **_machine(ctx, "tool"))
    del env["RETRYSAFE_SECRET"]
    p = ctx.tool("key", "--journal", r.url(), "--content-type", FORM, "POST",
                 s.url(PATH), ctx.write(BODY), env=env)
    assert p.stdout.decode().strip() == sent, (
        "retrysafe key --journal printed %r, the shim sent %s; stderr %r"
        % (p.stdout, sent, p.stderr))


# -- 7. the tool --------------------------------------------------------------

@timeout(40)
def test_redis_tool_dump_stats_prune_forget_key(ctx):
    r = ctx.redis_server()
    k = _server(ctx)
    env = _tool_env(ctx, r)
    key_a, key_b = _key(k, "a=1"), _key(k, "b=1")
    # key: what the shim will send, before and after.
    body_a = ctx.write("a=1")
    p = ctx.tool("key", "--content-type", FORM, "POST", k.url(PATH), body_a,
                 env=env)
    assert p.stdout.decode().strip() == key_a, p.stdout
    _raw(ctx, k, _guard(ctx, "a", k, r), body="a=1")
    _raw(ctx, k, _guard(ctx, "b", k, r), body="a=1")
    _raw(ctx, k, _guard(ctx, "b", k, r), body="b=1")
    assert _sent_keys(k) == [key_a, key_b], _sent_keys(k)
    p = ctx.tool("key", "--content-type", FORM, "POST", k.url(PATH), body_a,
                 env=env)
    assert p.stdout.decode().strip() == key_a, p.stdout

    rows = ctx.dump(env=env)
    assert [(row["key"], row["attempt"], row["outcome"], row["status"])
            for row in rows] == [(key_a, 1, "completed", 200),
                                 (key_a, 2, "replayed", 200),
                                 (key_b, 1, "completed", 200)], rows
    assert all(row["host"] == k.authority and row["path"] == PATH
               and row["method"] == "POST" and row["exe"].startswith("python")
               for row in rows), rows
    table = ctx.tool("dump", env=env).stdout.decode().splitlines()
    assert len(table) == 4 and table[0].split()[:2] == ["time", "pid"], table
    for line, (key, outcome) in zip(table[1:], [(key_a, "completed"),
                                                (key_a, "replayed"),
                                                (key_b, "completed")]):
        assert key in line and outcome in line.split(), (key, outcome, line)
    # --journal instead of the environment
    by_option = ctx.dump("--journal", r.url(), env=ctx.env)
    assert by_option == rows, by_option

    stats = ctx.stats(env=env)
    h = stats.get(k.authority)
    assert h and h["requests"] == 3 and h["keys"] == 2 and \
        h["retried_keys"] == 1, stats
    assert h["outcomes"]["completed"] == 2 and \
        h["outcomes"]["replayed"] == 1 and h["status"]["2xx"] == 3, stats
    table = ctx.tool("stats", env=env).stdout.decode()
    assert k.authority in table, table

    # forget: the next attempt of a forgotten key is sent again
    p = ctx.tool("forget", key_a, env=env)
    assert b"forgot 2 attempt(s)" in p.stdout and key_a.encode() in p.stdout, \
        p.stdout
    assert P + "a:" + key_a not in r.keys(), r.keys()
    sent = _raw(ctx, k, _guard(ctx, "b", k, r), body="a=1")
    k.wait_idle(10)
    assert _sent_keys(k) == [key_a, key_b, key_a], _sent_keys(k)
    assert_bytes(_answer_of(k, 2), sent, "after forget, the client received")
    p = ctx.tool("forget", "no-such-key", env=env, check=False)
    assert p.returncode == 1 and b"no attempt" in p.stderr, p

    # prune: rows older than the cut go, the count is printed
    time.sleep(1.2)
    _raw(ctx, k, _guard(ctx, "a", k, r), body="c=1")
    assert len(ctx.dump(env=env)) == 5
    p = ctx.tool("prune", "--older-than", "1s", env=env)
    assert re.match(rb"^pruned 4 attempt\(s\)", p.stdout), p.stdout
    rows = ctx.dump(env=env)
    assert [(row["key"], row["outcome"]) for row in rows] == [
        (_key(k, "c=1"), "completed")], rows
    p = ctx.tool("prune", "--older-than", "1h", env=env)
    assert re.match(rb"^pruned 0 attempt\(s\)", p.stdout), p.stdout
    assert len(ctx.dump(env=env)) == 1


@timeout(20)
def test_redis_tool_on_empty_journal(ctx):
    # A Redis nothing was journaled in yet: no rows, no hosts, exit 0.
    r = ctx.redis_server()
    env = _tool_env(ctx, r)
    for args in (["dump"], ["dump", "--json"], ["stats"], ["stats", "--json"],
                 ["prune", "--older-than", "1s"]):
        p = ctx.tool(*args, env=env)
        lines = p.stdout.decode().splitlines()
        assert p.stderr == b"" and len(lines) <= 1, (args, p)
    assert ctx.dump(env=env) == [] and ctx.stats(env=env) == {}


@timeout(20)
def test_redis_tool_never_prints_password(ctx):
    # A refused login: every command says so (exit 2), and never quotes
    # the password, whether it came from RETRYSAFE_JOURNAL or --journal.
    r = ctx.redis_server(password="right-pass-1")
    url = r.url(password="wrong-pw-DDD")
    bad = _tool_env(ctx, r, url)
    for args, env in ((["dump"], bad), (["stats"], bad),
                      (["prune", "--older-than", "1s"], bad),
                      (["forget", "abc"], bad),
                      (["dump", "--journal", url], ctx.env)):
        p = ctx.tool(*args, env=env, check=False)
        assert p.returncode == 2 and b"WRONGPASS" in p.stderr, (args, p)
        assert b"wrong-pw-DDD" not in p.stderr + p.stdout, (
            "%s quotes the password: %r" % (" ".join(args), p.stderr))


# -- 8. the window; the database ----------------------------------------------

@timeout(20)
def test_redis_answer_expires_with_window(ctx):
    r = ctx.redis_server()
    k = _server(ctx)
    _raw(ctx, k, _guard(ctx, "a", k, r, window="10m"))
    key = _key(k)
    for name in (P + "a:" + key, P + "k:" + key):
        pttl = r.cli("PTTL", name)
        assert 590000 < pttl <= 600000, "PTTL %s = %r, expected about 10m" % (
            name, pttl)
    k2 = _server(ctx)
    _raw(ctx, k2, _guard(ctx, "a", k2, r))     # the default window: 24 h
    pttl = r.cli("PTTL", P + "a:" + _key(k2))
    assert 86390000 < pttl <= 86400000, "PTTL %r, expected about 24h" % pttl


@timeout(20)
def test_redis_database_number_selected(ctx):
    # redis://host:port/3 keeps everything in database 3.
    r = ctx.redis_server()
    k = _server(ctx)
    url = r.url(db=3)
    _raw(ctx, k, _guard(ctx, "a", k, r, journal=url))
    second = _raw(ctx, k, _guard(ctx, "b", k, r, journal=url))
    assert k.count == 1, "%d side effects" % k.count
    assert_replay(_answer_of(k), second, "machine b's retry")
    assert P + "k:" + _key(k) in r.keys(db=3), r.keys(db=3)
    assert r.keys() == [], "database 0 was written: %r" % r.keys()
    assert len(_rows(ctx, r, k.authority, url)) == 2
    assert _rows(ctx, r, k.authority, r.url(db=0)) == []


# -- 9. a process killed in flight: its lease lapses --------------------------

@timeout(90)
def test_redis_killed_owner_lease_lapses_to_unknown(ctx):
    # Machine a's process is killed with its request at the server. Until
    # its lease (15 s) lapses, its attempt is in flight: a twin waits and is
    # refused in-flight. After, a twin's claim ends it as unknown: refused
    # unknown-outcome, or sent again with RETRYSAFE_ON_UNKNOWN=resend.
    r = ctx.redis_server()
    k = _server(ctx, delay=1.0)
    key = _key(k)
    _kill_mid_request(ctx, k, _guard(ctx, "a", k, r))
    killed = time.monotonic()
    flights = {f: v for f, v in _hash(r, P + "k:" + key).items()
               if f.startswith("p:")}
    assert len(flights) == 1, "attempts in flight: %r" % flights
    owner = list(flights.values())[0].split()[0]
    lease = P + "owner:" + owner
    assert 0 < r.cli("PTTL", lease) <= 15000, r.cli("PTTL", lease)
    rows = _rows(ctx, r, k.authority)
    _assert_rows(rows, [("pending", None)], key, "while the lease runs")

    b = _raw(ctx, k, _guard(ctx, "b", k, r, wait="1s"))
    _problem(b, "in-flight", key, "a twin while the lease runs")
    assert len(k.requests) == 1, "the twin was sent: %r" % _sent_keys(k)

    _wait_for("the killed process's lease to lapse",
              lambda: r.cli("EXISTS", lease) == 0, timeout=30)
    lapsed = time.monotonic() - killed
    assert lapsed > 10, "the lease of a killed process lapsed after " \
        "%.1f s, not its 15 s" % lapsed
    c = _raw(ctx, k, _guard(ctx, "c", k, r))
    _problem(c, "unknown-outcome", key, "after the lease lapsed")
    assert len(k.requests) == 1, "sent after the lease: %r" % _sent_keys(k)

    d = _raw(ctx, k, _guard(ctx, "d", k, r, on_unknown="resend"))
    k.wait_idle(10)
    assert _sent_keys(k) == [key, key], _sent_keys(k)
    assert_bytes(_answer_of(k, 1), d, "the resent request's client")
    _assert_rows(_rows(ctx, r, k.authority),
                 [("unknown", None), ("refused", 409), ("refused", 409),
                  ("completed", 200)], key)


# PY_RAW, waiting up to 60 s for the answer (its own gives up at 15 s).
PY_RAW_PATIENT = PY_RAW.replace("timeout=15", "timeout=60")
assert PY_RAW_PATIENT != PY_RAW


@timeout(60)
def test_redis_lease_renewed_while_request_in_flight(ctx):
    # A live process whose request takes 20 s keeps its lease (15 s)
    # renewed: at 16 s a twin on another machine still sees it in flight,
    # waits for its answer and gets it replayed; no unknown outcome.
    r = ctx.redis_server()
    k = _server(ctx, delay=20.0)
    key = _key(k)
    a = _raw_popen(ctx, k, _guard(ctx, "a", k, r, wait="30s"),
                   script=PY_RAW_PATIENT)
    started = time.monotonic()
    _wait_for("the request at the server", lambda: k.requests)
    time.sleep(max(0.0, 16 - (time.monotonic() - started)))
    leases = r.keys(P + "owner:*")
    assert len(leases) == 1 and r.cli("PTTL", leases[0]) > 0, (
        "16 s into its request, the live process's lease: %r" % leases)
    b = _raw(ctx, k, _guard(ctx, "b", k, r, wait="30s"),
             script=PY_RAW_PATIENT)
    first = _finish(a, "machine a", timeout=30)
    k.wait_idle(10)
    assert k.count == 1 and _sent_keys(k) == [key], _sent_keys(k)
    assert_bytes(_answer_of(k), first, "machine a received")
    assert_replay(first, b, "the twin that waited on machine b")
    _assert_rows(_rows(ctx, r, k.authority),
                 [("completed", 200), ("replayed", 200)], key)


def _hash(r, name):
    """HGETALL name, as {str: str}."""
    v = r.cli("HGETALL", name)
    return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}


# -- 10. rediss:// ------------------------------------------------------------

@timeout(20)
def test_redis_tls_url_refused_clearly(ctx):
    # hiredis 0.14 has no TLS: rediss:// is refused, with a warning that
    # says why, not used in plain; the request goes out tagged.
    r = ctx.redis_server()
    s = ctx.recording_server()
    url = r.url(scheme="rediss")
    p = _raw_run(ctx, s, _shim(ctx, "a", s.authority, url, mode="guard"))
    req = s.wait_requests(1)[0]
    assert_tagged(req.raw, _request(s), "POST", s.authority, PATH, BODY)
    _one_warning(p.stderr, "rediss://", b"rediss://", b"TLS")
    assert r.keys() == [], "stored over plain TCP: %r" % r.keys()


@timeout(20)
def test_redis_tool_refuses_tls_url_clearly(ctx):
    # The tool, asked for a rediss:// journal, says why it cannot use it
    # (no TLS in this hiredis), as the shim does.
    r = ctx.redis_server()
    url = r.url(scheme="rediss")
    for args in (["dump"], ["stats"], ["dump", "--journal", url]):
        p = ctx.tool(*args, env=_tool_env(ctx, r, url), check=False)
        assert p.returncode == 2 and b"TLS" in p.stderr, (args, p)


# -- 11. nothing beside the journal -------------------------------------------

@timeout(30)
def test_redis_no_files_beside_journal(ctx):
    # The filter of seen requests and the claim table are files beside a
    # SQLite journal; a journal in Redis has none, on any machine.
    k = _server(ctx)
    _raw(ctx, k, _shim(ctx, "sqlite", k.authority, None, mode="guard"))
    sqlite_files = {os.path.basename(f) for f in
                    _files_under(os.path.join(ctx.tmp, "machine-sqlite"))}
    assert {"journal.db-seen", "journal.db-claims"} <= sqlite_files, (
        "control: no filter or claim table beside the SQLite journal: %r"
        % sqlite_files)

    r = ctx.redis_server()
    k = _server(ctx)
    _raw(ctx, k, _guard(ctx, "a", k, r))
    _raw(ctx, k, _guard(ctx, "b", k, r))
    _raw(ctx, k, _shim(ctx, "b", k.authority, r.url()), body="tagged=1")
    assert k.count == 2, k.count
    files = _files_under(*(os.path.join(ctx.tmp, "machine-" + n)
                           for n in ("a", "b")))
    assert not [f for f in files if "journal.db" in os.path.basename(f)
                or f.endswith(("-seen", "-claims"))], (
        "files made beside a Redis journal: %r" % files)
    assert not [f for f in os.listdir(ctx.tmp) if f.startswith("redis:")], (
        os.listdir(ctx.tmp))


# -- 12. what the review of the Redis journal found (a342192) -----------------

@timeout(20)
def test_redis_host_with_its_own_hiredis(ctx):
    # redis-cli carries a hiredis of its own. Under the shim, with the
    # journal in Redis and no RETRYSAFE_SECRET (the shim asks Redis for the
    # secret as soon as redis-cli connects), it still works.
    cli = need("redis-cli")
    r = ctx.redis_server()
    env = _shim(ctx, "a", "*", r.url(), secret=False)
    p = ctx.run([cli, "-p", r.port, "ping"], env=env, check=False)
    assert p.returncode == 0 and p.stdout == b"PONG\n", (
        "redis-cli under the shim: exit %d, stdout %r, stderr %r"
        % (p.returncode, p.stdout, p.stderr[-600:]))
    assert r.cli("GET", P + "secret"), (
        "the shim did not ask Redis for the secret: %r" % (r.keys(),))


def _late_answer_of_a_not_bs(ctx, r, a_seconds, b_seconds, restart):
    """Process A's request (answered 201 after a_seconds) is in flight
    when restart() makes Redis start again; process B's request (200
    after b_seconds, longer) then starts. A's answer, when it comes, must
    not end B's attempt: B's retry gets B's answer replayed."""
    ka = _server(ctx, delay=a_seconds, status=201)
    kb = _server(ctx, delay=b_seconds)
    a = _raw_popen(ctx, ka, _guard(ctx, "a", ka, r), body="a=1",
                   script=PY_RAW_PATIENT)
    _wait_for("A's attempt in flight", lambda: r.keys(P + "owner:*"))
    restart()
    b = _raw_popen(ctx, kb, _guard(ctx, "b", kb, r), body="b=2",
                   script=PY_RAW_PATIENT)
    key_b = _key(kb, "b=2")
    _wait_for("B's attempt in flight",
              lambda: r.keys(P + "k:" + key_b) and r.keys(P + "owner:*"))
    first_a = _finish(a, "process A", timeout=30)
    assert first_a.startswith(b"HTTP/1.1 201 "), first_a[:200]
    assert P + "a:" + key_b not in r.keys(), (
        "A's answer was kept for B's key %s while B is in flight: %r"
        % (key_b, _hash(r, P + "a:" + key_b)))
    first_b = _finish(b, "process B", timeout=30)
    assert_bytes(_answer_of(kb), first_b, "process B received")
    retry = _raw(ctx, kb, _guard(ctx, "c", kb, r), body="b=2")
    assert kb.count == 1, "B's retry was sent: %r" % _sent_keys(kb)
    assert_replay(first_b, retry, "B's retry (A's answer was %r)"
                  % first_a[:40])


def _restart(r):
    r.stop()
    assert r.start() is None, "redis-server did not start again: %s" % (
        r.errors(),)


@timeout(60)
def test_redis_late_answer_from_before_data_loss_not_another_attempts(ctx):
    # Process A's request is in flight when Redis restarts empty; process
    # B's request then gets the first attempt id of the new data, the one
    # A's attempt had. A's answer, when it comes, must not end B's attempt.
    # (A's request takes 10 s: its writer meets the dead connection at its
    # 5 s lease renewal, and has a new one when the answer comes.)
    r = ctx.redis_server()
    _late_answer_of_a_not_bs(ctx, r, 10.0, 14.0, lambda: _restart(r))


@timeout(40)
def test_redis_keys_stable_when_redis_down_or_emptied(ctx):
    # Without RETRYSAFE_SECRET, a machine keeps a copy of the secret it got
    # from Redis: the same request gets the same key with Redis up, down,
    # and restarted empty (the copy is proposed again), the key `retrysafe
    # key` predicts. Only a machine that never reached Redis uses its own
    # secret, and says so.
    r = ctx.redis_server()
    s = ctx.recording_server()

    def key_on(name):
        s.clear()
        p = _raw_run(ctx, s, _shim(ctx, name, s.authority, r.url(),
                                   secret=False))
        vals = s.wait_requests(1)[0].header_values("Idempotency-Key")
        assert len(vals) == 1, vals
        return vals[0].decode(), p.stderr

    up, err = key_on("a")
    _no_warning(err, "Redis up")
    r.stop()
    down, err = key_on("a")
    _one_warning(err, "Redis down", b"Redis at redis://127.0.0.1:%d" % r.port)
    assert down == up, "machine a's key changed when Redis went down: %s, " \
        "then %s; stderr %r" % (up, down, err)
    assert b"own secret" not in err, err
    # The keys are right: the journal's warning is the only one.
    assert err.count(b": warn: ") == 1, err
    other, err = key_on("b")
    assert b"this machine's own secret" in err, (
        "a machine that never reached Redis does not say it uses its own "
        "secret: %r" % err)
    assert other != up, "machine b (never reached Redis) sent %s too" % up
    assert r.start() is None, "redis-server did not start again: %s" % (
        r.errors(),)
    again, err = key_on("a")
    _no_warning(err, "Redis restarted empty")
    assert again == up, "machine a's key changed when Redis restarted " \
        "empty: %s, then %s" % (up, again)
    with open(os.path.join(ctx.tmp, "machine-a", "state", "retrysafe",
                           "shared-secret"), "rb") as f:
        assert f.read().strip() == r.cli("GET", P + "secret")
    env = _tool_env(ctx, r)
    del env["RETRYSAFE_SECRET"]
    p = ctx.tool("key", "--content-type", FORM, "POST", s.url(PATH),
                 ctx.write(BODY), env=env)
    assert p.stdout.decode().strip() == up, (
        "retrysafe key printed %r, machine a sent %s" % (p.stdout, up))


def _redis_clients(r):
    """How many connections Redis has, the one asking included."""
    return len(r.cli("CLIENT", "LIST").splitlines())


@timeout(30)
def test_redis_connection_closed_while_idle_replaced(ctx):
    # Redis's `timeout` closes a connection idle for 1 s. A long-running
    # guard-mode process whose connections were closed so still finds its
    # request's first attempt: the retry is replayed, not sent again.
    r = ctx.redis_server(timeout=1)
    k = _server(ctx)
    steps = _Steps(ctx, k, _guard(ctx, "a", k, r))
    _, first = steps.send(BODY)
    _wait_for("the first attempt's answer in Redis",
              lambda: P + "a:" + _key(k) in r.keys())
    _wait_for("Redis to close the idle connections",
              lambda: _redis_clients(r) == 1, timeout=5)
    _, second = steps.send(BODY)
    err = steps.close()
    k.wait_idle(10)
    assert k.count == 1, "the retry after the idle close was sent: %r" % (
        _sent_keys(k),)
    assert_replay(first, second, "the retry after the idle close")
    _no_warning(err, "a connection closed while idle")
    _assert_rows(_rows(ctx, r, k.authority),
                 [("completed", 200), ("replayed", 200)], _key(k))


@timeout(30)
def test_redis_window_shorter_than_request(ctx):
    # RETRYSAFE_WINDOW=1s, an answer after 2.5 s: the attempt in flight
    # outlives the window, its outcome is journaled.
    r = ctx.redis_server()
    k = _server(ctx, delay=2.5)
    out = _raw(ctx, k, _guard(ctx, "a", k, r, window="1s"))
    assert_bytes(_answer_of(k), out, "the client received")
    _assert_rows(_rows(ctx, r, k.authority), [("completed", 200)], _key(k))


@timeout(30)
def test_redis_huge_window(ctx):
    # The largest window the configuration takes (106751991167 days: the
    # milliseconds just fit in 63 bits) is kept as ten years in Redis,
    # where the answer is replayed from.
    window = "106751991167d"
    r = ctx.redis_server()
    k = _server(ctx)
    key = _key(k)
    a = _raw_run(ctx, k, _guard(ctx, "a", k, r, window=window))
    _no_warning(a.stderr, "a huge window")
    second = _raw(ctx, k, _guard(ctx, "b", k, r, window=window))
    assert k.count == 1, "the retry was sent: %r" % _sent_keys(k)
    assert_replay(a.stdout, second, "the retry in a huge window")
    _assert_rows(_rows(ctx, r, k.authority),
                 [("completed", 200), ("replayed", 200)], key)
    pttl = r.cli("PTTL", P + "k:" + key)
    assert 0 < pttl <= 10 * 365 * 24 * 3600 * 1000, (
        "PTTL %sk:%s = %r, expected at most ten years" % (P, key, pttl))
    flights = [f for f in _hash(r, P + "k:" + key) if f.startswith("p:")]
    assert not flights, "attempts left in flight: %r" % flights


@timeout(90)
def test_redis_late_outcome_after_lapsed_lease_known(ctx):
    # Process A is stopped (SIGSTOP) with its request at the server until
    # its lease (15 s) lapses: a retry then is refused, unknown outcome.
    # A continues and gets its answer, a 503 (not final: not kept for
    # replay). The outcome is known now: the next retry is sent.
    r = ctx.redis_server()
    k = _server(ctx, delay=1.0, status=503)
    key = _key(k)
    a = _raw_popen(ctx, k, _guard(ctx, "a", k, r, wait="1s"),
                   script=PY_RAW_PATIENT)
    _wait_for("A's attempt in flight", lambda: [
        f for f in _hash(r, P + "k:" + key) if f.startswith("p:")])
    a.send_signal(signal.SIGSTOP)
    try:
        _wait_for("A's lease to lapse", lambda: not r.keys(P + "owner:*"),
                  timeout=30)
        c = _raw(ctx, k, _guard(ctx, "c", k, r, wait="1s"))
        _problem(c, "unknown-outcome", key, "a retry after the lease lapsed")
    finally:
        a.send_signal(signal.SIGCONT)
    first = _finish(a, "process A", timeout=30)
    assert_bytes(_answer_of(k), first, "process A received")
    d = _raw(ctx, k, _guard(ctx, "d", k, r, wait="1s"))
    k.wait_idle(10)
    assert _sent_keys(k) == [key, key], (
        "the retry after A's 503 was not sent (server saw %r); it got %r"
        % (_sent_keys(k), d[:400]))
    assert_bytes(_answer_of(k, 1), d, "the retry after A's 503")


# -- 13. what the second review found (2ceda80) --------------------------------

@timeout(60)
def test_redis_late_answer_after_snapshot_rollback_not_another_attempts(ctx):
    # Redis goes back to its last snapshot (SAVE, then stopped without
    # saving and started again) while process A's request is in flight:
    # the epoch is the snapshot's and the attempt counter is wound back, so
    # process B's request then gets the attempt id A holds. A's answer
    # (after 6 s) must not end B's attempt.
    r = ctx.redis_server()
    warm = _server(ctx)
    _raw(ctx, warm, _guard(ctx, "w", warm, r), body="warm=1")
    r.snapshot()
    snapshot_id = r.cli("GET", P + "id")

    def back_to_snapshot():
        assert r.cli("GET", P + "id") != snapshot_id, "A took no attempt id"
        _restart(r)
        assert r.cli("GET", P + "id") == snapshot_id, (
            "Redis did not go back to the snapshot: id %r, expected %r"
            % (r.cli("GET", P + "id"), snapshot_id))
    _late_answer_of_a_not_bs(ctx, r, 6.0, 8.0, back_to_snapshot)


@timeout(60)
def test_redis_down_many_processes_at_once_one_key(ctx):
    # A machine that never reached Redis, Redis down, no RETRYSAFE_SECRET:
    # 24 processes send the same request at the same moment. Each falls
    # back to the machine's own secret: one key for all, the one made with
    # its `secret` file; none takes another's proposal for the fleet's
    # secret, and no `shared-secret` copy is left (Redis never said which
    # it is).
    r = ctx.redis_server()
    r.stop()
    s = ctx.recording_server()
    env = _shim(ctx, "m", s.authority, r.url(), secret=False, mode="tag")
    f = ctx.write(_request(s))
    at = time.time() + 1.5
    ps = [subprocess.Popen([PYTHON, "-c", PY_RAW_AT, str(s.port), f,
                            "%.3f" % at], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=ctx.tmp)
          for _ in range(24)]
    for i, p in enumerate(ps):
        _finish(p, "process %d" % i, timeout=30)
    reqs = s.wait_requests(24)
    keys = collections.Counter(
        b",".join(q.header_values("Idempotency-Key")).decode() for q in reqs)
    assert len(keys) == 1, "24 processes sent the same request with %d " \
        "keys: %r" % (len(keys), dict(keys))
    state = os.path.join(ctx.tmp, "machine-m", "state", "retrysafe")
    with open(os.path.join(state, "secret"), "rb") as fh:
        own = fh.read().strip()
    assert_tagged(reqs[0].raw, _request(s), "POST", s.authority, PATH, BODY,
                  secret=own, what="keyed with the machine's own secret")
    assert not os.path.exists(os.path.join(state, "shared-secret")), (
        "a shared-secret copy was left though Redis was never reached: %r"
        % os.listdir(state))


@timeout(30)
def test_redis_key_state_expired_under_attempt_not_made_again(ctx):
    # RETRYSAFE_WINDOW=2s, an answer after 4 s that is not final (503):
    # the key's state expired under the attempt. Ending the attempt must
    # not make it again without an expiry (kept for ever).
    r = ctx.redis_server()
    k = _server(ctx, delay=4.0, status=503)
    out = _raw(ctx, k, _guard(ctx, "a", k, r, window="2s"))
    assert out.startswith(b"HTTP/1.1 503 "), out[:200]
    kh = P + "k:" + _key(k)
    pttl = r.cli("PTTL", kh)
    assert pttl != -1, "%s has no expiry after the attempt ended: %r" % (
        kh, _hash(r, kh))


@timeout(90)
def test_redis_journal_back_soon_after_refused_outage(ctx):
    # A long-running guard-mode process keeps sending (every ~1 s) while
    # Redis is down for 24 s: connections are refused, every request goes
    # out tagged. A refused connection is a quick failure: the process
    # rests 3 s after each, never longer, so within 6 s of Redis being back
    # (empty) a request is journaled again and its retry replayed. (The
    # rest used to double after each failure, to 24 s here, then 30 s.)
    r, s, steps = _steps_on_machine_a(ctx, mode="guard")
    steps.send("before=1")
    r.stop()
    down = time.monotonic()
    i = 0
    while time.monotonic() - down < 24:
        i += 1
        steps.send("down=%d" % i)
        time.sleep(1)
    assert r.start() is None, "redis-server did not start again: %s" % (
        r.errors(),)
    up = time.monotonic()
    replayed_after = None
    j = 0
    while time.monotonic() - up < 6:
        j += 1
        _, first = steps.send("up=%d" % j)
        _, retry = steps.send("up=%d" % j)
        if _values(_split(retry, "retry")[1], "Idempotent-Replayed"):
            replayed_after = time.monotonic() - up
            assert_replay(first, retry, "the retry of up=%d" % j)
            break
        time.sleep(0.5)
    assert replayed_after is not None, (
        "no retry was replayed within 6 s of Redis being back (%d tries); "
        "stderr %r" % (j, steps.stderr()[-800:]))
    # Every request that was not a replay reached the server tagged.
    steps.sent.pop()    # the replayed retry
    steps.assert_all_tagged()
    _one_warning(steps.close(), "the outage",
                 b"Redis at redis://127.0.0.1:%d" % r.port)


@timeout(20)
def test_redis_tool_key_redis_down_never_reached_own_secret(ctx):
    # `retrysafe key` with the journal in a Redis that is down, no
    # RETRYSAFE_SECRET and no copy of the shared secret: it exits 0 and
    # prints the key the shim on that machine sends (the machine's own
    # secret), with a warning that says so.
    r = ctx.redis_server()
    r.stop()
    env = _tool_env(ctx, r)
    del env["RETRYSAFE_SECRET"]
    p = ctx.tool("key", "--content-type", FORM, "POST",
                 "http://127.0.0.1:1" + PATH, ctx.write(BODY), env=env,
                 check=False)
    assert p.returncode == 0, "retrysafe key exited %d; stderr %r" % (
        p.returncode, p.stderr)
    assert b"this machine's own secret" in p.stderr, (
        "no warning that the machine's own secret is used: %r" % p.stderr)
    state = os.path.join(ctx.tmp, "machine-tool", "state", "retrysafe")
    with open(os.path.join(state, "secret"), "rb") as fh:
        own = fh.read().strip()
    printed = p.stdout.decode().strip()
    assert printed == expected_key("POST", "127.0.0.1:1", PATH, BODY,
                                   secret=own, content_type=FORM).decode(), (
        "retrysafe key printed %r, not the key from this machine's secret"
        % p.stdout)
    s = ctx.recording_server()
    shim = _shim(ctx, "tool", s.authority, r.url(), secret=False)
    p = ctx.tool("key", "--content-type", FORM, "POST", s.url(PATH),
                 ctx.write(BODY), env=env, check=False)
    _raw_run(ctx, s, shim)
    sent = s.wait_requests(1)[0].header_values("Idempotency-Key")
    assert sent == [p.stdout.strip()], (
        "retrysafe key printed %r, the shim on that machine sent %r"
        % (p.stdout, sent))
