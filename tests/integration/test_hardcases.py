"""The hard cases a review found, each kept as a test: what a program does
around a request the shim is holding (its head written, its body not yet)
or around a write the shim is in the middle of.

- vfork()ed children (Python's subprocess) closing every inherited fd
- shutdown() or close() from one thread while another is blocked in write()
- epoll registrations that outlive the fd number they were made through
- implicit closes: dup2/dup3 over the fd, close_range, fclose(fdopen(fd))
- side paths: sendmsg with an address, MSG_OOB, sendfile
- waiting: poll() while a large request is held; fork while the shim starts
- a huge non-blocking write; recvmsg(fd, NULL, 0)

Most run the program without the shim first (the control) and require the
same output and the same bytes at the server. Every wait has a deadline
that fails the test instead of hanging it.
"""

import errno
import os
import select
import socket
import subprocess
import threading
import time

from harness import (assert_bytes, assert_tagged, client, control_and_shim,
                     exchange, musl, not_under_asan, timeout)

SECRET_HEAD = b"Authorization: Bearer SECRET-A"


# -- helpers ------------------------------------------------------------------

class SilentServer:
    """A listener whose connections nobody reads until drain() is called;
    a small receive buffer makes the client's socket fill up soon."""

    def __init__(self, rcvbuf=4096):
        self._l = socket.socket()
        self._l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._l.bind(("127.0.0.1", 0))
        self._l.listen(8)
        self.port = self._l.getsockname()[1]
        self.authority = "127.0.0.1:%d" % self.port
        self._conn = None
        self._thread = None
        self._data = None

    def _accept(self, timeout):
        if self._conn is None:
            self._l.settimeout(timeout)
            try:
                self._conn, _ = self._l.accept()
            except socket.timeout:
                raise AssertionError("the client never connected")
        return self._conn

    def drain(self, timeout=10.0):
        """Everything the client sent, once it closed its side."""
        conn = self._accept(timeout)
        deadline = time.monotonic() + timeout
        out = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([conn], [], [], left)[0]:
                raise AssertionError("client did not finish sending in %gs; "
                                     "got %d bytes" % (timeout, len(out)))
            try:
                chunk = conn.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return bytes(out)
            out += chunk

    def drain_in_background(self, timeout=10.0):
        def run():
            try:
                self._data = self.drain(timeout)
            except AssertionError as e:
                self._data = e
        self._accept(timeout)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def drained(self, timeout=10.0):
        self._thread.join(timeout)
        if isinstance(self._data, AssertionError) or self._data is None:
            raise self._data or AssertionError("server still reading")
        return self._data

    def close(self):
        for s in (self._conn, self._l):
            if s is not None:
                s.close()


class Program:
    """A client running in the background, talked to line by line. Every
    read has a deadline: a program stuck in the shim fails the test."""

    def __init__(self, argv, env, cwd):
        self.name = os.path.basename(str(argv[0]))
        self.p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd,
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self._buf = b""
        self.lines = []

    def line(self, timeout, what):
        """The next line of output, without its newline."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise AssertionError("%s: no %s within %gs (stuck?); output "
                                     "so far: %r" % (self.name, what, timeout,
                                                     self.lines))
            chunk = os.read(fd, 4096)
            if not chunk:
                self.kill()
                raise AssertionError("%s ended before %s (status %s); "
                                     "output: %r; stderr: %r"
                                     % (self.name, what, self.p.wait(),
                                        self.lines + [self._buf],
                                        self.p.stderr.read()[-500:]))
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.lines.append(line.decode())
        return line.decode()

    def line_starting(self, word, timeout, what):
        """The next line that starts with word (earlier ones are kept in
        self.lines)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()), what)
            if line.split()[:1] == [word]:
                return line

    def say(self, text=b"go\n"):
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def finish(self, timeout=8.0):
        """Remaining output lines, once it exited 0."""
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %gs; output: %r"
                                 % (self.name, timeout, self.lines))
        rest = (self._buf + out).decode().splitlines()
        self.lines += rest
        if self.p.returncode != 0:
            raise AssertionError("%s exited %d; output: %r; stderr: %r"
                                 % (self.name, self.p.returncode, self.lines,
                                    err[-500:]))
        return rest

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def _fields(line, name):
    """The numbers after `name` on a line like "name 12 0 3"."""
    parts = line.split()
    if not parts or parts[0] != name:
        raise AssertionError("expected a %r line, got %r" % (name, line))
    return [int(x) for x in parts[1:]]


