"""Hostile and broken input: random bytes, truncated requests, a 1 MB header
line, 10,000 headers, bad Content-Length and chunk framing, HTTP/2 prior
knowledge, requests after Connection: close. Each is written by a raw client
under the shim, its host enabled, and the server must receive exactly what
was written (or that plus the key line, where the request is one the shim
may tag); the memory the shim holds meanwhile stays bounded.

The rule the framing cases check (RFC 9112): a request whose framing a
server would reject, or could read differently from the shim (negative,
overflowing, conflicting or signed Content-Length, Content-Length with
Transfer-Encoding, a final coding other than chunked, bad chunk sizes, a
bare LF in chunk framing, Transfer-Encoding in HTTP/1.0), is never tagged:
the connection passes through untouched from there on, so the request
pipelined behind it is not tagged either. Framing the RFC allows (OWS
around the value, equal repeated values, chunk extensions) is tagged."""

import random

from harness import (assert_bytes, client, expected_key, insert_header, musl,
                     not_under_asan, post_request, timeout)
from servers import RecordingServer

MIB = 1024 * 1024


# -- helpers ------------------------------------------------------------------

def _stream(ctx, s, data, split=None, **shim_vars):
    """raw_send writes data under the shim (s's host enabled) in pieces of
    split bytes, one call each, shuts down its side and reads until the
    server closes. Returns every byte the server got on that connection."""
    s.clear()
    f = ctx.write(data)
    args = ["-s", split] if split else []
    ctx.run([client("raw_send"), "-w", "-n", 0] + args + [s.host, s.port, f],
            env=ctx.shim_env(s.authority, **shim_vars), timeout=30)
    return bytes(s.wait_closed(1, timeout=20)[0].raw)


def _unchanged(ctx, s, data, splits=(None, 1), what=""):
    for split in splits:
        got = _stream(ctx, s, data, split)
        assert_bytes(data, got, "%s (pieces of %s):" % (what, split or "all"))


def _p2(s):
    """The request pipelined behind each framing case."""
    return post_request(s.authority, "/p2", b"b=2")


def _tagged(s, req, path, body):
    return insert_header(req, "Idempotency-Key",
                         expected_key("POST", s.authority, path, body))


def _framing_case(ctx, s, head_lines, body, tagged_body=None, version=b"1.1"):
    """A POST /p1 with head_lines and body, then a well-formed POST /p2, in
    one stream. tagged_body None: the shim must pass the stream through
    untouched; else both requests must carry their keys (the first one's
    over tagged_body, its decoded body)."""
    req = (b"POST /p1 HTTP/%s\r\nHost: %s\r\n" % (version, s.authority.encode())
           + b"".join(l + b"\r\n" for l in head_lines) + b"\r\n" + body)
    data = req + _p2(s)
    if tagged_body is None:
        _unchanged(ctx, s, data, what=repr(head_lines))
        return
    want = _tagged(s, req, "/p1", tagged_body) + _tagged(s, _p2(s), "/p2",
                                                         b"b=2")
    for split in (None, 1):
        assert_bytes(want, _stream(ctx, s, data, split),
                     "%r (pieces of %s):" % (head_lines, split or "all"))


# -- random bytes ---------------------------------------------------------------

@timeout(60)
@musl
def test_random_bytes(ctx):
    s = ctx.recording_server()
    for seed in (1, 2, 3):
        rnd = random.Random(seed)
        for size in (1, 17, 4096, 70000):
            data = rnd.randbytes(size)
            splits = (None, 1, 7, 1000) if size <= 4096 else (None, 4096)
            _unchanged(ctx, s, data, splits, "seed %d, %d bytes" % (seed, size))


@timeout(60)
@musl
def test_random_crlf_nul_soup(ctx):
    # Mostly the bytes that frame HTTP: CR, LF, NUL, colon, space, tokens.
    s = ctx.recording_server()
    alphabet = [b"\r", b"\n", b"\r\n", b"\0", b":", b" ", b"A", b"POST",
                b"HTTP/1.1", b"Content-Length: 5", b"\xff"]
    for seed in (1, 2, 3):
        rnd = random.Random(seed)
        data = b"".join(rnd.choice(alphabet) for _ in range(3000))
        _unchanged(ctx, s, data, (None, 1, 13), "seed %d" % seed)


