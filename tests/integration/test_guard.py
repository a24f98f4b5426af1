"""Guard mode (RETRYSAFE_MODE=guard): the shim deduplicates retries itself,
for servers that know nothing of idempotency keys.

Per Idempotency-Key (the key the shim derives: same request, same key):

- a new key is journaled `pending` and sent, tagged, as in tag mode;
- after a final answer (status < 500 but 408, 409, 425, 429) nothing is
  sent: the program gets the recorded answer byte for byte, plus a line
  `Idempotent-Replayed: true`, its Connection/Keep-Alive headers replaced
  by `Connection: close`; the journal row says `replayed`. A retryable
  status (5xx, 408, 409, 425, 429) lets the retry go out again;
- a twin still in flight in a live process: wait (RETRYSAFE_WAIT) for its
  answer and replay it, or 409 `Retrysafe-Refused: in-flight`;
- an unknown outcome (process killed, connection closed before the answer):
  nothing is sent, the program gets 409 application/problem+json with
  `Retrysafe-Refused: unknown-outcome` (row `refused`), unless
  RETRYSAFE_ON_UNKNOWN=resend; `retrysafe forget KEY` allows one more try;
- a client that gives up on a request (timeout) leaves its socket to the
  shim, which reads the late answer (RETRYSAFE_LATE_WAIT) and records it, so
  the retry gets it replayed;
- an answer over RETRYSAFE_MAX_RESPONSE is recorded without its body; a
  retry gets 409 `Retrysafe-Refused: too-large`.

The servers here are KeyServer(honour_keys=False): every request that
reaches them performs the side effect (k.count), and k.requests lists what
reached them, with the key line they saw (sent_key) and the exact answer
they sent (answer). Each test has a control run without the shim (ctx.env)
that shows the duplicate the guard must prevent; controls use servers of
their own, so their keys (the port is in the authority) never meet the
guarded runs' in the journal.
"""

import collections
import datetime
import json
import os
import re
import sqlite3
import subprocess
import time

from harness import (PYTHON, Skip, assert_bytes, expected_key, need,
                     post_request, timeout)

PATH = "/v1/charges"
BODY = "amount=2000&currency=usd"
FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
PROBLEM_TYPE = "tag:retrysafe,2026:unknown-outcome"
RETRYABLE = (500, 503, 408, 409, 425, 429)

# The impatient curl of test_retry.py: 3 attempts of 1 s, 1 s apart.
CURL_RETRY = ["--max-time", "1", "--retry", "2", "--retry-all-errors",
              "--retry-delay", "1"]

# A raw HTTP client on a blocking socket: sends the request in the file
# argv[2] (head and body in separate sends, as python's http.client does)
# and writes every byte of the answer, until end of stream, to stdout.
PY_RAW = r"""
import socket, sys
port, req = int(sys.argv[1]), open(sys.argv[2], "rb").read()
head, sep, body = req.partition(b"\r\n\r\n")
c = socket.create_connection(("127.0.0.1", port), timeout=15)
c.sendall(head + sep)
if body:
    c.sendall(body)
out = b""
while True:
    data = c.recv(65536)
    if not data:
        break
    out += data
c.close()
sys.stdout.buffer.write(out)
"""

# The same with asyncio streams (an event loop on a non-blocking socket,
# epoll): write the request, then reader.read() until EOF.
PY_ASYNCIO = r"""
import asyncio, sys
port, req = int(sys.argv[1]), open(sys.argv[2], "rb").read()
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req)
    await w.drain()
    out = b""
    while True:
        data = await r.read(65536)
        if not data:
            break
        out += data
    w.close()
    return out
sys.stdout.buffer.write(asyncio.run(asyncio.wait_for(main(), 15)))
"""

# urllib (blocking, http.client underneath): prints status, header lines
# and body as JSON, for an error status too.
PY_URLLIB = r"""
import json, sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                             method="POST")
try:
    r = urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status, "headers": r.headers.items(),
                  "body": r.read().decode("latin-1")}))
"""

# requests with urllib3 retrying read timeouts: timeout 1 s, up to 3
# retries. argv: url, body, "all" (allowed_methods=None) or "post".
PY_REQUESTS_RETRY = r"""
import json, sys, requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
url, body, which = sys.argv[1], sys.argv[2], sys.argv[3]
methods = None if which == "all" else frozenset({"POST"})
retry = Retry(total=3, read=3, connect=3, backoff_factor=0.2,
              allowed_methods=methods, status_forcelist=())
s = requests.Session()
s.mount("http://", HTTPAdapter(max_retries=retry))
s.mount("https://", HTTPAdapter(max_retries=retry))
try:
    r = s.post(url, data=body, timeout=1)
except requests.exceptions.RequestException as e:
    print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(3)
print(json.dumps({"status": r.status_code,
                  "headers": list(r.raw.headers.items()),
                  "body": r.content.decode("latin-1")}))
"""


# -- helpers ------------------------------------------------------------------

def _server(ctx, **kw):
    """A KeyServer that knows nothing of keys (each request is a side
    effect)."""
    return ctx.key_server(honour_keys=False, **kw)


def _tls(k):
    return k.tls_certs is not None


def _guard_env(ctx, k, **kw):
    """The shim in guard mode for k's host; a short RETRYSAFE_WAIT unless
    the test sets one. Over TLS the client also trusts the test CA."""
    kw.setdefault("wait", "5s")
    env = ctx.shim_env(k.authority, mode="guard", **kw)
    return ctx.tls_env(env) if _tls(k) else env


def _plain_env(ctx, k):
    """The control's environment: no shim (trusting the CA over TLS)."""
    return ctx.tls_env() if _tls(k) else ctx.env


def _key(k, body=BODY, ctype=FORM, path=PATH):
    return expected_key("POST", k.authority, path, body, tls=_tls(k),
                        content_type=ctype).decode()


def _request(k, body=BODY, ctype=FORM, path=PATH):
    """The raw request the raw and asyncio clients send (Connection: close:
    they read the answer until end of stream)."""
    return post_request(k.authority, path, body,
                        ["User-Agent: guard-test", "Content-Type: " + ctype,
                         "Connection: close"])


def _raw_run(ctx, k, env, body=BODY, ctype=FORM, path=PATH, script=PY_RAW):
    """Runs the raw client (or script) once; returns the finished process."""
    f = ctx.write(_request(k, body, ctype, path))
    return ctx.run([PYTHON, "-c", script, k.port, f], env=env, timeout=20)


def _raw(ctx, k, env, body=BODY, ctype=FORM, path=PATH, script=PY_RAW):
    """Runs the raw client (or script) once; returns what it received."""
    return _raw_run(ctx, k, env, body, ctype, path, script).stdout


def _raw_popen(ctx, k, env, body=BODY, ctype=FORM, path=PATH, script=PY_RAW):
    f = ctx.write(_request(k, body, ctype, path))
    return subprocess.Popen([PYTHON, "-c", script, str(k.port), f], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ctx.tmp)