def _run(ctx, name, *args, env=None, timeout=8.0):
    """Runs build/clients/NAME; returns its stdout lines (exit 0 required)."""
    p = ctx.run([client(name)] + list(args), env=env, timeout=timeout)
    return p.stdout.decode().splitlines()


def _head(port, path, length=7):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d"
            b"\r\n\r\n" % (path, port, length))


# -- 1. Python's subprocess: a vfork()ed child closes every fd ------------------

SUBPROCESS_KEEPALIVE = r"""
import http.client, subprocess, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("POST", "/a", body=b'{"x":1}')
assert c.getresponse().read() == b"ok"
subprocess.run(["true"], check=True)   # vfork; the child close_range()s
c.request("POST", "/b", body=b'{"x":2}')
assert c.getresponse().read() == b"ok"
print("done")
"""

SUBPROCESS_MID_REQUEST = r"""
import socket, subprocess, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"POST /c HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 7\r\n"
          b"\r\n" % port)              # held: the body has not come
subprocess.run(["true"], check=True)
s.sendall(b'{"x":3}')
data = b""
while not data.endswith(b"ok"):
    chunk = s.recv(4096)
    assert chunk, "connection closed: %r" % data
    data += chunk
print(data.decode())
"""


def test_subprocess_between_keepalive_posts(ctx):
    s = ctx.recording_server()
    run = lambda env: ctx.python(SUBPROCESS_KEEPALIVE, s.port, env=env).stdout
    ctl, got, _, out = control_and_shim(ctx, s, run, ctx.shim_env(s.authority),
                                        n=2)
    assert out == b"done\n", out
    for i, (path, body) in enumerate(((b"/a", b'{"x":1}'),
                                      (b"/b", b'{"x":2}'))):
        assert_tagged(got[i].raw, ctl[i].raw, "POST", s.authority, path, body,
                      what="%s:" % path.decode())


def test_subprocess_between_head_and_body(ctx):
    s = ctx.recording_server()
    out, got = exchange(s, lambda: ctx.python(
        SUBPROCESS_MID_REQUEST, s.port, env=ctx.shim_env(s.authority)).stdout)
    assert out.endswith(b"ok\n"), out
    assert_tagged(got[0].raw, _head(s.port, b"/c") + b'{"x":3}', "POST",
                  s.authority, "/c", b'{"x":3}')
    assert len(s.connections) == 1 and len(s.connections[0].requests) == 1


# -- 2. shutdown or close from another thread while write() blocks -------------

def _blocked_writer(ctx, op, env):
    """hc_threads shutdown|close: a thread blocked writing 64 MiB to a server
    that does not read; the main thread shuts the socket down or closes
    the fd. The server reads once close() returned, or once the program
    ended after shutdown(). Returns (op's fields, writer's fields, bytes the
    server received)."""
    server = SilentServer()
    try:
        with Program([client("hc_threads"), op, server.port], env,
                     ctx.tmp) as p:
            r, err, ms = _fields(p.line(5, "return from %s()" % op), op)
            assert (r, err) == (0, 0), "%s() returned %d errno %d" % (op, r,
                                                                      err)
            assert ms < 3000, "%s() took %d ms" % (op, ms)
            if op == "close":
                # Closing the fd does not end a write in progress (not
                # without the shim either): it completes once the server
                # reads.
                server.drain_in_background()
            p.say()
            writer = p.line(10, "return from the writer's write()")
            assert writer != "writer blocked", (
                "write() still blocked 8 s after %s()" % op)
            wr = _fields(writer, "writer")
            p.finish()
            data = (server.drained() if op == "close" else server.drain())
    finally:
        server.close()
    return (r, err, ms), wr, data


