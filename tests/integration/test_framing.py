"""Byte-level hard cases: chunked bodies, Expect: 100-continue, kept-alive
connections and pipelining, non-blocking writes through a small buffer,
every send hook and every way of splitting a request, non-HTTP bytes, and
the body size limit."""

import random

from harness import (assert_bytes, assert_tagged, client, control_and_shim,
                     exchange, expected_key, header_values, insert_header,
                     musl, post_request, remove_header, timeout)

BODY = b"amount=2000&currency=usd"
JSON = b'{"amount":2000,"currency":"usd","customer":"cus_123"}'
PATH = "/v1/charges"


def _letters(n):
    return (b"abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


def test_chunked_body(ctx):
    s = ctx.recording_server()
    run = lambda env: ctx.curl("-H", "Transfer-Encoding: chunked", "-d", BODY,
                               s.url(PATH), env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert b"chunked" in ctl[0].raw and ctl[0].body == BODY, ctl[0].raw
    assert out1 == b"ok", out1
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH, BODY)


@musl
def test_chunked_body_many_chunks(ctx):
    s = ctx.recording_server()
    body = _letters(300)
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 37]),
                                               body[i:i + 37])
                      for i in range(0, len(body), 37))
    req = (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
           % (PATH.encode(), s.authority.encode())) + chunks + \
        b"0\r\nX-Trailer: t\r\n\r\n"
    f = ctx.write(req)
    for split in ("1", "5"):
        _, got = exchange(s, lambda: ctx.run(
            [client("raw_send"), "-s", split, s.host, s.port, f],
            env=ctx.shim_env(s.authority)))
        assert got[0].body == body
        assert_tagged(got[0].raw, req, "POST", s.authority, PATH, body)


@timeout(15)
def test_expect_100_continue_large_body(ctx):
    # curl sends "Expect: 100-continue" for bodies over 1 MiB and waits for
    # the answer (here up to 30 s: a shim that does not answer itself makes
    # the test time out). The shim answers 100 and drops the Expect line.
    s = ctx.recording_server()
    body = _letters(2 * 1024 * 1024)
    f = ctx.write(body)
    run = lambda env: ctx.curl("--expect100-timeout", "30", "--data-binary",
                               "@" + f, s.url(PATH), env=env,
                               timeout=12).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert header_values(ctl[0].raw, "Expect") == [b"100-continue"], (
        "curl sent no Expect header: %r" % ctl[0].head)
    assert out1 == b"ok", out1
    assert not got[0].sent_continue and not header_values(got[0].raw,
                                                          "Expect"), (
        "Expect header forwarded: %r" % got[0].head)
    assert got[0].body == body, "body changed"
    assert_tagged(got[0].raw, remove_header(ctl[0].raw, "Expect"), "POST",
                  s.authority, PATH, body)


@timeout(15)
def test_expect_100_continue_libcurl(ctx):
    s = ctx.recording_server()
    body = _letters(1536 * 1024)
    f = ctx.write(body)
    run = lambda env: ctx.run([client("curl_post"), s.url(PATH), "@" + f,
                               "Content-Type: application/octet-stream"],
                              env=env, timeout=12).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert header_values(ctl[0].raw, "Expect") == [b"100-continue"], (
        ctl[0].head)
    assert out1 == out0, out1
    assert_tagged(got[0].raw, remove_header(ctl[0].raw, "Expect"), "POST",
                  s.authority, PATH, body)


def test_expect_100_continue_small_raw(ctx):
    # A client that writes the head, waits for 100 Continue, then the body.
    s = ctx.recording_server()
    code = r"""
import socket, sys
port, path, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
c = socket.create_connection(("127.0.0.1", port), timeout=8)
c.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
          b"Expect: 100-continue\r\n\r\n" % (path.encode(), port, len(body)))
first = c.recv(4096)
assert first.startswith(b"HTTP/1.1 100"), first
c.sendall(body)
sys.stdout.buffer.write(first + c.recv(4096))
"""
    run = lambda env: ctx.python(code, s.port, PATH, BODY, env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert out1 == out0, out1
    assert_tagged(got[0].raw, remove_header(ctl[0].raw, "Expect"), "POST",
                  s.authority, PATH, BODY)


def test_keepalive_two_posts_curl(ctx):
    s = ctx.recording_server()
    run = lambda env: ctx.curl("-d", "a=1", s.url("/one"), "--next", "-d",
                               "b=2", s.url("/two"), env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority), n=2)
    assert ctl[0].conn == ctl[1].conn, "curl did not reuse the connection"
    assert got[0].conn == got[1].conn, "not on one connection under the shim"
    assert out1 == b"okok", out1
    k1 = assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, "/one",
                       b"a=1")
    k2 = assert_tagged(got[1].raw, ctl[1].raw, "POST", s.authority, "/two",
                       b"b=2")
    assert k1 != k2