def _finish(p, what, timeout=20):
    """stdout of a Popen'd client that must exit 0."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s did not finish in %ss; stderr %r"
                             % (what, timeout, err[-500:]))
    assert p.returncode == 0, "%s exited %d; stderr %r; stdout %r" % (
        what, p.returncode, err[-800:], out[-300:])
    return out


def _curl(ctx, k, env, *args, body=BODY, check=True):
    ca = ["--cacert", ctx.tls_certs().ca] if _tls(k) else []
    return ctx.run([need("curl"), "-q", "-sS"] + ca + list(args) +
                   ["-d", body, k.url(PATH)], env=env, timeout=20,
                   check=check)


def _wait_request(k, n=1, timeout=5.0):
    """Waits until k has seen n requests (their bodies read)."""
    deadline = time.monotonic() + timeout
    while len(k.requests) < n:
        if time.monotonic() > deadline:
            raise AssertionError("server saw %d request(s), expected %d"
                                 % (len(k.requests), n))
        time.sleep(0.01)


def _split(resp, what):
    """(status line, header lines, body) of a raw answer."""
    i = resp.find(b"\r\n\r\n")
    if i < 0:
        raise AssertionError("%s: no HTTP answer head in %r" % (what,
                                                               resp[:400]))
    lines = resp[:i].split(b"\r\n")
    return lines[0], lines[1:], resp[i + 4:]


def _values(lines, name):
    n = name.lower().encode()
    out = []
    for line in lines:
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == n:
            out.append(v.strip())
    return out


_REPLAY_ONLY = (b"idempotent-replayed", b"connection", b"keep-alive")


def assert_replay(original, replay, what="replay"):
    """replay is original byte for byte (status line, every other header
    line in order, body) except for one `Idempotent-Replayed: true` line and
    its Connection/Keep-Alive lines replaced by one `Connection: close`."""
    line0, head0, body0 = _split(original, what + " (original)")
    line1, head1, body1 = _split(replay, what)
    assert line1 == line0, "%s: status line %r, the original's %r" % (
        what, line1, line0)
    assert _values(head1, "Idempotent-Replayed") == [b"true"], (
        "%s: no single `Idempotent-Replayed: true` line: %r" % (what, head1))
    assert [v.lower() for v in _values(head1, "Connection")] == [b"close"], (
        "%s: Connection lines %r, expected one `close`: %r"
        % (what, _values(head1, "Connection"), head1))
    assert not _values(head1, "Keep-Alive"), "%s: Keep-Alive kept: %r" % (
        what, head1)

    def rest(lines):
        return [l for l in lines
                if l.partition(b":")[0].strip().lower() not in _REPLAY_ONLY]
    assert rest(head1) == rest(head0), (
        "%s: header lines differ from the original's (besides the replay "
        "and connection lines):\n  original: %r\n  replay:   %r"
        % (what, rest(head0), rest(head1)))
    assert_bytes(body0, body1, what + " body:")


def assert_not_replay(resp, what):
    _, head, _ = _split(resp, what)
    assert not _values(head, "Idempotent-Replayed"), (
        "%s carries Idempotent-Replayed: %r" % (what, head))


def _rows(ctx, k, path=PATH):
    """The journal's rows for k's host and path, oldest first."""
    host = k.authority
    return [r for r in ctx.dump() if r.get("host") == host
            and r.get("path") == path]


def _key_rows(ctx, k, key):
    """The journal's rows of key (k's host and path), oldest first."""
    return [r for r in _rows(ctx, k) if r.get("key") == key]


def _warmed(ctx, wait=None, **server):
    """A server, the guard's environment for it and the key of the test's
    request, after one other request: the journal and the files beside it
    exist, so that a test can lock the journal."""
    k = _server(ctx, **server)
    env = _guard_env(ctx, k, **({"wait": wait} if wait else {}))
    _raw(ctx, k, env, body="warm=1")
    return k, env, _key(k)


def _assert_rows(rows, want, key=None, what="journal"):
    """rows' (outcome, status) are want, in order; each has key."""
    got = [(r.get("outcome"), r.get("status")) for r in rows]
    assert got == want, "%s: (outcome, status) %r, expected %r; rows %r" % (
        what, got, want, rows)
    if key is not None:
        keys = [r.get("key") for r in rows]
        assert keys == [key] * len(rows), "%s: keys %r, expected %r" % (
            what, keys, key)


def _assert_attempts_numbered(rows, what="journal"):
    got = [r.get("attempt") for r in rows]
    assert got == list(range(1, len(rows) + 1)), (
        "%s: attempt numbers %r, expected 1..%d" % (what, got, len(rows)))


def _sent_keys(k):
    return [r["sent_key"] for r in k.requests]


def _kill_mid_request(ctx, k, env, body=BODY, ctype=FORM):
    """Starts the raw client, kills it (SIGKILL) as soon as the server has
    the whole request, before the answer: an unknown outcome."""
    n = len(k.requests)
    p = _raw_popen(ctx, k, env, body, ctype)
    try:
        _wait_request(k, n + 1)
    finally:
        p.kill()
        p.communicate()
    assert p.returncode == -9, "the client ended before it was killed: %r" % (
        p.returncode,)


def _problem(resp, refused, key, what):
    """Checks a 409 refusal's head; returns its JSON body."""
    line, head, body = _split(resp, what)
    assert line == b"HTTP/1.1 409 Conflict", "%s: status line %r; answer %r" % (
        what, line, resp[:600])
    want = {"Content-Type": [b"application/problem+json"],
            "Retrysafe-Refused": [refused.encode()],
            "Idempotency-Key": [key.encode()],
            "Connection": [b"close"]}
    for name, vals in want.items():
        got = _values(head, name)
        assert [v.lower() for v in got] == [v.lower() for v in vals], (
            "%s: %s %r, expected %r; head %r" % (what, name, got, vals, head))
    cl = _values(head, "Content-Length")
    if cl:
        assert cl == [str(len(body)).encode()], (
            "%s: Content-Length %r, body is %d bytes" % (what, cl, len(body)))
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError as e:
        raise AssertionError("%s: body is not JSON (%s): %r" % (what, e,
                                                                body[:600]))
    assert isinstance(doc, dict), "%s: body is not an object: %r" % (what,
                                                                    doc)
    return doc


_RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _assert_unknown_problem(doc, k, key, started, what):
    """The members of the unknown-outcome problem document."""
    assert doc.get("type") == PROBLEM_TYPE, "%s: type %r" % (what,
                                                             doc.get("type"))
    for name in ("title", "detail"):
        assert isinstance(doc.get(name), str) and doc[name], (
            "%s: %s missing or empty: %r" % (what, name, doc))
    assert doc.get("status") == 409, "%s: status %r" % (what,
                                                        doc.get("status"))
    assert doc.get("idempotency_key") == key, (
        "%s: idempotency_key %r, expected %r" % (what,
                                                 doc.get("idempotency_key"),
                                                 key))
    assert doc.get("request") == {"method": "POST", "host": k.authority,
                                  "path": PATH}, (
        "%s: request %r" % (what, doc.get("request")))
    at = doc.get("first_attempt_at")
    assert isinstance(at, str) and _RFC3339_MS.match(at), (
        "%s: first_attempt_at %r is not RFC 3339 UTC with milliseconds"
        % (what, at))
    t = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert started - 2 <= t <= time.time() + 2, (
        "%s: first_attempt_at %s is not the first attempt's time (the test "
        "started at %s)" % (what, at, datetime.datetime.fromtimestamp(
            started, datetime.timezone.utc).isoformat()))
    attempts = doc.get("attempts")
    assert isinstance(attempts, int) and not isinstance(attempts, bool) \
        and attempts >= 1, "%s: attempts %r" % (what, attempts)
    assert doc.get("may_have_succeeded") is True, (
        "%s: may_have_succeeded %r" % (what, doc.get("may_have_succeeded")))
    steps = doc.get("next_steps")
    assert isinstance(steps, list) and steps and all(
        isinstance(s, str) for s in steps), "%s: next_steps %r" % (what,
                                                                   steps)
    assert any("retrysafe forget %s" % key in s for s in steps), (
        "%s: no next step mentions `retrysafe forget %s`: %r"
        % (what, key, steps))


def _need_requests(ctx):
    p = ctx.python("import requests, urllib3", check=False)
    if p.returncode != 0:
        raise Skip("python3-requests not installed")


def _requests_retry(ctx, k, env, which):
    """The requests client; (exit status, its JSON or None, stderr)."""
    p = ctx.run([PYTHON, "-c", PY_REQUESTS_RETRY, k.url(PATH), BODY, which],
                env=env, timeout=25, check=False)
    out = json.loads(p.stdout) if p.returncode == 0 else None
    return p.returncode, out, p.stderr


def _answer_of(k, i=0):
    """The exact bytes the server sent as its i-th answer."""
    a = k.requests[i]["answer"]
    assert a is not None, "the server never answered request %d" % i
    return a


def _header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# -- 2. late answers: an impatient client's retry gets the real answer ------------

def _curl_retry_control(ctx, delay=1.5, **server):
    k0 = _server(ctx, delay=delay, **server)
    p = _curl(ctx, k0, _plain_env(ctx, k0), "-i", *CURL_RETRY, check=False)
    k0.wait_idle(10)
    assert p.returncode != 0, "control: curl got an answer although every " \
        "attempt should time out: %r" % p.stdout[:300]
    assert len(k0.requests) == 3 and k0.count == 3, (
        "control: expected 3 attempts and 3 side effects without the shim, "
        "server saw %d request(s), %d effect(s)" % (len(k0.requests),
                                                    k0.count))


def _curl_retry_guarded(ctx, curl_args=(), **server):
    k = _server(ctx, delay=1.5, **server)
    p = _curl(ctx, k, _guard_env(ctx, k), "-i", *CURL_RETRY, *curl_args,
              check=False)
    k.wait_idle(10)
    key = _key(k)
    assert k.count == 1, "guard: %d side effects, expected 1 (keys seen: %r)" \
        % (k.count, _sent_keys(k))
    assert _sent_keys(k) == [key], (
        "guard: the server saw %r, expected only the first attempt with key "
        "%s" % (_sent_keys(k), key))
    assert p.returncode == 0, "guard: curl exited %d (no replay of the late " \
        "answer); stderr %r" % (p.returncode, p.stderr[-600:])
    assert_replay(_answer_of(k), p.stdout, "curl's retry")
    rows = _rows(ctx, k)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)], key)
    _assert_attempts_numbered(rows)


@timeout(40)
def test_guard_curl_timeout_retry_gets_late_answer(ctx):
    # curl --max-time 1 --retry 2 against a 1.5 s server: the first attempt
    # times out, the shim reads its answer in the background at 1.5 s, and
    # curl's retry (at 2 s) gets it replayed. Without the shim: 3 charges.
    _curl_retry_control(ctx)
    _curl_retry_guarded(ctx)


@timeout(40)
def test_guard_requests_urllib3_retry_gets_late_answer(ctx):
    # urllib3 retries a read timeout at once (no backoff for the first
    # retry): the retry finds its twin still in flight in this process,
    # waits for the late answer and gets it replayed.
    _need_requests(ctx)
    k0 = _server(ctx, delay=1.5)
    rc, _, err = _requests_retry(ctx, k0, ctx.env, "all")
    k0.wait_idle(10)
    assert rc == 3, "control: requests should give up, exit %d: %r" % (rc,
                                                                       err)
    assert k0.count >= 2, "control: %d side effect(s), expected several " \
        "(one per attempt)" % k0.count

    k = _server(ctx, delay=1.5)
    rc, out, err = _requests_retry(ctx, k, _guard_env(ctx, k), "all")
    k.wait_idle(10)
    key = _key(k)
    assert k.count == 1, "guard: %d side effects, expected 1" % k.count
    assert _sent_keys(k) == [key], "guard: the server saw %r" % (
        _sent_keys(k),)
    assert rc == 0, "guard: requests gave up (exit %d): %s" % (rc, err[-600:])
    assert out["status"] == 200, "guard: requests got %s, not the replayed " \
        "200: %r" % (out["status"], out)
    assert _header(out["headers"], "Idempotent-Replayed") == ["true"], out
    _, _, body0 = _split(_answer_of(k), "server's answer")
    assert out["body"].encode("latin-1") == body0, (
        "replayed body %r, the server's %r" % (out["body"], body0))
    rows = _rows(ctx, k)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)], key)


# -- 1b. replays, byte for byte -------------------------------------------------------

@timeout(20)
def test_guard_second_process_gets_replay_byte_for_byte(ctx):
    # Two processes send the same POST one after the other: the second is
    # answered by the shim with the first's answer; the server sees one.
    k0 = _server(ctx)
    _raw(ctx, k0, ctx.env)
    _raw(ctx, k0, ctx.env)
    assert k0.count == 2, "control: %d side effects" % k0.count

    k = _server(ctx)
    env = _guard_env(ctx, k)
    first = _raw(ctx, k, env)
    second = _raw(ctx, k, env)
    key = _key(k)
    assert_bytes(_answer_of(k), first, "first process received")
    assert_not_replay(first, "the first answer")
    assert k.count == 1 and _sent_keys(k) == [key], (
        "guard: %d side effects, server saw keys %r" % (k.count,
                                                        _sent_keys(k)))
    assert_replay(first, second, "second process")
    rows = _rows(ctx, k)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)], key)
    _assert_attempts_numbered(rows)


@timeout(20)
def test_guard_replays_chunked_answer_byte_for_byte(ctx):
    # The recorded answer keeps its framing: a chunked answer comes back
    # chunked, the same chunks.
    k = _server(ctx, chunked=True, payload_size=2500)
    env = _guard_env(ctx, k)
    first = _raw(ctx, k, env)
    second = _raw(ctx, k, env)
    assert_bytes(_answer_of(k), first, "first process received")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in first, first[:300]
    assert k.count == 1, "guard: %d side effects" % k.count
    assert_replay(first, second, "chunked replay")
    _assert_rows(_rows(ctx, k), [("completed", 200), ("replayed", 200)],
                 _key(k))