@musl
def test_shutdown_wakes_blocked_writer(ctx):
    # Without the shim the blocked write() returns at once (a short count
    # or EPIPE); what it returns is the next test's business.
    _, (_, _, ms), _ = _blocked_writer(ctx, "shutdown",
                                       ctx.shim_env("127.0.0.1"))
    assert ms < 5000, "the writer woke %d ms after shutdown()" % ms


@musl
def test_shutdown_blocked_writer_counts_sent_bytes(ctx):
    # The writer's answer after the shutdown counts exactly the bytes that
    # reached the server, as without the shim.
    _, _, ctl = _blocked_writer(ctx, "shutdown", ctx.env)
    _, (ret, err, _), data = _blocked_writer(ctx, "shutdown",
                                             ctx.shim_env("127.0.0.1"))
    assert ctl, "control: the server got nothing"
    assert data == b"\x16" * len(data), "server got bytes not written"
    assert ret == len(data) or (ret == -1 and not data), (
        "write() returned %d (errno %d) but the server received %d bytes "
        "(%d without the shim)" % (ret, err, len(data), len(ctl)))


@musl
def test_close_while_writer_blocked(ctx):
    # close() returns at once; the write in progress goes on (the kernel
    # keeps the socket open for it) and completes once the server reads,
    # as without the shim.
    _, (ret, err, _), data = _blocked_writer(ctx, "close",
                                             ctx.shim_env("127.0.0.1"))
    assert (ret, err) == (64 << 20, 0), "write() returned %d errno %d" % (
        ret, err)
    assert len(data) == 64 << 20 and data == b"\x16" * len(data), (
        "server received %d bytes" % len(data))


# -- 3./4. epoll registrations outliving their fd number ---------------------

def _epfd(ctx, a, b, env, while_waiting=None):
    """hc_fd epfd against servers a and b: a POST head with a secret header
    held on A, which was moved by dup()+close() after its epoll
    registration; B reuses A's old number. Returns (output, A's stream, B's
    stream)."""
    a.clear()
    b.clear()
    with Program([client("hc_fd"), "epfd", a.port, b.port], env, ctx.tmp) as p:
        p.line_starting("waited", 6, "end of the epoll wait")
        if while_waiting:
            while_waiting()
        p.say()
        p.finish()
    ca, cb = a.wait_closed(1)[0], b.wait_closed(1)[0]
    return p.lines, bytes(ca.raw), bytes(cb.raw)


@musl
def test_epoll_held_bytes_stay_on_their_connection(ctx):
    a, b = ctx.recording_server(), ctx.recording_server()
    out0, a0, b0 = _epfd(ctx, a, b, ctx.env)
    out, got_a, got_b = _epfd(ctx, a, b, ctx.shim_env(a.authority))
    assert SECRET_HEAD not in got_b, "A's held request reached B: %r" % got_b
    assert_bytes(b0, got_b, "server B")
    assert_bytes(a0, got_a, "server A")
    assert out == out0, "client output %r, without the shim %r" % (out, out0)


@musl
def test_epoll_wait_after_dup_close_releases_held(ctx):
    # The program waits on epoll for A's answer through the registration it
    # made before moving A to another fd: A's server must get the request
    # while the program waits (as without the shim), not only at close.
    a, b = ctx.recording_server(), ctx.recording_server()
    seen = {}

    def look():
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not (
                a.connections and a.connections[0].raw.endswith(b"\r\n\r\n")):
            time.sleep(0.02)
        seen["a"] = bytes(a.connections[0].raw) if a.connections else b""

    _, a0, _ = _epfd(ctx, a, b, ctx.env, look)
    assert seen["a"] == a0, "control: %r" % seen
    _epfd(ctx, a, b, ctx.shim_env(a.authority), look)
    assert_bytes(a0, seen["a"], "server A, while the program waited on epoll")


@musl
def test_epoll_waiters_while_fds_die(ctx):
    # Threads in epoll_wait while the main thread registers fds holding a
    # request and dup2()s over them: no crash, no double free.
    out = _run(ctx, "hc_threads", "epoll_churn", 2000,
               env=ctx.shim_env("127.0.0.1"))
    assert out and _fields(out[-1], "iterations")[0] > 0, out


