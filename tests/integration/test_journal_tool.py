"""`retrysafe key`, `dump`, `stats` and `prune` against journals the shim
wrote (issue #3 part 7). The shim runs in real clients; the tool runs
without it, in ctx.env, and reads the journal at its default place unless a
test says otherwise."""

import json
import os
import re
import time

from harness import (OUTCOMES, PYTHON, ROW_FIELDS, assert_row, exchange,
                     expected_key, header_values, timeout)

BODY = "amount=2000&currency=usd"
PATH = "/v1/charges"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
ERROR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n"
             b"\r\nno")


def _key(req):
    vals = header_values(req.raw, "Idempotency-Key")
    assert len(vals) == 1, "server got %d key lines: %r" % (len(vals),
                                                            req.raw[:400])
    return vals[0].decode()


def _post(ctx, s, env, body=BODY, path=PATH):
    """curl POST under env; the key the server received."""
    _, reqs = exchange(s, lambda: ctx.curl("-d", body, s.url(path), env=env))
    return _key(reqs[0])


def _tool_key(ctx, *args, env=None, input=None):
    p = ctx.tool("key", *args, env=env, input=input)
    out = p.stdout.decode().strip()
    assert re.match(r"^[A-Za-z0-9_-]{32}$", out), "key printed %r" % out
    return out


def _summary(rows):
    return [(r.get("host"), r.get("path"), r.get("key"), r.get("attempt"),
             r.get("outcome"), r.get("status")) for r in rows]


# -- key --------------------------------------------------------------------------