@timeout(20)
def test_guard_final_4xx_replayed(ctx):
    # 400 and 422 are final answers: replayed, not sent again.
    for status in (400, 422):
        k0 = _server(ctx, status=status)
        _raw(ctx, k0, ctx.env)
        _raw(ctx, k0, ctx.env)
        assert k0.count == 2, "control %d: %d side effects" % (status,
                                                               k0.count)
        k = _server(ctx, status=status)
        env = _guard_env(ctx, k)
        first = _raw(ctx, k, env)
        second = _raw(ctx, k, env)
        what = "status %d" % status
        assert first.startswith(b"HTTP/1.1 %d " % status), first[:100]
        assert k.count == 1, "%s: %d side effects, expected 1" % (what,
                                                                  k.count)
        assert_replay(first, second, what + " replay")
        _assert_rows(_rows(ctx, k), [("completed", status),
                                     ("replayed", status)], _key(k), what)


@timeout(30)
def test_guard_retryable_status_sent_again(ctx):
    # A retryable answer (5xx, 408, 409, 425, 429) is not final: the retry
    # goes out again with the same key; once it gets 200, the next one is
    # replayed.
    for status in RETRYABLE:
        k = _server(ctx, status=[status, 200])
        env = _guard_env(ctx, k)
        key = _key(k)
        what = "first answer %d" % status
        first = _raw(ctx, k, env)
        assert first.startswith(b"HTTP/1.1 %d " % status), (what, first[:100])
        assert_bytes(_answer_of(k), first, what + ": first process received")
        second = _raw(ctx, k, env)
        assert _sent_keys(k) == [key, key], (
            "%s: the retry did not go out again with the same key; server "
            "saw %r" % (what, _sent_keys(k)))
        assert_bytes(_answer_of(k, 1), second, what + ": retry received")
        assert second.startswith(b"HTTP/1.1 200 "), (what, second[:100])
        third = _raw(ctx, k, env)
        assert len(k.requests) == 2, "%s: after 200 the third was sent: %r" \
            % (what, _sent_keys(k))
        assert_replay(second, third, what + ": third (replay of the 200)")
        rows = _rows(ctx, k)
        _assert_rows(rows, [("completed", status), ("completed", 200),
                            ("replayed", 200)], key, what)
        _assert_attempts_numbered(rows, what)


# -- 1c. a twin in flight --------------------------------------------------------------