def test_keepalive_posts_python(ctx):
    s = ctx.recording_server()
    code = r"""
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=8)
out = []
for path, body in (("/a", b"x=1"), ("/b", b"x=2"), ("/a", b"x=1")):
    c.request("POST", path, body=body)
    out.append(c.getresponse().read())
c.request("GET", "/status")
out.append(c.getresponse().read())
sys.stdout.buffer.write(b",".join(out))
"""
    run = lambda env: ctx.python(code, s.port, env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority), n=4)
    assert out1 == b"ok,ok,ok,ok", out1
    assert len({r.conn for r in got}) == 1, "not one connection"
    k = [assert_tagged(got[i].raw, ctl[i].raw, "POST", s.authority, p, b)
         for i, (p, b) in enumerate((("/a", b"x=1"), ("/b", b"x=2"),
                                     ("/a", b"x=1")))]
    assert k[0] == k[2] != k[1]
    assert_bytes(ctl[3].raw, got[3].raw, "GET")


@musl
def test_pipelined_posts_one_write(ctx):
    s = ctx.recording_server()
    reqs = [post_request(s.authority, "/p1", b"one=1"),
            post_request(s.authority, "/p2", JSON,
                         ["Content-Type: application/json"]),
            b"GET /p3 HTTP/1.1\r\nHost: %s\r\n\r\n" % s.authority.encode(),
            post_request(s.authority, "/p4", b"")]
    f = ctx.write(b"".join(reqs))
    out, got = exchange(s, lambda: ctx.run(
        [client("raw_send"), "-n", 4, s.host, s.port, f],
        env=ctx.shim_env(s.authority)).stdout, n=4)
    assert out.count(b"200 OK") == 4, out
    assert len({r.conn for r in got}) == 1
    expect = [insert_header(reqs[0], "Idempotency-Key",
                            expected_key("POST", s.authority, "/p1", b"one=1")),
              insert_header(reqs[1], "Idempotency-Key",
                            expected_key("POST", s.authority, "/p2", JSON,
                                         content_type="application/json")),
              reqs[2],
              insert_header(reqs[3], "Idempotency-Key",
                            expected_key("POST", s.authority, "/p4", b""))]
    for i in range(4):
        assert_bytes(expect[i], got[i].raw, "request %d:" % (i + 1))
    conn = s.wait_closed(1)[0]
    assert_bytes(b"".join(expect), bytes(conn.raw), "connection stream")