# -- 5. implicit closes: dup2, dup3, close_range ------------------------------

def _implicit_close(ctx, mode):
    s = ctx.recording_server()
    results = []
    for env in (ctx.env, ctx.shim_env(s.authority)):
        s.clear()
        out = _run(ctx, "hc_fd", mode, s.port, env=env)
        conn = s.wait_closed(1)[0]
        results.append((out, bytes(conn.raw)))
    (out0, raw0), (out, raw) = results
    assert_bytes(_head(s.port, b"/implicit"), raw0, "control")
    assert_bytes(raw0, raw, "server received (after %s)" % mode)
    assert out == out0, "client output %r, without the shim %r" % (out, out0)


@musl
def test_dup2_over_held_fd_sends_held(ctx):
    _implicit_close(ctx, "dup2")


@musl
def test_dup3_over_held_fd_sends_held(ctx):
    _implicit_close(ctx, "dup3")


# Not under musl: its libc has no close_range() (only the syscall).
def test_close_range_sends_held(ctx):
    _implicit_close(ctx, "close_range")


# -- 6. fclose(fdopen(fd)) closes behind the shim's back ----------------------

@musl
def test_fclose_then_reused_fd_is_a_file(ctx):
    s = ctx.recording_server()
    path = os.path.join(ctx.tmp, "stale.txt")
    out = _run(ctx, "hc_fd", "stale", s.port, path,
               env=ctx.shim_env(s.authority))
    fds = _fields(out[1], "fds")
    assert fds[0] == fds[1], "fd number not reused: %r" % out
    assert _fields(out[2], "write") == [15, 0], out
    with open(path, "rb") as f:
        assert_bytes(b"important data\n", f.read(), "the file holds")
    conn = s.wait_closed(1)[0]
    head = _head(s.port, b"/stale")
    # The held head may be lost with the fd glibc closed (nothing tells
    # the shim); it must never be mixed with the file's bytes.
    assert bytes(conn.raw) in (b"", head), "server got %r" % bytes(conn.raw)


# -- 7. side paths: sendmsg with an address, MSG_OOB, sendfile ----------------

def _side_path(ctx, mode):
    s = ctx.recording_server()
    results = []
    for env in (ctx.env, ctx.shim_env(s.authority)):
        s.clear()
        out = _run(ctx, "hc_fd", mode, s.port, env=env)
        results.append((out, bytes(s.wait_closed(1)[0].raw)))
    (out0, raw0), (out, raw) = results
    assert raw0.startswith(_head(s.port, b"/side")), raw0
    assert_bytes(raw0, raw, "server received (%s)" % mode)
    assert out == out0, "client output %r, without the shim %r" % (out, out0)


@musl
def test_sendmsg_with_address_after_held_head(ctx):
    _side_path(ctx, "sendmsg_name")


@musl
def test_send_oob_after_held_head(ctx):
    # The urgent byte is out of band: the server's recv() does not see it.
    _side_path(ctx, "oob")


SENDFILE = r"""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
with open(path, "rb") as f:
    n = len(f.read())
    f.seek(0)
    s.sendall(b"POST /file HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
              b"Content-Length: %d\r\n\r\n" % (port, n))
    assert s.sendfile(f) == n
data = b""
while not data.endswith(b"ok"):
    chunk = s.recv(4096)
    assert chunk, "connection closed: %r" % data
    data += chunk
print("ok")
"""


def test_sendfile_body_after_held_head(ctx):
    s = ctx.recording_server()
    body = bytes(range(256)) * 400
    path = ctx.write(body)
    run = lambda env: ctx.python(SENDFILE, s.port, path, env=env).stdout
    ctl, got, _, out = control_and_shim(ctx, s, run,
                                        ctx.shim_env(s.authority))
    assert out == b"ok\n", out
    assert_bytes(_head(s.port, b"/file", len(body)) + body, ctl[0].raw,
                 "control")
    assert_bytes(ctl[0].raw, got[0].raw)