@timeout(40)
def test_guard_five_processes_at_once(ctx):
    # Five processes send the same POST at the same time to a 1 s server:
    # one goes out, four wait for it and get its answer replayed.
    def five(k, env):
        ps = [subprocess.Popen([need("curl"), "-q", "-sS", "-i", "--max-time",
                                "15", "-d", BODY, k.url(PATH)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(5)]
        return [_finish(p, "curl %d" % i) for i, p in enumerate(ps)]

    k0 = _server(ctx, delay=1.0)
    five(k0, ctx.env)
    k0.wait_idle(10)
    assert k0.count == 5, "control: %d side effects, expected 5" % k0.count

    k = _server(ctx, delay=1.0)
    outs = five(k, _guard_env(ctx, k, wait="10s"))
    k.wait_idle(10)
    key = _key(k)
    assert k.count == 1, "guard: %d side effects, expected 1; keys %r" % (
        k.count, _sent_keys(k))
    original = _answer_of(k)
    bodies = [_split(o, "curl output")[2] for o in outs]
    assert len(set(bodies)) == 1, "the five bodies differ: %r" % bodies
    replays = [o for o in outs if _values(_split(o, "curl")[1],
                                          "Idempotent-Replayed")]
    plain = [o for o in outs if o not in replays]
    assert len(replays) == 4 and len(plain) == 1, (
        "%d answers carry Idempotent-Replayed, expected 4: %r"
        % (len(replays), outs))
    assert_bytes(original, plain[0], "the one sent process received")
    for i, o in enumerate(replays):
        assert_replay(original, o, "replay %d" % (i + 1))
    rows = _rows(ctx, k)
    got = collections.Counter((r["outcome"], r["status"]) for r in rows)
    assert got == {("completed", 200): 1, ("replayed", 200): 4}, (
        "journal outcomes %r; rows %r" % (dict(got), rows))
    assert {r["key"] for r in rows} == {key}, rows


@timeout(20)
def test_guard_in_flight_wait_expires_409(ctx):
    # The twin is still in flight when RETRYSAFE_WAIT (300ms) ends: 409
    # in-flight. Once it has its answer, the next retry is replayed.
    k = _server(ctx, delay=1.5)
    env = _guard_env(ctx, k, wait="300ms")
    key = _key(k)
    a = _raw_popen(ctx, k, env)
    _wait_request(k)
    b = _raw(ctx, k, env)
    first = _finish(a, "the first process")
    k.wait_idle(10)
    _problem(b, "in-flight", key, "retry while in flight")
    assert _sent_keys(k) == [key], "the waiting retry was sent: %r" % (
        _sent_keys(k),)
    assert_bytes(_answer_of(k), first, "first process received")
    c = _raw(ctx, k, env)
    assert_replay(first, c, "retry after the answer")
    assert k.count == 1, "%d side effects" % k.count
    _assert_rows(_rows(ctx, k), [("completed", 200), ("refused", 409),
                                 ("replayed", 200)], key)


# -- 1d, 1e. unknown outcomes ----------------------------------------------------------

@timeout(25)
def test_guard_killed_process_retry_refused_409(ctx):
    # A process killed while its POST is at the server: the outcome is
    # unknown. Its restart must not charge again: 409 problem+json that
    # says what to do. Without the shim: two charges.
    k0 = _server(ctx, delay=1.5)
    _kill_mid_request(ctx, k0, ctx.env)
    _raw(ctx, k0, ctx.env)
    k0.wait_idle(10)
    assert k0.count == 2, "control: %d side effects, expected 2" % k0.count

    started = time.time()
    k = _server(ctx, delay=1.5)
    env = _guard_env(ctx, k)
    key = _key(k)
    _kill_mid_request(ctx, k, env)
    out = _raw(ctx, k, env)
    k.wait_idle(10)
    assert k.count == 1 and _sent_keys(k) == [key], (
        "guard: %d side effects; server saw keys %r" % (k.count,
                                                        _sent_keys(k)))
    doc = _problem(out, "unknown-outcome", key, "restarted process")
    _assert_unknown_problem(doc, k, key, started, "problem document")
    rows = _rows(ctx, k)
    _assert_rows(rows, [("unknown", None), ("refused", 409)], key)


def _read_answer(pipe, timeout=15.0):
    """Reads one HTTP answer with a Content-Length from pipe."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        head, sep, body = out.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if sep and m and len(body) >= int(m.group(1)):
            return out
        data = os.read(pipe.fileno(), 65536)
        if not data:
            break
        out += data
    return out


class _JournalLocked:
    """Holds the journal's write lock (another process's long transaction),
    so that no shim can write a row meanwhile; reads go on (WAL)."""

    def __init__(self, ctx):
        self.db = sqlite3.connect(ctx.journal_path, isolation_level=None)

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        self.db.execute("ROLLBACK")
        self.db.close()


# -- claims without a journal read (src/claim_table.c) -----------------------------------
# A request no process ever sent (the filter of seen fingerprints never saw
# it) is claimed in the shared claim table and sent at once; its row follows
# through the process's writer, and the key's slot is held until the row is
# written. These tests hold the journal's write lock so that the row cannot
# be written: only the slot stands between a twin and a duplicate.

@timeout(30)
def test_guard_fast_claim_killed_before_row_written_409(ctx):
    # The process dies after sending, before its row exists: the restarted
    # one finds the slot of a dead holder, journals the dead attempt as
    # unknown, and gets 409 unknown-outcome. One side effect.
    k, env, key = _warmed(ctx, delay=2.0)
    with _JournalLocked(ctx):
        _kill_mid_request(ctx, k, env)
        rows = _rows(ctx, k)
        assert len(rows) == 1, "the killed attempt was journaled despite the lock: %r" % rows
    r = _raw_run(ctx, k, dict(env, RETRYSAFE_LOG="info"))
    k.wait_idle(10)
    assert k.count == 2 and _sent_keys(k)[1:] == [key], (
        "%d side effects (warm-up included); keys %r" % (k.count, _sent_keys(k)))
    _problem(r.stdout, "unknown-outcome", key, "after the killed fast claim")
    assert b"before journaling it" in r.stderr, (
        "the dead holder's slot was not what refused it: %r" % r.stderr[-600:])
    rows = _key_rows(ctx, k, key)
    _assert_rows(rows, [("unknown", None), ("refused", 409)], key)


@timeout(30)
def test_guard_forget_frees_unjournaled_claim(ctx):
    # A process died after sending, before its row existed; `retrysafe
    # forget KEY` (a person checked: it did not happen) frees the key's slot
    # as it would forget rows, and the next attempt is sent.
    k, env, key = _warmed(ctx, delay=1.0)
    with _JournalLocked(ctx):
        _kill_mid_request(ctx, k, env)
    k.wait_idle(10)
    r = ctx.tool("forget", key)
    assert b"died unjournaled" in r.stdout, r.stdout
    sent = _raw(ctx, k, env)
    k.wait_idle(10)
    assert k.count == 3 and _sent_keys(k)[1:] == [key, key], (
        "%d side effects (warm-up included); keys %r" % (k.count, _sent_keys(k)))
    assert_bytes(_answer_of(k, 2), sent, "after forget, the client received")
    rows = _key_rows(ctx, k, key)
    _assert_rows(rows, [("completed", 200)], key)


@timeout(20)
def test_guard_forget_takes_keys_that_begin_with_dash(ctx):
    # Keys are base64url: one in 32 begins with '-', which an option
    # parser would take for an option. Unknown key: exit 1; usage: exit 2.
    k = _server(ctx)
    env = _guard_env(ctx, k)
    _raw(ctx, k, env)       # the journal exists
    dash_key = "-dappzs-CoF0X_pi3D4cMLohBUie_wJw"
    for args in ([dash_key], ["--", dash_key], [dash_key, "--journal", ctx.journal_path],
                 ["--journal=" + ctx.journal_path, dash_key]):
        r = ctx.tool("forget", *args, check=False)
        assert r.returncode == 1 and b"no attempt with key " + dash_key.encode() in r.stderr, (
            args, r.returncode, r.stderr)
    key = _key(k)
    r = ctx.tool("forget", "--journal", ctx.journal_path, key)
    assert b"forgot 1 attempt(s)" in r.stdout, r.stdout
    for args in ([], ["a", "b"], ["--journal"]):
        r = ctx.tool("forget", *args, check=False)
        assert r.returncode == 2 and b"usage" in r.stderr, (args, r.returncode, r.stderr)


@timeout(30)
def test_guard_fast_claim_twin_refused_in_flight(ctx):
    # The first attempt is at the server and its row cannot be written; a
    # twin waits on the slot for RETRYSAFE_WAIT, then gets 409 in-flight
    # without being sent. Its refusal is journaled once the lock is gone.
    k, env, key = _warmed(ctx, delay=3.0)
    short = _guard_env(ctx, k, wait="300ms", log="debug")
    with _JournalLocked(ctx):
        a = _raw_popen(ctx, k, env)
        _wait_request(k, 2)
        b = _raw_popen(ctx, k, short)
        # The whole answer, without waiting for the end of the stream: the
        # process ends only once its row is written, after the lock.
        out = _read_answer(b.stdout)
    rest, b_err = b.communicate(timeout=20)
    out += rest
    first = _finish(a, "the first process")
    k.wait_idle(10)
    _problem(out, "in-flight", key, "twin of an unwritten claim")
    assert k.count == 2 and _sent_keys(k)[1:] == [key], (
        "%d side effects (warm-up included); keys %r" % (k.count, _sent_keys(k)))
    assert_bytes(_answer_of(k, 1), first, "the first process received")
    rows = _key_rows(ctx, k, key)
    assert sorted((r.get("outcome"), r.get("status")) for r in rows) == [
        ("completed", 200), ("refused", 409)], (rows, b_err[-800:])


@timeout(25)
def test_guard_forget_allows_one_more_attempt(ctx):
    # After `retrysafe forget KEY` the refused request is sent once more;
    # its answer then is final and replayed.
    k = _server(ctx, delay=1.0)
    env = _guard_env(ctx, k)
    key = _key(k)
    _kill_mid_request(ctx, k, env)
    refused = _raw(ctx, k, env)
    _problem(refused, "unknown-outcome", key, "before forget")
    k.wait_idle(10)
    assert k.count == 1, "%d side effects before forget" % k.count
    ctx.tool("forget", key)
    sent = _raw(ctx, k, env)
    assert k.count == 2 and _sent_keys(k) == [key, key], (
        "after forget: %d side effects, server saw %r" % (k.count,
                                                          _sent_keys(k)))
    assert_bytes(_answer_of(k, 1), sent, "after forget, the client received")
    again = _raw(ctx, k, env)
    assert k.count == 2, "forget allowed more than one attempt"
    assert_replay(sent, again, "after the forgotten one completed")
    _assert_rows(_rows(ctx, k), [("unknown", None), ("refused", 409),
                                 ("completed", 200), ("replayed", 200)], key)


@timeout(25)
def test_guard_on_unknown_resend(ctx):
    # RETRYSAFE_ON_UNKNOWN=resend: the unknown outcome is sent again (the
    # operator accepts the risk), same key. The contrast: the default
    # (refuse) on a server of its own.
    d = _server(ctx, delay=1.0)
    denv = _guard_env(ctx, d)
    _kill_mid_request(ctx, d, denv)
    _problem(_raw(ctx, d, denv), "unknown-outcome", _key(d),
             "default ON_UNKNOWN")
    assert len(d.requests) == 1, "default ON_UNKNOWN: the retry was sent"

    k = _server(ctx, delay=1.0)
    env = _guard_env(ctx, k, on_unknown="resend")
    key = _key(k)
    _kill_mid_request(ctx, k, env)
    out = _raw(ctx, k, env)
    k.wait_idle(10)
    assert k.count == 2 and _sent_keys(k) == [key, key], (
        "%d side effects, server saw %r" % (k.count, _sent_keys(k)))
    assert_bytes(_answer_of(k, 1), out, "the resent request's client")
    _assert_rows(_rows(ctx, k), [("unknown", None), ("completed", 200)], key)


# -- canonical requests: same operation, other bytes -------------------------------------

def _twice(ctx, k, env, a, b, ctype):
    return _raw(ctx, k, env, a, ctype), _raw(ctx, k, env, b, ctype)


def _same_operation(ctx, a, b, ctype, **guard):
    k0 = _server(ctx)
    _twice(ctx, k0, ctx.env, a, b, ctype)
    assert k0.count == 2, "control: %d side effects, expected 2" % k0.count

    k = _server(ctx)
    first, second = _twice(ctx, k, _guard_env(ctx, k, **guard), a, b, ctype)
    assert k.count == 1, "guard: %d side effects, expected 1 (keys %r)" % (
        k.count, _sent_keys(k))
    assert k.requests[0]["body"] == a.encode(), "the first body was changed"
    assert_bytes(_answer_of(k), first, "first process received")
    assert_replay(first, second, "the regenerated request")
    rows = _rows(ctx, k)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)],
                 k.requests[0]["sent_key"])
    return k


@timeout(20)
def test_guard_regenerated_json_replayed(ctx):
    a = '{"amount": 2000, "currency": "usd", "meta": {"order": 7, ' \
        '"tags": ["a", "b"]}}'
    b = '{\n  "meta": {"tags": ["a","b"], "order": 7.0},\n  "currency":"usd",' \
        '\n  "amount": 2e3\n}\n'
    k = _same_operation(ctx, a, b, JSON_TYPE)
    assert _sent_keys(k) == [_key(k, a, JSON_TYPE)], _sent_keys(k)


@timeout(20)
def test_guard_reordered_form_replayed(ctx):
    a = "amount=2000&currency=usd&description=order+1234"
    b = "description=order%201234&currency=usd&amount=2000"
    k = _same_operation(ctx, a, b, FORM)
    assert _sent_keys(k) == [_key(k, a, FORM)], _sent_keys(k)


@timeout(20)
def test_guard_ignored_fields_replayed(ctx):
    # Two calls differing only in timestamp and nonce are one operation
    # with RETRYSAFE_IGNORE_FIELDS=timestamp,nonce ...
    a = '{"amount": 2000, "timestamp": "2026-11-28T10:00:00Z", "nonce": "a1"}'
    b = '{"amount": 2000, "timestamp": "2026-11-28T10:00:07Z", "nonce": "b2"}'
    _same_operation(ctx, a, b, JSON_TYPE, ignore_fields="timestamp,nonce")
    # ... and two operations without it, in guard mode too.
    k = _server(ctx)
    first, second = _twice(ctx, k, _guard_env(ctx, k), a, b, JSON_TYPE)
    assert k.count == 2, "without IGNORE_FIELDS: %d side effects, expected " \
        "2" % k.count
    assert_not_replay(second, "without IGNORE_FIELDS, the second answer")


@timeout(20)
def test_guard_different_operations_both_performed(ctx):
    # Never a false duplicate: other amounts are other operations.
    k = _server(ctx)
    env = _guard_env(ctx, k)
    outs = [_raw(ctx, k, env, "amount=%d&currency=usd" % n)
            for n in (100, 200)]
    assert k.count == 2, "%d side effects, expected 2" % k.count
    for i, o in enumerate(outs):
        assert_not_replay(o, "operation %d" % (i + 1))
        assert_bytes(_answer_of(k, i), o, "operation %d received" % (i + 1))
    k1, k2 = _sent_keys(k)
    assert k1 != k2 and k1 == _key(k, "amount=100&currency=usd"), (k1, k2)
    again = _raw(ctx, k, env, "amount=100&currency=usd")
    assert k.count == 2, "the repeat of 100 was performed again"
    assert_replay(outs[0], again, "the repeat of 100")
    got = [(r["outcome"], r["status"]) for r in ctx.dump()
           if r.get("host") == k.authority]
    assert got == [("completed", 200), ("completed", 200),
                   ("replayed", 200)], got


@timeout(20)
def test_guard_get_not_deduplicated(ctx):
    # Only enabled methods (POST) are guarded: two identical GETs both go.
    k = _server(ctx)
    env = _guard_env(ctx, k)
    for _ in range(2):
        ctx.curl(k.url("/v1/balance"), env=env)
    assert len(k.requests) == 2 and k.count == 2, k.requests


# -- 4. event-driven and other blocking clients ----------------------------------------

@timeout(20)
def test_guard_asyncio_client_gets_replay(ctx):
    # asyncio streams on a non-blocking socket (epoll): the replay must
    # wake the loop, arrive whole, and end with EOF.
    k0 = _server(ctx)
    _raw(ctx, k0, ctx.env, script=PY_ASYNCIO)
    _raw(ctx, k0, ctx.env, script=PY_ASYNCIO)
    assert k0.count == 2, "control: %d side effects" % k0.count

    k = _server(ctx)
    env = _guard_env(ctx, k)
    first = _raw(ctx, k, env, script=PY_ASYNCIO)
    second = _raw(ctx, k, env, script=PY_ASYNCIO)
    assert_bytes(_answer_of(k), first, "asyncio, first")
    assert k.count == 1, "guard: %d side effects" % k.count
    assert_replay(first, second, "asyncio replay")
    _assert_rows(_rows(ctx, k), [("completed", 200), ("replayed", 200)],
                 _key(k))


@timeout(20)
def test_guard_asyncio_client_waits_for_twin(ctx):
    # The asyncio client's request has a twin in flight: the shim waits for
    # it and then serves the replay to the event loop.
    k = _server(ctx, delay=1.0)
    env = _guard_env(ctx, k)
    a = _raw_popen(ctx, k, env)
    _wait_request(k)
    b = _raw(ctx, k, env, script=PY_ASYNCIO)
    first = _finish(a, "the first process")
    k.wait_idle(10)
    assert k.count == 1 and len(k.requests) == 1, (
        "%d side effects, keys %r" % (k.count, _sent_keys(k)))
    assert_replay(first, b, "asyncio, after waiting")
    got = collections.Counter((r["outcome"], r["status"])
                              for r in _rows(ctx, k))
    assert got == {("completed", 200): 1, ("replayed", 200): 1}, dict(got)


@timeout(25)
def test_guard_asyncio_client_gets_409(ctx):
    k = _server(ctx, delay=1.0)
    env = _guard_env(ctx, k)
    key = _key(k)
    _kill_mid_request(ctx, k, env)
    out = _raw(ctx, k, env, script=PY_ASYNCIO)
    k.wait_idle(10)
    assert k.count == 1, "%d side effects" % k.count
    doc = _problem(out, "unknown-outcome", key, "asyncio")
    assert doc.get("idempotency_key") == key, doc


@timeout(25)
def test_guard_urllib_gets_replay_and_409(ctx):
    # urllib (http.client): a replay is an ordinary answer with the extra
    # header; a refusal is an HTTPError 409 whose body is the problem.
    k = _server(ctx)
    env = _guard_env(ctx, k)
    run = lambda: json.loads(ctx.python(PY_URLLIB, k.url(PATH), BODY,
                                        env=env).stdout)
    one, two = run(), run()
    assert k.count == 1, "%d side effects" % k.count
    assert one["status"] == two["status"] == 200, (one, two)
    assert not _header(one["headers"], "Idempotent-Replayed"), one
    assert _header(two["headers"], "Idempotent-Replayed") == ["true"], two
    assert two["body"] == one["body"], (one, two)

    k2 = _server(ctx, delay=1.0)
    env2 = _guard_env(ctx, k2)
    key = _key(k2)
    _kill_mid_request(ctx, k2, env2)
    out = json.loads(ctx.python(PY_URLLIB, k2.url(PATH), BODY,
                                env=env2).stdout)
    k2.wait_idle(10)
    assert k2.count == 1, "%d side effects" % k2.count
    assert out["status"] == 409, out
    assert _header(out["headers"], "Retrysafe-Refused") == [
        "unknown-outcome"], out
    doc = json.loads(out["body"])
    assert doc.get("idempotency_key") == key and doc.get("status") == 409, doc


# -- 3. answers too large to record ------------------------------------------------------

@timeout(25)
def test_guard_too_large_answer_refused(ctx):
    # RETRYSAFE_MAX_RESPONSE=1KiB and a 4 KiB answer: the first client gets
    # all of it; the answer is recorded without its body, so a retry is
    # refused (409 too-large, "succeeded": true), never sent again.
    for chunked in (False, True):
        what = "chunked" if chunked else "Content-Length"
        k0 = _server(ctx, payload_size=4096, chunked=chunked)
        _raw(ctx, k0, ctx.env)
        _raw(ctx, k0, ctx.env)
        assert k0.count == 2, "control: %d side effects" % k0.count

        k = _server(ctx, payload_size=4096, chunked=chunked)
        env = _guard_env(ctx, k, max_response="1KiB")
        key = _key(k)
        first = _raw(ctx, k, env)
        assert_bytes(_answer_of(k), first, what + ": the first client")
        assert len(_split(first, what)[2]) >= 4096, len(first)
        second = _raw(ctx, k, env)
        assert k.count == 1 and _sent_keys(k) == [key], (
            "%s: %d side effects, server saw %r" % (what, k.count,
                                                    _sent_keys(k)))
        doc = _problem(second, "too-large", key, what + " retry")
        assert doc.get("succeeded") is True, (what, doc)
        assert doc.get("original_status") == 200, (what, doc)
        assert doc.get("idempotency_key") == key, (what, doc)
        _assert_rows(_rows(ctx, k), [("completed", 200), ("refused", 409)],
                     key, what)


# -- HTTPS ---------------------------------------------------------------------------------

@timeout(40)
def test_guard_https_curl_timeout_retry_gets_late_answer(ctx):
    certs = ctx.tls_certs()
    _curl_retry_control(ctx, tls_certs=certs)
    _curl_retry_guarded(ctx, tls_certs=certs)


@timeout(30)
def test_guard_https_curl_verbose_late_answer(ctx):
    # curl -v gives OpenSSL a message callback whose argument curl frees
    # with the session: the late reader must not call it.
    _curl_retry_guarded(ctx, curl_args=("-v",), tls_certs=ctx.tls_certs())


@timeout(40)
def test_guard_https_requests_retry_gets_late_answer(ctx):
    _need_requests(ctx)
    certs = ctx.tls_certs()
    k0 = _server(ctx, delay=1.5, tls_certs=certs)
    rc, _, err = _requests_retry(ctx, k0, ctx.tls_env(), "post")
    k0.wait_idle(10)
    assert rc == 3, "control: requests should give up, exit %d: %r" % (rc,
                                                                       err)
    assert k0.count >= 2, "control: %d side effect(s)" % k0.count

    k = _server(ctx, delay=1.5, tls_certs=certs)
    rc, out, err = _requests_retry(ctx, k, _guard_env(ctx, k), "post")
    k.wait_idle(10)
    key = _key(k)
    assert k.count == 1 and _sent_keys(k) == [key], (
        "guard: %d side effects, server saw %r" % (k.count, _sent_keys(k)))
    assert rc == 0, "guard: requests gave up (exit %d): %s" % (rc, err[-600:])
    assert out["status"] == 200, "guard: requests got %s, not the replayed " \
        "200: %r" % (out["status"], out)
    assert _header(out["headers"], "Idempotent-Replayed") == ["true"], out
    _, _, body0 = _split(_answer_of(k), "server's answer")
    assert out["body"].encode("latin-1") == body0, (out, body0)
    rows = _rows(ctx, k)
    _assert_rows(rows, [("completed", 200), ("replayed", 200)], key)
    assert all(r.get("tls") is True for r in rows), rows


PY_REQUESTS_ONCE = r"""
import json, sys, requests
r = requests.post(sys.argv[1], data=sys.argv[2], timeout=10)
print(json.dumps({"status": r.status_code,
                  "headers": list(r.raw.headers.items()),
                  "body": r.content.decode("latin-1")}))
"""


@timeout(25)
def test_guard_https_second_process_gets_replay(ctx):
    # A completed answer replayed through SSL_read (no late answer
    # involved): curl, then curl again, then python requests.
    certs = ctx.tls_certs()
    k0 = _server(ctx, tls_certs=certs)
    for _ in range(2):
        _curl(ctx, k0, ctx.tls_env(), "-i")
    assert k0.count == 2, "control: %d side effects" % k0.count

    k = _server(ctx, tls_certs=certs)
    env = _guard_env(ctx, k)
    key = _key(k)
    first = _curl(ctx, k, env, "-i").stdout
    second = _curl(ctx, k, env, "-i").stdout
    assert_bytes(_answer_of(k), first, "first curl received")
    assert k.count == 1 and _sent_keys(k) == [key], (
        "%d side effects, server saw %r" % (k.count, _sent_keys(k)))
    assert_replay(first, second, "curl over TLS")
    expected = [("completed", 200), ("replayed", 200)]
    try:
        import requests  # noqa: F401  (only to know whether to go on)
        have_requests = True
    except ImportError:
        have_requests = False
    if have_requests:
        out = json.loads(ctx.python(PY_REQUESTS_ONCE, k.url(PATH), BODY,
                                    env=env).stdout)
        assert k.count == 1, "requests: the request was sent again"
        assert out["status"] == 200, out
        assert _header(out["headers"], "Idempotent-Replayed") == ["true"], out
        assert out["body"].encode("latin-1") == _split(first, "first")[2], (
            out, first)
        expected.append(("replayed", 200))
    rows = _rows(ctx, k)
    _assert_rows(rows, expected, key)
    assert all(r.get("tls") is True for r in rows), rows


@timeout(25)
def test_guard_https_killed_process_refused(ctx):
    # Over TLS: the restarted curl gets the 409 problem through SSL_read.
    certs = ctx.tls_certs()
    k = _server(ctx, delay=1.0, tls_certs=certs)
    env = _guard_env(ctx, k)
    key = _key(k)
    p = subprocess.Popen([need("curl"), "-q", "-sS", "--cacert", certs.ca,
                          "-d", BODY, k.url(PATH)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_request(k)
    finally:
        p.kill()
        p.communicate()
    out = _curl(ctx, k, env, "-i").stdout
    k.wait_idle(10)
    assert k.count == 1, "%d side effects" % k.count
    doc = _problem(out, "unknown-outcome", key, "curl over TLS")
    assert doc.get("request", {}).get("host") == k.authority, doc
    _assert_rows(_rows(ctx, k), [("unknown", None), ("refused", 409)], key)


# node's http module (libuv: writev, epoll): prints the answer's status,
# its Idempotent-Replayed header and body as one JSON line.
NODE_POST = r"""
const http = require('http');
const [port, path, body] = process.argv.slice(1);  // node -e: no script name
const req = http.request({host: '127.0.0.1', port: +port, path: path,
  method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}},
  res => {
    let b = '';
    res.on('data', d => b += d);
    res.on('end', () => console.log(JSON.stringify({status: res.statusCode,
      replayed: res.headers['idempotent-replayed'] || null, body: b})));
  });