@timeout(20)
@musl
def test_nb_writer_3mb_small_sndbuf(ctx):
    s = ctx.recording_server(rcvbuf=16384)
    size = 3 * 1024 * 1024
    body = _letters(size)
    head = (b"POST /nb HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (s.port, size))
    run = lambda env: ctx.run([client("nb_writer"), "127.0.0.1", s.port,
                               size, "/nb"], env=env, timeout=15)
    ctl, got, p0, p1 = control_and_shim(ctx, s, run,
                                        ctx.shim_env(s.authority))
    assert_bytes(head + body, ctl[0].raw, "control:")
    assert b"eagain=0" not in p0.stderr, (
        "control run never hit EAGAIN: %r" % p0.stderr)
    assert p1.stdout.endswith(b"\r\n\r\nok"), p1.stdout
    assert_tagged(got[0].raw, head + body, "POST", s.authority, "/nb", body)


# -- every send hook and every split -------------------------------------------

def _raw_send_test(ctx, args, body=JSON):
    """raw_send ARGS (a list, or a function of the request giving one) sends
    a POST; the server must get it plus the right key line."""
    s = ctx.recording_server()
    req = post_request(s.authority, PATH, body,
                       ["User-Agent: raw_send", "Content-Type: application/json"])
    if callable(args):
        args = args(req)
    f = ctx.write(req)
    out, got = exchange(s, lambda: ctx.run(
        [client("raw_send")] + [str(a) for a in args] + [s.host, s.port, f],
        env=ctx.shim_env(s.authority)).stdout)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", out
    assert_tagged(got[0].raw, req, "POST", s.authority, PATH, body,
                  what="raw_send %s:" % " ".join(map(str, args)))


def _mode_test(mode):
    def test(ctx):
        _raw_send_test(ctx, ["-m", mode])
    test.__name__ = "test_raw_send_" + mode
    return musl(test)


for _mode in ("write", "send", "sendto", "sendmsg", "writev", "sendmmsg"):
    globals()["test_raw_send_" + _mode] = _mode_test(_mode)
del _mode


@musl
def test_raw_send_fastopen(ctx):
    # sendto(MSG_FASTOPEN) connects and sends in one call.
    s = ctx.recording_server()
    req = post_request(s.authority, PATH, JSON)
    f = ctx.write(req)
    _, ctl = exchange(s, lambda: ctx.run([client("raw_send"), "-m", "fastopen",
                                          "-s", 40, s.host, s.port, f]))
    assert_bytes(req, ctl[0].raw, "control:")
    _, got = exchange(s, lambda: ctx.run(
        [client("raw_send"), "-m", "fastopen", "-s", 40, s.host, s.port, f],
        env=ctx.shim_env(s.authority)))
    assert_tagged(got[0].raw, req, "POST", s.authority, PATH, JSON)


@musl
def test_raw_send_write_1_byte_pieces(ctx):
    _raw_send_test(ctx, ["-m", "write", "-s", 1])


@musl
def test_raw_send_send_7_byte_pieces(ctx):
    _raw_send_test(ctx, ["-m", "send", "-s", 7])


@musl
def test_raw_send_sendto_3_byte_pieces(ctx):
    _raw_send_test(ctx, ["-m", "sendto", "-s", 3])


@musl
def test_raw_send_writev_1_byte_iovecs(ctx):
    _raw_send_test(ctx, ["-m", "writev", "-s", 1])


@musl
def test_raw_send_writev_7_byte_iovecs_3_per_call(ctx):
    _raw_send_test(ctx, ["-m", "writev", "-s", 7, "-g", 3])


@musl
def test_raw_send_sendmsg_1_byte_iovecs(ctx):
    _raw_send_test(ctx, ["-m", "sendmsg", "-s", 1])


@musl
def test_raw_send_sendmmsg_7_byte_messages(ctx):
    _raw_send_test(ctx, ["-m", "sendmmsg", "-s", 7])


@musl
def test_raw_send_sendmmsg_1_byte_messages_5_per_call(ctx):
    _raw_send_test(ctx, ["-m", "sendmmsg", "-s", 1, "-g", 5])


@musl
def test_raw_send_split_around_end_of_head(ctx):
    # Pieces ending inside the final CRLF CRLF, at the head/body boundary,
    # and one byte before the end of the body.
    def at(*deltas):
        def args(req):
            end = req.index(b"\r\n\r\n")
            return ["-p", ",".join(str(end + d if d >= 0 else len(req) + d)
                                   for d in deltas)]
        return args
    for deltas in ((1,), (2,), (3,), (4,), (0, 1, 2, 3, 4, -1)):
        _raw_send_test(ctx, at(*deltas))


@musl
def test_raw_send_slow_pieces(ctx):
    # 60 ms between pieces: the shim must not wait for more than the
    # request needs, nor lose a piece that came late.
    _raw_send_test(ctx, ["-m", "send", "-s", 48, "-d", 60])


@musl
def test_raw_send_large_body_writev(ctx):
    _raw_send_test(ctx, ["-m", "writev", "-s", 65536],
                   body=_letters(1024 * 1024 + 17))


# -- not HTTP, not ours ---------------------------------------------------------

def _raw_unchanged(ctx, data, args=()):
    """raw_send sends data (or data(server)), shuts down its side and reads
    until the server closes: the server must have got data unchanged."""
    s = ctx.recording_server()
    if callable(data):
        data = data(s)
    f = ctx.write(data)
    ctx.run([client("raw_send"), "-w", "-n", 0] + list(args)
            + [s.host, s.port, f], env=ctx.shim_env(s.authority))
    conn = s.wait_closed(1)[0]
    assert_bytes(data, bytes(conn.raw), "server stream")


@musl
def test_non_http_binary(ctx):
    data = random.Random(7).randbytes(5000)
    _raw_unchanged(ctx, data)
    _raw_unchanged(ctx, data, ["-m", "writev", "-s", 100])


@musl
def test_non_http_hello_line(ctx):
    _raw_unchanged(ctx, b"HELLO\r\n")
    _raw_unchanged(ctx, b"HELLO\r\nPOST / HTTP/1.1\r\n\r\n", ["-m", "send"])


@musl
def test_non_http_no_newline(ctx):
    # Bytes that could still become a request line, then end of stream.
    _raw_unchanged(ctx, b"POST /incomplete")


@musl
def test_incomplete_post_then_shutdown(ctx):
    # A client that gives up in the middle of a body it announced: every
    # byte it wrote reaches the server when it shuts down its side.
    _raw_unchanged(ctx, lambda s: post_request(s.authority, PATH, JSON)[:-5])


SEND_AND_CLOSE = r"""
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(sys.argv[2].encode("latin-1"))
c.close()
"""


def test_incomplete_post_then_close(ctx):
    # The same, when the client closes the socket instead.
    for data in (lambda s: b"POST /incomplete",
                 lambda s: post_request(s.authority, PATH, JSON)[:-5]):
        s = ctx.recording_server()
        d = data(s)
        ctx.python(SEND_AND_CLOSE, s.port, d.decode("latin-1"),
                   env=ctx.shim_env(s.authority))
        conn = s.wait_closed(1)[0]
        assert_bytes(d, bytes(conn.raw), "server stream")


# -- body size limit ------------------------------------------------------------

def test_max_body_exceeded_passes_untagged(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, max_body="1000")
    for size, tagged in ((1000, True), (1001, False)):
        body = _letters(size)
        run = lambda env_: ctx.curl("--data-binary", body, s.url(PATH),
                                    env=env_).stdout
        ctl, got, _, out1 = control_and_shim(ctx, s, run, env)
        assert out1 == b"ok"
        if tagged:
            assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH,
                          body)
        else:
            assert_bytes(ctl[0].raw, got[0].raw, "%d-byte body:" % size)