@timeout(60)
@musl
def test_random_bytes_after_a_request_head(ctx):
    # Starts as a request to the enabled host, then turns to garbage: what
    # was held goes out first, unchanged, then the rest.
    s = ctx.recording_server()
    for seed in (1, 2, 3):
        head = b"POST /v1/charges HTTP/1.1\r\nHost: %s\r\n" % s.authority.encode()
        data = head + random.Random(seed).randbytes(5000)
        _unchanged(ctx, s, data, (None, 1, 100), "seed %d" % seed)


# -- truncated requests, then the client goes away -------------------------------

TRUNCATE = r"""
import os, socket, sys
port, how, split = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
data = open(sys.argv[4], "rb").read()
c = socket.create_connection(("127.0.0.1", port))
step = split or len(data)
for i in range(0, len(data), step):
    c.sendall(data[i:i + step])
if how == "close":
    c.close()
elif how == "shutdown":
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
elif how == "_exit":
    os._exit(0)
elif how == "exit":
    # The socket is still open (through a second fd) when the process ends.
    os.dup(c.fileno())
    c.close()
    sys.exit(0)
"""


def _truncations(s):
    full = post_request(s.authority, "/v1/charges", b"amount=2000&currency=usd",
                        ["Content-Type: application/x-www-form-urlencoded"])
    end = full.index(b"\r\n\r\n")
    chunked = (b"POST /c HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n5\r\nhello\r\n3\r\nwor" % s.authority.encode())
    return [("mid request line", b"POST /v1/char"),
            ("mid header line", full[:end - 7]),
            ("head without its empty line", full[:end + 2]),
            ("body short of Content-Length", full[:-5]),
            ("mid chunk", chunked)]


def _truncated(ctx, hows):
    s = ctx.recording_server()
    for name, data in _truncations(s):
        f = ctx.write(data)
        for how in hows:
            for split in (0, 1):
                s.clear()
                ctx.python(TRUNCATE, s.port, how, split, f,
                           env=ctx.shim_env(s.authority))
                got = bytes(s.wait_closed(1)[0].raw)
                assert_bytes(data, got, "%s, then %s (pieces of %s):"
                             % (name, how, split or "all"))


@timeout(30)
def test_truncated_then_close_or_shutdown(ctx):
    _truncated(ctx, ("close", "shutdown"))


@timeout(30)
def test_truncated_then_exit_without_close(ctx):
    # No close() ever comes: the process ends (exit() with the socket still
    # open, or _exit()) and the kernel closes the socket. What the shim
    # held for the key must still reach the server.
    _truncated(ctx, ("exit", "_exit"))


# -- large heads ---------------------------------------------------------------

@timeout(60)
@musl
def test_one_mib_header_line(ctx):
    # A head over 64 KiB (HTTP_MAX_HEAD) is not assembled: the connection
    # passes through untouched, the request pipelined behind it too.
    s = ctx.recording_server()
    req = post_request(s.authority, "/big", b"a=1", [b"X-Big: " + b"x" * MIB])
    _unchanged(ctx, s, req + _p2(s), (None, 1, 65536), "1 MiB header line")


@timeout(60)
@musl
def test_ten_thousand_headers(ctx):
    s = ctx.recording_server()
    many = [b"X-H-%05d: v" % i for i in range(10000)]   # 140 KB of head
    req = post_request(s.authority, "/many", b"a=1", many)
    _unchanged(ctx, s, req + _p2(s), (None, 1, 1000), "10,000 headers")
    # The limit is on bytes, not on a count: 10,000 headers in 50 KB make
    # a head like any other, tagged.
    tiny = post_request(s.authority, "/tiny", b"a=1", [b"a:b"] * 10000)
    want = _tagged(s, tiny, "/tiny", b"a=1")
    for split in (None, 1):
        assert_bytes(want, _stream(ctx, s, tiny, split),
                     "10,000 tiny headers (pieces of %s):" % (split or "all"))