req.on('error', e => { console.error(e.message); process.exit(1); });
req.end(body);
"""


@timeout(20)
def test_guard_node_client_gets_replay(ctx):
    # An event-driven client that is not python: the replay must wake
    # libuv's epoll loop and arrive whole.
    node = need("node")
    run = lambda k, env: json.loads(ctx.run(
        [node, "-e", NODE_POST, k.port, PATH, BODY], env=env,
        timeout=15).stdout)
    k0 = _server(ctx)
    control = [run(k0, ctx.env) for _ in range(2)]
    assert k0.count == 2, "control: %d side effects" % k0.count
    assert [c["replayed"] for c in control] == [None, None], control

    k = _server(ctx)
    env = _guard_env(ctx, k)
    first, second = run(k, env), run(k, env)
    assert k.count == 1, "guard: %d side effects" % k.count
    assert first["replayed"] is None and first["status"] == 200, first
    assert second == dict(first, replayed="true"), (first, second)
    _assert_rows(_rows(ctx, k), [("completed", 200), ("replayed", 200)],
                 _key(k))


# An event loop on epoll that gives up on its request and closes the
# socket: its epoll set must forget the fd then, even though the shim
# keeps the socket open to read the late answer. Prints the set's
# registrations (from /proc/self/fdinfo) right after the close.
PY_EPOLL_CLOSE = r"""
import os, select, socket, sys, time
port, req = int(sys.argv[1]), open(sys.argv[2], "rb").read()
c = socket.create_connection(("127.0.0.1", port))
c.setblocking(False)
ep = select.epoll()
ep.register(c.fileno(), select.EPOLLIN)
c.send(req)
ep.poll(0.3)              # no answer yet: give up
fd = c.fileno()
c.close()
with open("/proc/self/fdinfo/%d" % ep.fileno()) as f:
    print([l.split()[1] for l in f if l.startswith("tfd:")], flush=True)
