"""The harness itself, without the shim: the servers frame and record what
real clients send, the key server honours keys, the C clients send exactly
their input, and expected_key follows the contract's layout."""

import base64
import hashlib
import hmac
import socket

from harness import (assert_bytes, client, exchange, expected_key,
                     insert_header, post_request, remove_header)

BODY = b"amount=2000&currency=usd"


def test_harness_recording_server_frames_requests(ctx):
    s = ctx.recording_server()
    big = ctx.write(b"x" * (1024 * 1024 + 1))
    s.clear()
    ctx.curl("-d", "a=1", s.url("/one"), "--next", "-H",
             "Transfer-Encoding: chunked", "-d", "b=2", s.url("/two"),
             "--next", "--data-binary", "@" + big, s.url("/three"))
    r = s.wait_requests(3)
    assert [x.target for x in r] == [b"/one", b"/two", b"/three"]
    assert [x.body for x in r[:2]] == [b"a=1", b"b=2"]
    assert len(r[2].body) == 1024 * 1024 + 1 and r[2].sent_continue
    assert r[0].conn == r[1].conn
    conn = s.connections[r[0].conn]
    assert bytes(conn.raw).startswith(r[0].raw + r[1].raw)


def test_harness_recording_server_non_http(ctx):
    s = ctx.recording_server()
    c = socket.create_connection((s.host, s.port))
    c.sendall(b"HELLO\r\n\x00\xff")
    c.shutdown(socket.SHUT_WR)
    c.recv(10)
    c.close()
    conn = s.wait_closed(1)[0]
    assert not conn.http and bytes(conn.raw) == b"HELLO\r\n\x00\xff"
    assert conn.requests == []


def test_harness_key_server(ctx):
    k = ctx.key_server()
    url = k.url("/v1/charges")
    a = ctx.curl("-H", "Idempotency-Key: k1", "-d", BODY, url).stdout
    b = ctx.curl("-H", "Idempotency-Key: k1", "-d", BODY, url).stdout
    c = ctx.curl("-d", BODY, url).stdout
    d = ctx.curl("-H", "Idempotency-Key: k1", "-d", "other", url,
                 "-w", "%{http_code}").stdout
    assert a == b and b'"charge": 1' in a, (a, b)
    assert b'"charge": 2' in c, c
    assert d.endswith(b"422"), d
    assert k.count == 2
    assert [r["replayed"] for r in k.requests] == [False, True, False, False]


def test_harness_raw_send_modes(ctx):
    s = ctx.recording_server()
    req = post_request(s.authority, "/x", BODY * 40)
    f = ctx.write(req)
    for args in (["-m", "write"], ["-m", "send", "-s", "7"],
                 ["-m", "sendto", "-s", "1"], ["-m", "sendmsg", "-s", "3"],
                 ["-m", "writev", "-s", "1"], ["-m", "sendmmsg", "-s", "5"],
                 ["-m", "sendmmsg", "-s", "1", "-g", "3"],
                 ["-m", "fastopen", "-s", "10"], ["-p", "5,6,100,200"]):
        out, got = exchange(s, lambda: ctx.run(
            [client("raw_send")] + args + [s.host, s.port, f]).stdout)
        assert out.endswith(b"\r\n\r\nok"), (args, out)
        assert_bytes(req, got[0].raw, "raw_send %s:" % args)


def test_harness_nb_writer(ctx):
    s = ctx.recording_server(rcvbuf=16384)
    _, got = exchange(s, lambda: ctx.run([client("nb_writer"), "127.0.0.1",
                                          s.port, 100000, "/n"]))
    assert got[0].body == (b"abcdefghijklmnopqrstuvwxyz" * 4000)[:100000]


def test_harness_libcurl_client(ctx):
    s = ctx.recording_server()
    out, got = exchange(s, lambda: ctx.run(
        [client("curl_post"), s.url("/c"), BODY, "X-A: 1"]).stdout)
    assert out == b"status: 200\nok\n", out
    assert got[0].body == BODY and got[0].header("X-A") == b"1"


def test_harness_expected_key_layout(ctx):
    msg = (b"retrysafe key v1\n"
           + b"\x00" * 7 + b"\x04POST"
           + b"\x00" * 7 + b"\x0fexample.test:81"
           + b"\x00" * 7 + b"\x02/x"
           + b"\x00" * 7 + b"\x01s"
           + b"\x00" * 7 + b"\x01b")
    want = base64.urlsafe_b64encode(
        hmac.new(b"k", msg, hashlib.sha256).digest()[:24]).rstrip(b"=")
    assert len(want) == 32
    assert expected_key("POST", "Example.TEST:81", "/x", "b", "s", "k") == want
    assert expected_key("POST", "a:80", "/", "") == expected_key("POST", "a",
                                                                 "/", "")
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\nbody"
    assert insert_header(raw, "K", "v") == (
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nK: v\r\n\r\n"
        b"body")
    assert remove_header(raw, "expect") == (
        b"POST / HTTP/1.1\r\nHost: a\r\n\r\nbody")