# -- memory stays bounded --------------------------------------------------------

# Writes HEAD, UNIT repeated COUNT times and TAIL (files) in one blocking
# sendall, or ("nb") through a non-blocking socket as fast as it takes
# them; then prints the process's peak RSS in KiB.
FLOOD = r"""
import select, socket, sys
port, how, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
head, unit, tail = (open(p, "rb").read() for p in sys.argv[4:7])
data = bytearray(head)
for _ in range(count):
    data += unit
data += tail
c = socket.create_connection(("127.0.0.1", port))
if how == "nb":
    c.setblocking(False)
    view = memoryview(data)
    while view:
        select.select([], [c], [])
        try:
            view = view[c.send(view):]
        except BlockingIOError:
            pass
    c.setblocking(True)
else:
    c.sendall(data)
c.shutdown(socket.SHUT_WR)
while c.recv(65536):
    pass
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(line.split()[1])
"""

# What the shim may add to a process's peak RSS in these tests: the cap per
# connection (README, "Limits") for RETRYSAFE_MAX_BODY=1MiB, under 6 MiB,
# plus its own fixed cost (libraries, the journal), a few MiB. Each test
# writes 50 MB: a shim that copied it would exceed this several times over.
MAX_BODY = MIB
ALLOWANCE = 6 * MAX_BODY + 1 * MIB + 8 * MIB