time.sleep(1.5)           # the process lives on: the late answer comes
"""


@timeout(20)
def test_guard_epoll_set_forgets_closed_fd(ctx):
    k = _server(ctx, delay=1.0)
    out = _raw(ctx, k, ctx.env, script=PY_EPOLL_CLOSE)
    assert out.strip() == b"[]", "control: %r" % out
    k.wait_idle(5)

    k = _server(ctx, delay=1.0)
    out = _raw(ctx, k, _guard_env(ctx, k), script=PY_EPOLL_CLOSE)
    assert out.strip() == b"[]", (
        "the epoll set still holds the closed fd: %r" % out)
    k.wait_idle(5)
    # ...and the late answer was still read and recorded.
    _assert_rows(_rows(ctx, k), [("completed", 200)], _key(k))


def _pipelined(ctx, k, *bodies):
    """One send of POSTs with these bodies; returns every byte answered,
    until end of stream or 3 s of silence."""
    f = ctx.write(b"".join(post_request(k.authority, PATH, b,
                                        ["Content-Type: " + FORM])
                           for b in bodies))
    script = r"""
import socket, sys
port, req = int(sys.argv[1]), open(sys.argv[2], "rb").read()
c = socket.create_connection(("127.0.0.1", port))
c.settimeout(3)
c.sendall(req)
out = b""
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        out += d
except socket.timeout:
    pass