# -- recvmsg(fd, NULL, 0) ---------------------------------------------------------

# Not under musl: its recvmsg() itself faults on a NULL msghdr.
def test_recvmsg_null_msghdr(ctx):
    s = ctx.recording_server()
    out0 = _run(ctx, "hc_fd", "recvmsg_null", s.port)
    out = _run(ctx, "hc_fd", "recvmsg_null", s.port,
               env=ctx.shim_env(s.authority))
    assert _fields(out0[1], "recvmsg") == [-1, errno.EFAULT], out0
    assert out == out0, "client output %r, without the shim %r" % (out, out0)


# -- 8. poll() while a large request is held -----------------------------------

def _pollwait(ctx, env):
    server = SilentServer()
    try:
        with Program([client("hc_nb"), "pollwait", server.port], env,
                     ctx.tmp) as p:
            wrote = _fields(p.line(5, "the body writes"), "wrote")[0]
            r, ms = _fields(p.line(5, "return from poll()"), "poll")
            server.drain_in_background()
            p.say()
            p.finish()
        data = server.drained()
    finally:
        server.close()
    return wrote, r, ms, data, server.port


@timeout(15)
@musl
def test_poll_while_holding_large_request(ctx):
    body = (b"abcdefghijklmnopqrstuvwxyz" * ((4 << 20) // 26 + 1))[:4 << 20]
    _, r0, _, data0, port0 = _pollwait(ctx, ctx.env)
    assert r0 == 0, "control: poll() returned %d" % r0
    assert_bytes(_head(port0, b"/poll", len(body)) + body, data0, "control")
    _, r, ms, data, port = _pollwait(ctx, ctx.shim_env("127.0.0.1"))
    assert r == 0, "poll() returned %d" % r
    assert ms < 5000, "poll(POLLIN, 200 ms) took %d ms" % ms
    # The program waited to read: the request went out untagged, whole.
    assert_bytes(_head(port, b"/poll", len(body)) + body, data,
                 "server received")


# -- 9. fork while another thread starts the shim -------------------------------

@timeout(20)
@musl
def test_fork_during_lazy_start(ctx):
    not_under_asan("its allocator (gcc 12) is not fork-safe: a fork while "
                   "another thread allocates leaves the child's allocator "
                   "locked for good")
    for i in range(40):
        env = ctx.shim_env("127.0.0.1")
        del env["RETRYSAFE_SECRET"]     # the shim loads or makes one
        state = os.path.join(ctx.tmp, "state%d" % (i % 2 and i))
        env["XDG_STATE_HOME"] = state
        delay = (i * 53) % 1500
        p = ctx.run([client("hc_threads"), "forkstart", delay], env=env,
                    timeout=8, check=False)
        assert p.returncode == 0 and p.stdout == b"child ok\n", (
            "iteration %d (fork after %d us): %r, exit %d; stderr %r"
            % (i, delay, p.stdout, p.returncode, p.stderr[-300:]))


# -- 10. a huge non-blocking write to a server that does not read --------------

def _big_write(ctx, kind):
    server = SilentServer()
    try:
        out = _run(ctx, "hc_nb", kind, server.port,
                   env=ctx.shim_env(server.authority))
        data = server.drain()
    finally:
        server.close()
    first, err = _fields(out[0], "first")
    total = _fields(out[1], "total")[0]
    size = 64 << 20
    if kind == "http":
        head = b"POST /big HTTP/1.1\r\nHost: %s\r\nContent-Length: " % (
            server.authority.encode())
        head += b"%d\r\n\r\n" % (size - len(head) - 12)
        expect = head + b"b" * (size - len(head))
    else:
        expect = b"\x16" * size
    assert 0 < first < 16 << 20, (
        "write() of 64 MiB returned %d (errno %d): the kernel takes a few "
        "MB" % (first, err))
    assert_bytes(expect[:total], data, "server received")


@musl
def test_nonblocking_huge_write_binary(ctx):
    _big_write(ctx, "binary")


@musl
def test_nonblocking_huge_write_http_over_max_body(ctx):
    _big_write(ctx, "http")