@musl
def test_max_body_chunked_exceeded(ctx):
    s = ctx.recording_server()
    body = _letters(3000)
    req = (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
           % (PATH.encode(), s.authority.encode()))
    req += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                    for i in range(0, len(body), 500)) + b"0\r\n\r\n"
    f = ctx.write(req)
    _, got = exchange(s, lambda: ctx.run(
        [client("raw_send"), "-s", 700, s.host, s.port, f],
        env=ctx.shim_env(s.authority, max_body="1KiB")))
    assert_bytes(req, got[0].raw)


@timeout(20)
def test_default_max_body_8mib(ctx):
    s = ctx.recording_server()
    body = _letters(8 * 1024 * 1024 + 1)
    f = ctx.write(body)
    run = lambda env: ctx.curl("--expect100-timeout", "30", "--data-binary",
                               "@" + f, s.url(PATH), env=env,
                               timeout=15).stdout
    ctl, got, _, out1 = control_and_shim(ctx, s, run,
                                         ctx.shim_env(s.authority))
    assert out1 == b"ok"
    assert_bytes(ctl[0].raw, got[0].raw)


def test_python_http10_post(ctx):
    s = ctx.recording_server()
    code = r"""
import socket, sys
port, body = int(sys.argv[1]), sys.argv[2].encode()
c = socket.create_connection(("127.0.0.1", port), timeout=8)
c.sendall(b"POST /old HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
          b"\r\n" % (port, len(body)) + body)
data = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
"""
    run = lambda env: ctx.python(code, s.port, BODY, env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert out1 == out0
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, "/old", BODY)