def test_key_tool_matches_server(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    body_file = ctx.write(BODY)
    want = expected_key("POST", s.authority, PATH, BODY).decode()
    # Before anything was sent (no journal yet): generation 0.
    assert _tool_key(ctx, "POST", s.url(PATH), body_file) == want
    assert _post(ctx, s, env) == want
    # After: within the window, still the same key; body from stdin too.
    assert _tool_key(ctx, "POST", s.url(PATH), body_file) == want
    assert _tool_key(ctx, "POST", s.url(PATH), "-", input=BODY.encode()) \
        == want
    # The key covers the query (the journal does not store it).
    target = PATH + "?expand=customer&token=t0k"
    sent = _post(ctx, s, env, path=target)
    assert sent == expected_key("POST", s.authority, target, BODY).decode()
    assert _tool_key(ctx, "POST", s.url(target), body_file) == sent
    other = ctx.write("amount=1")
    assert _tool_key(ctx, "POST", s.url(PATH), other) == _post(
        ctx, s, env, body="amount=1")


def test_key_tool_scope_option_and_env(ctx):
    s = ctx.recording_server()
    body_file = ctx.write(BODY)
    sent = _post(ctx, s, ctx.shim_env(s.authority, scope="task-42"))
    assert sent == expected_key("POST", s.authority, PATH, BODY,
                                scope="task-42").decode()
    assert _tool_key(ctx, "--scope", "task-42", "POST", s.url(PATH),
                     body_file) == sent, "--scope"
    assert _tool_key(ctx, "POST", s.url(PATH), body_file,
                     env=dict(ctx.env, RETRYSAFE_SCOPE="task-42")) == sent, \
        "RETRYSAFE_SCOPE"
    assert _tool_key(ctx, "POST", s.url(PATH), body_file) != sent, \
        "no scope gave the scoped key"


@timeout(12)
def test_key_tool_journal_option_follows_window(ctx):
    # --journal P: the window is read from that journal. After a 1 s window
    # the key for the same request is a new one there, and still the
    # generation-0 key where nothing was recorded.
    s = ctx.recording_server()
    jpath = os.path.join(ctx.tmp, "elsewhere", "j.db")
    env = ctx.shim_env(s.authority, journal=jpath, window="1s")
    tool_env = dict(ctx.env, RETRYSAFE_WINDOW="1s")
    body_file = ctx.write(BODY)
    k0 = expected_key("POST", s.authority, PATH, BODY).decode()
    assert _post(ctx, s, env) == k0
    time.sleep(1.3)
    k1 = _tool_key(ctx, "--journal", jpath, "POST", s.url(PATH), body_file,
                   env=tool_env)
    assert k1 != k0, "--journal: key after the window is still k0"
    assert _tool_key(ctx, "POST", s.url(PATH), body_file, env=tool_env) == k0
    assert _tool_key(ctx, "POST", s.url(PATH), body_file,
                     env=dict(tool_env, RETRYSAFE_JOURNAL=jpath)) == k1
    assert _post(ctx, s, env) == k1, "shim sent another key than predicted"
    rows = ctx.dump("--journal", jpath)
    assert [(r["key"], r["generation"], r["attempt"]) for r in rows] == [
        (k0, 0, 1), (k1, 1, 1)], _summary(rows)


# -- prune ------------------------------------------------------------------------

@timeout(12)
def test_prune_removes_old_rows(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    ka = _post(ctx, s, env, body="a=1")
    _post(ctx, s, env, body="b=1")
    time.sleep(1.3)
    kc = _post(ctx, s, env, body="c=1")
    assert len(ctx.dump()) == 3
    p = ctx.tool("prune", "--older-than", "1s")
    assert re.match(rb"^pruned 2 attempt\(s\)", p.stdout), p.stdout
    rows = ctx.dump()
    assert [r["key"] for r in rows] == [kc], (
        "after prune --older-than 1s: %r" % (_summary(rows),))
    p = ctx.tool("prune", "--older-than", "1h")
    assert re.match(rb"^pruned 0 attempt\(s\)", p.stdout), p.stdout
    assert [r["key"] for r in ctx.dump()] == [kc]
    # Whatever the shim sends for a pruned request, key predicts it.
    a_file = ctx.write("a=1")
    predicted = _tool_key(ctx, "POST", s.url(PATH), a_file)
    again = _post(ctx, s, env, body="a=1")
    assert again == predicted, "key printed %s, shim sent %s (first time %s)" \
        % (predicted, again, ka)
    p = ctx.tool("prune", check=False)
    assert p.returncode == 2 and p.stderr, "prune without --older-than: %r" % (
        p,)


# -- dump -------------------------------------------------------------------------

@timeout(12)
def test_dump_filters_host_since_limit(ctx):
    a = ctx.recording_server()
    b = ctx.recording_server()
    env = ctx.shim_env("%s,%s" % (a.authority, b.authority))
    _post(ctx, a, env, body="a=1")
    _post(ctx, a, env, body="a=2")
    time.sleep(1.5)
    _post(ctx, b, env, body="b=1")
    _post(ctx, b, env, body="b=2")
    recent = ctx.dump("--since", "1s")
    every = ctx.dump()
    assert [(r["host"], r["body_len"]) for r in every] == [
        (a.authority, 3)] * 2 + [(b.authority, 3)] * 2, _summary(every)
    assert recent == every[2:], "--since 1s: %r" % (_summary(recent),)
    assert ctx.dump("--since", "1h") == every
    assert ctx.dump("--host", a.authority) == every[:2]
    assert ctx.dump("--host", b.authority) == every[2:]
    assert ctx.dump("--host", "nowhere.test") == []
    assert ctx.dump("--limit", "3") == every[1:], "--limit 3: newest 3, " \
        "oldest first"
    assert ctx.dump("--limit", "10") == every
    assert ctx.dump("--limit", "1", "--host", a.authority) == every[1:2]
    assert ctx.dump("--host", a.authority, "--since", "1s") == []
    p = ctx.tool("dump", "--since", "soon", check=False)
    assert p.returncode == 2 and p.stderr, p


PY_ONE = r"""
import os, sys, urllib.request
with urllib.request.urlopen(urllib.request.Request(
        sys.argv[1], data=sys.argv[2].encode(), method="POST"), timeout=8) as r:
    r.read()
print(os.getpid())
"""


def test_dump_json_fields_and_types(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    out, reqs = exchange(s, lambda: ctx.python(PY_ONE, s.url(PATH + "?q=1"),
                                               BODY, env=env))
    pid = int(out.stdout)
    p = ctx.tool("dump", "--json")
    lines = [l for l in p.stdout.decode().splitlines() if l.strip()]
    assert len(lines) == 1, lines
    row = json.loads(lines[0])
    missing = sorted(set(ROW_FIELDS) - set(row))
    assert not missing, "dump --json lacks %s: %r" % (missing, row)
    for field, kind in ROW_FIELDS.items():
        ok = isinstance(row[field], kind) and not (
            kind is int and isinstance(row[field], bool))
        assert ok, "%s is %r (%s), expected %s" % (
            field, row[field], type(row[field]).__name__, kind.__name__)
    assert ISO_UTC.match(row["time"]), "time %r: not ISO-8601 UTC (Z)" % (
        row["time"],)
    assert row["outcome"] in OUTCOMES
    assert_row(row, "python's row", pid=pid, method="POST",
               host=s.authority, path=PATH, key=_key(reqs[0]), attempt=1,
               generation=0, tls=False, body_len=len(BODY), status=200,
               outcome="completed",
               exe=os.path.basename(os.path.realpath(PYTHON)))
    assert re.match(r"^[0-9a-f]{16,}$", row["fingerprint"]), row["fingerprint"]
    assert row["duration_ms"] >= 0
    # The same request again: same fingerprint; another body: another.
    ctx.python(PY_ONE, s.url(PATH + "?q=1"), BODY, env=env)
    ctx.python(PY_ONE, s.url(PATH + "?q=1"), BODY + "0", env=env)
    rows = ctx.dump()
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"] != \
        rows[2]["fingerprint"], _summary(rows)


def test_dump_table(ctx):
    s = ctx.recording_server()
    key = _post(ctx, s, ctx.shim_env(s.authority))
    p = ctx.tool("dump")
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 2, "expected a header and one row: %r" % lines
    row = lines[1]
    for want in (key, s.authority, PATH, "POST", "200", "completed", "curl"):
        assert want in row, "%r not in the table row %r" % (want, row)


# -- stats ------------------------------------------------------------------------

def test_stats_known_sequence(ctx):
    a = ctx.recording_server()
    b = ctx.recording_server(response=ERROR_500)
    env = ctx.shim_env("%s,%s" % (a.authority, b.authority))
    _post(ctx, a, env, body="x=1")
    _post(ctx, a, env, body="x=1")        # a retry: same key
    _post(ctx, a, env, body="y=1")
    for body in ("z=1", "z=2"):
        _, reqs = exchange(b, lambda: ctx.curl("-d", body, b.url(PATH),
                                               env=env))
    st = ctx.stats()
    assert set(st) == {a.authority, b.authority}, st
    want = {
        a.authority: dict(requests=3, keys=2, retried_keys=1,
                          outcomes=dict(pending=0, completed=3, unknown=0,
                                        failed=0, skipped=0, replayed=0,
                                        refused=0),
                          status={"none": 0, "1xx": 0, "2xx": 3, "3xx": 0,
                                  "4xx": 0, "5xx": 0}),
        b.authority: dict(requests=2, keys=2, retried_keys=0,
                          outcomes=dict(pending=0, completed=2, unknown=0,
                                        failed=0, skipped=0, replayed=0,
                                        refused=0),
                          status={"none": 0, "1xx": 0, "2xx": 0, "3xx": 0,
                                  "4xx": 0, "5xx": 2}),
    }
    for host, w in want.items():
        got = {k: st[host].get(k) for k in w}
        assert got == w, "stats for %s:\n  got  %r\n  want %r" % (host, got, w)
    rows = ctx.dump("--host", b.authority)
    assert [r["status"] for r in rows] == [500, 500], _summary(rows)
    table = ctx.tool("stats").stdout.decode()
    assert a.authority in table and b.authority in table, table


# -- no journal -------------------------------------------------------------------

def test_tool_missing_journal(ctx):
    missing = os.path.join(ctx.tmp, "nothing-here", "journal.db")
    cases = [(["dump"], None), (["dump", "--json"], None), (["stats"], None),
             (["stats", "--json"], None), (["prune", "--older-than", "1s"],
                                           None),
             (["dump", "--journal", missing], missing),
             (["stats", "--journal", missing], missing),
             (["prune", "--journal", missing, "--older-than", "1s"], missing),
             (["dump"], "env")]
    for args, where in cases:
        env = dict(ctx.env, RETRYSAFE_JOURNAL=missing) if where == "env" \
            else None
        p = ctx.tool(*args, env=env, check=False)
        what = "retrysafe %s%s" % (" ".join(args),
                                   " (RETRYSAFE_JOURNAL)" if env else "")
        assert p.returncode == 2, "%s exited %d, expected 2: %r" % (
            what, p.returncode, p.stderr)
        assert p.stdout == b"", "%s printed %r" % (what, p.stdout)
        err = p.stderr.decode(errors="replace")
        assert "journal" in err.lower() and err.count("\n") <= 2, (
            "%s: unclear message %r" % (what, err))
        path = missing if where else ctx.journal_path
        assert path in err, "%s: message does not name %s: %r" % (what, path,
                                                                  err)
    assert not os.path.exists(missing) and not os.path.exists(
        ctx.journal_path), "a reading command created a journal"


def test_tool_unreadable_journal(ctx):
    jpath = ctx.write(os.urandom(8192), "junk.db")
    for args in (["dump", "--journal", jpath],
                 ["stats", "--journal", jpath],
                 ["prune", "--journal", jpath, "--older-than", "1s"]):
        p = ctx.tool(*args, check=False)
        assert p.returncode == 2 and p.stdout == b"", (args, p)
        assert jpath.encode() in p.stderr, (args, p.stderr)