sys.stdout.buffer.write(out)
"""
    return ctx.run([PYTHON, "-c", script, k.port, f], env=_guard_env(ctx, k),
                   timeout=20).stdout


@timeout(20)
def test_guard_pipelined_behind_unanswered_is_sent(ctx):
    # B was answered before; A (new) then B pipelined in one send. An answer
    # given here for B would be read before A's: B goes out tagged instead,
    # and the client reads both real answers in order.
    k = _server(ctx)
    _raw(ctx, k, _guard_env(ctx, k), body="amount=2")          # B, answered
    out = _pipelined(ctx, k, "amount=1", "amount=2")
    assert out.count(b"HTTP/1.1 200") == 2, out
    assert b"Idempotent-Replayed" not in out, out
    assert [r["body"] for r in k.effects] == [b"amount=2", b"amount=1",
                                              b"amount=2"], k.effects
    first, second = (json.loads(part) for part in
                     re.findall(rb"\r\n\r\n(\{[^\n]*\})\n", out))
    assert (first["charge"], second["charge"]) == (2, 3), out


@timeout(20)
def test_guard_request_after_replay_is_dropped(ctx):
    # B (answered before) then C pipelined in one send: B is replayed with
    # Connection: close and C is dropped, as by a server that answered and
    # hung up; it never reaches the server.
    k = _server(ctx)
    _raw(ctx, k, _guard_env(ctx, k), body="amount=2")          # B, answered
    out = _pipelined(ctx, k, "amount=2", "amount=3")
    assert out.count(b"HTTP/1.1 200") == 1, out
    assert b"Idempotent-Replayed: true" in out, out
    assert [r["body"] for r in k.effects] == [b"amount=2"], k.effects
    assert [r["outcome"] for r in _rows(ctx, k)] == ["completed", "replayed"]