def _flood(ctx, line, unit, count, tail, how, chunked=False):
    """Runs FLOOD (request line, Host, a chunked head if asked, then unit
    count times and tail) without the shim and with it
    (RETRYSAFE_MAX_BODY=1MiB). The server must get every byte, untagged,
    and the peak RSS may grow by ALLOWANCE at most."""
    not_under_asan("its shadow memory and quarantine make peak RSS say "
                   "nothing of what the shim holds")
    s = ctx.recording_server()
    head = b"%s HTTP/1.1\r\nHost: %s\r\n" % (line, s.authority.encode())
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
    files = [ctx.write(x) for x in (head, unit, tail)]
    peaks = []
    for env in (ctx.env, ctx.shim_env(s.authority, max_body=MAX_BODY)):
        s.clear()
        p = ctx.python(FLOOD, s.port, how, count, *files, env=env, timeout=40)
        peaks.append(int(p.stdout))
        got = s.wait_closed(1, timeout=30)[0].raw
        assert len(got) == len(head) + count * len(unit) + len(tail) and \
            got == head + unit * count + tail, (
                "server stream: %d bytes, not the %d written, untagged"
                % (len(got), len(head) + count * len(unit) + len(tail)))
    assert peaks[1] - peaks[0] <= ALLOWANCE // 1024, (
        "peak RSS %d KiB under the shim, %d KiB without: more than the "
        "%d KiB allowed" % (peaks[1], peaks[0], ALLOWANCE // 1024))


@timeout(60)
def test_memory_50mb_of_header_lines(ctx):
    _flood(ctx, b"POST /h", b"X-Pad: " + b"a" * 1000 + b"\r\n", 50000,
           b"Content-Length: 0\r\n\r\n", "one")


@timeout(60)
def test_memory_chunk_extensions_outweighing_data(ctx):
    # 800 one-byte chunks, each behind a 60 KB extension: little data, 48 MB
    # of framing, in one write. Held for the key only up to its raw limit
    # (2 x RETRYSAFE_MAX_BODY + 64 KiB), then passed on untagged.
    _flood(ctx, b"POST /c", b"1;" + b"e" * 60000 + b"\r\nX\r\n", 800,
           b"0\r\n\r\n", "one", chunked=True)


@timeout(60)
def test_memory_nonblocking_passed_request(ctx):
    # A PUT (not tagged) of 50 MB in 60 KB chunks, written through a
    # non-blocking socket: what the socket cannot take yet is the caller's
    # to write again, not copied by the shim.
    _flood(ctx, b"PUT /s", b"ea60\r\n" + b"d" * 60000 + b"\r\n", 870,
           b"0\r\n\r\n", "nb", chunked=True)


# -- Content-Length ---------------------------------------------------------------

@timeout(30)
@musl
def test_content_length_refused(ctx):
    s = ctx.recording_server()
    for value in (b"-1", b"-5", b"99999999999999999999999",
                  b"18446744073709551616", b"+5", b"5 5", b"0x5", b"5,",
                  b"5, 6", b""):
        _framing_case(ctx, s, [b"Content-Length: " + value], b"hello")
    _framing_case(ctx, s, [b"Content-Length: 5", b"Content-Length: 6"],
                  b"hello!")
    _framing_case(ctx, s, [b"Content-Length : 5"], b"hello")


@timeout(30)
@musl
def test_content_length_allowed(ctx):
    # What RFC 9110/9112 let a server take as one length: tagged.
    s = ctx.recording_server()
    _framing_case(ctx, s, [b"Content-Length:  5 \t"], b"hello", b"hello")
    _framing_case(ctx, s, [b"Content-Length: 5", b"Content-Length: 5"],
                  b"hello", b"hello")
    _framing_case(ctx, s, [b"Content-Length: 5, 5"], b"hello", b"hello")
    _framing_case(ctx, s, [b"Content-Length: 005"], b"hello", b"hello")


# -- Transfer-Encoding and chunks ----------------------------------------------------

CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"


@timeout(30)
@musl
def test_content_length_and_transfer_encoding(ctx):
    s = ctx.recording_server()
    te, cl = b"Transfer-Encoding: chunked", b"Content-Length: 5"
    _framing_case(ctx, s, [te, cl], CHUNKED)
    _framing_case(ctx, s, [cl, te], CHUNKED)
    _framing_case(ctx, s, [cl, te], b"hello")


@timeout(30)
@musl
def test_transfer_encoding_refused(ctx):
    s = ctx.recording_server()
    for codings in (b"chunked, gzip", b"gzip", b"xchunked", b"chunked;q=1",
                    b"", b"chunked, chunked"):
        _framing_case(ctx, s, [b"Transfer-Encoding: " + codings], CHUNKED)
    # HTTP/1.0 with Transfer-Encoding: faulty framing (RFC 9112, 6.1).
    _framing_case(ctx, s, [b"Transfer-Encoding: chunked"], CHUNKED,
                  version=b"1.0")


@timeout(40)
@musl
def test_bad_chunk_sizes(ctx):
    s = ctx.recording_server()
    te = [b"Transfer-Encoding: chunked"]
    for body in (b"zz\r\nhello\r\n0\r\n\r\n",             # not hex
                 b"-5\r\nhello\r\n0\r\n\r\n",             # negative
                 b"10000000000000000\r\nhello\r\n0\r\n\r\n",  # over 2^64
                 b"FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",   # over a message
                 b"5 \r\nhello\r\n0\r\n\r\n",             # trailing space
                 b"\r\nhello\r\n0\r\n\r\n",               # empty
                 b"5\nhello\r\n0\r\n\r\n",                # bare LF
                 b"5\r\nhello\n0\r\n\r\n",                # bare LF after data
                 b"5\r\nhello\r\n0\r\n\n",                # bare LF ending it
                 b"5\r\nhello\r\n0\r\nT: v\n\r\n",         # bare LF in a trailer
                 b"5\r\nhelloXY0\r\n\r\n",                # no CRLF after data
                 b"3\r\nhello\r\n0\r\n\r\n",              # data past its size
                 b"5;a\rb\r\nhello\r\n0\r\n\r\n"):        # CR in extension
        _framing_case(ctx, s, te, body)


@timeout(30)
@musl
def test_good_chunks_tagged(ctx):
    # The same shapes, well formed: tagged, so the refusals above are the
    # framing's doing.
    s = ctx.recording_server()
    te = [b"Transfer-Encoding: chunked"]
    _framing_case(ctx, s, te, CHUNKED, b"hello")
    _framing_case(ctx, s, te, b"5;a=b\r\nhello\r\n0\r\nX-T: t\r\n\r\n",
                  b"hello")
    _framing_case(ctx, s, [b"Transfer-Encoding: gzip, chunked"], CHUNKED,
                  b"hello")


# -- not HTTP/1.1 ----------------------------------------------------------------------

@musl
def test_http2_prior_knowledge(ctx):
    s = ctx.recording_server()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"
    # HEADERS (stream 1, END_HEADERS) with HPACK for :method POST, :scheme
    # http, :path /, then DATA with END_STREAM.
    headers = b"\x00\x00\x03\x01\x04\x00\x00\x00\x01\x83\x86\x84"
    data = b"\x00\x00\x03\x00\x01\x00\x00\x00\x01a=1"
    _unchanged(ctx, s, preface + settings + headers + data, (None, 1, 9),
               "HTTP/2 prior knowledge")


# -- after Connection: close ---------------------------------------------------------------

class _KeepReading(RecordingServer):
    """Records what follows a request with Connection: close too, rather
    than hanging up after answering it as a server would."""

    def _frame(self, *args):
        res = super()._frame(*args)
        return (res[0], False) if isinstance(res, tuple) else res


@musl
def test_requests_after_connection_close(ctx):
    # The shim does not read Connection: a request written after one with
    # Connection: close is tagged like any other (a server must not process
    # it, RFC 9112 9.6). Nothing else changes.
    s = _KeepReading()
    ctx._cleanup.append(s.stop)
    first = post_request(s.authority, "/c1", b"a=1", ["Connection: close"])
    then = [post_request(s.authority, "/c2", b"b=2"),
            b"GET /c3 HTTP/1.1\r\nHost: %s\r\n\r\n" % s.authority.encode()]
    want = (_tagged(s, first, "/c1", b"a=1") + _tagged(s, then[0], "/c2", b"b=2")
            + then[1])
    for split in (None, 1):
        got = _stream(ctx, s, first + b"".join(then), split)
        assert_bytes(want, got, "pieces of %s:" % (split or "all"))


CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

PIPELINE_THEN_RETRY = r"""
import socket, sys
port, first, second = int(sys.argv[1]), open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
want = int(sys.argv[4])
def exchange(data, want=None):
    # Reads until the server hangs up, or has sent want bytes.
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(data)
    got = b""
    try:
        while want is None or len(got) < want:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except ConnectionResetError:
        pass   # the server hung up with our second request unread
    c.close()
    return got
sys.stdout.buffer.write(exchange(first + second) + b"\n--\n" + exchange(second, want))
"""


@timeout(20)
def test_guard_retry_of_request_after_closing_answer_is_sent(ctx):
    # A request pipelined behind one whose answer says Connection: close is
    # never read by the server (RFC 9112 9.6): it is journaled failed, not
    # unknown, so guard mode sends its retry instead of refusing it.
    s = RecordingServer(response=CLOSE_RESPONSE)
    ctx._cleanup.append(s.stop)
    first = post_request(s.authority, "/c1", b"a=1", ["Connection: close"])
    second = post_request(s.authority, "/c2", b"b=2")
    env = ctx.shim_env(s.authority, mode="guard", wait="1s")
    p = ctx.python(PIPELINE_THEN_RETRY, s.port, ctx.write(first),
                   ctx.write(second), len(CLOSE_RESPONSE), env=env, timeout=15)
    on_first, _, on_retry = p.stdout.partition(b"\n--\n")
    assert_bytes(CLOSE_RESPONSE, on_first, "the pipelined connection's answers:")
    assert_bytes(CLOSE_RESPONSE, on_retry, "the retry's answer (not a 409):")
    conns = s.wait_closed(2, timeout=10)
    assert_bytes(_tagged(s, first, "/c1", b"a=1") + _tagged(s, second, "/c2", b"b=2"),
                 bytes(conns[0].raw), "the first connection as the server read it:")
    assert_bytes(_tagged(s, second, "/c2", b"b=2"), bytes(conns[1].raw),
                 "the retry as the server got it:")
    key = expected_key("POST", s.authority, "/c2", b"b=2").decode()
    # Both rows, in either order: the first one's row may be written
    # after the retry's (README, "The journal": within about 100 ms).
    outcomes = sorted(r["outcome"] for r in ctx.dump() if r.get("key") == key)
    assert outcomes == ["completed", "failed"], (
        "journal outcomes of the request after the closing answer: %r" % outcomes)
