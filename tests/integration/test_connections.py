"""Connection state follows the fd: reuse of fd numbers, dup and friends,
fork, threads, IPv6; and the synthetic 100 Continue reaches the program
whichever way it waits (blocking, select, poll, epoll) and reads (recv,
read, readv, recvmsg, recvfrom)."""

from harness import (Skip, assert_bytes, assert_tagged, control_and_shim,
                     remove_header)

FD_GAMES = r"""
import fcntl, os, socket, sys
pa, pb = int(sys.argv[1]), int(sys.argv[2])
log = []

def req(port, path):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 3"
            b"\r\n\r\nx=1" % (path.encode(), port))

def talk(fd, port, path):
    os.write(fd, req(port, path))
    data = b""
    while not data.endswith(b"ok"):
        chunk = os.read(fd, 4096)
        assert chunk, "connection closed"
        data += chunk
    log.append(path)

a = socket.create_connection(("127.0.0.1", pa))
fd = a.fileno()
talk(fd, pa, "/a1")
a.close()
b = socket.create_connection(("127.0.0.1", pb))
assert b.fileno() == fd, "fd number not reused"
talk(b.fileno(), pb, "/b1")             # same number, host not enabled
b.close()
c = socket.create_connection(("127.0.0.1", pa))
d = os.dup(c.fileno())
talk(d, pa, "/dup")
os.dup2(c.fileno(), 100)
talk(100, pa, "/dup2")
os.dup2(c.fileno(), 110, inheritable=False)   # dup3(O_CLOEXEC)
talk(110, pa, "/dup3")
f = fcntl.fcntl(c.fileno(), fcntl.F_DUPFD, 200)
talk(f, pa, "/dupfd")
g = fcntl.fcntl(c.fileno(), fcntl.F_DUPFD_CLOEXEC, 300)
talk(g, pa, "/dupfd-cloexec")
os.close(d)
talk(c.fileno(), pa, "/after-closing-a-dup")
e = socket.create_connection(("127.0.0.1", pb))
os.dup2(e.fileno(), 100)                # fd 100 now the other connection
talk(100, pb, "/b2-over-dup2")
talk(110, pa, "/dup3-still")
os.closerange(f, f + 1)                 # close_range
h = socket.create_connection(("127.0.0.1", pb))
talk(h.fileno(), pb, "/b3")
talk(c.fileno(), pa, "/orig-last")
print(" ".join(log))
"""

FORK = r"""
import os, socket, sys
port = int(sys.argv[1])
c = socket.create_connection(("127.0.0.1", port))

def talk(path, body):
    c.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d"
              b"\r\n\r\n%s" % (path, port, len(body), body))
    data = b""
    while not data.endswith(b"ok"):
        data += c.recv(4096)

talk(b"/before", b"p=0")
pid = os.fork()
if pid == 0:
    talk(b"/child", b"c=1")
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
talk(b"/parent", b"p=1")
"""

THREADS = r"""
import http.client, sys, threading
port = int(sys.argv[1])
errors = []

def worker(t):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
        for i in range(5):
            c.request("POST", "/t%d" % t, body=b"t=%d&i=%d" % (t, i))
            assert c.getresponse().read() == b"ok"
    except Exception as e:
        errors.append(repr(e))

ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(errors or "done")
sys.exit(1 if errors else 0)
"""


def _req(port, path, body=b"x=1"):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d"
            b"\r\n\r\n%s" % (path.encode(), port, len(body), body))


def test_fd_reuse_dup_and_close(ctx):
    a = ctx.recording_server()
    b = ctx.recording_server()
    ctx.python(FD_GAMES, a.port, b.port, env=ctx.shim_env(a.authority))
    tagged = ["/a1", "/dup", "/dup2", "/dup3", "/dupfd", "/dupfd-cloexec",
              "/after-closing-a-dup", "/dup3-still", "/orig-last"]
    got_a = a.wait_requests(len(tagged))
    got_b = b.wait_requests(3)
    assert [r.target.decode() for r in got_a] == tagged, got_a
    for r in got_a:
        path = r.target.decode()
        assert_tagged(r.raw, _req(a.port, path), "POST", a.authority, path,
                      b"x=1", what="%s:" % path)
    for r, path in zip(got_b, ["/b1", "/b2-over-dup2", "/b3"]):
        assert_bytes(_req(b.port, path), r.raw, "%s (not enabled):" % path)


def test_fork_child_uses_connection(ctx):
    s = ctx.recording_server()
    ctx.python(FORK, s.port, env=ctx.shim_env(s.authority))
    got = s.wait_requests(3)
    for r, (path, body) in zip(got, (("/before", b"p=0"), ("/child", b"c=1"),
                                     ("/parent", b"p=1"))):
        assert_tagged(r.raw, _req(s.port, path, body), "POST", s.authority,
                      path, body, what="%s:" % path)


def test_threads_concurrent_connections(ctx):
    s = ctx.recording_server()
    ctx.python(THREADS, s.port, env=ctx.shim_env(s.authority))
    got = s.wait_requests(40)
    seen = set()
    for r in got:
        path = r.target.decode()
        plain = remove_header(r.raw, "Idempotency-Key")
        assert_tagged(r.raw, plain, "POST", s.authority, path, r.body,
                      what="%s %r:" % (path, r.body))
        assert r.body.startswith(b"t=%s&" % path[2:].encode()), r.raw
        seen.add(r.body)
    assert len(seen) == 40, "bodies mixed up or lost: %r" % sorted(seen)


def test_ipv6_loopback(ctx):
    try:
        s = ctx.recording_server(host="::1")
    except OSError as e:
        raise Skip("no IPv6 loopback: %s" % e)
    body = b"amount=2000"
    run = lambda env: ctx.curl("-d", body, s.url("/v6"), env=env).stdout
    ctl, got, _, out1 = control_and_shim(ctx, s, run, ctx.shim_env("*"))
    assert out1 == b"ok"
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, "/v6", body)


# -- the synthetic 100 Continue, however the program waits and reads ------------

EXPECT_CLIENT = r"""
import os, select, socket, sys
port, body, wait, reader = (int(sys.argv[1]), sys.argv[2].encode(),
                            sys.argv[3], sys.argv[4])
c = socket.create_connection(("127.0.0.1", port), timeout=8)
fd = c.fileno()
ep = None
if wait == "epoll-early":
    ep = select.epoll()
    ep.register(fd, select.EPOLLIN)
c.sendall(b"POST /e HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
          b"Expect: 100-continue\r\n\r\n" % (port, len(body)))
c.setblocking(wait == "blocking")     # blocking: no poll before reads
if wait == "epoll":
    ep = select.epoll()
    ep.register(fd, select.EPOLLIN)

def wait_readable():
    if wait == "select":
        assert select.select([c], [], [], 8)[0], "select timed out"
    elif wait == "poll":
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(8000), "poll timed out"
    elif ep is not None:
        assert ep.poll(8), "epoll timed out"

def read():
    if reader == "recv":
        return c.recv(4096)
    if reader == "read":
        return os.read(fd, 4096)
    if reader == "readv":
        b = bytearray(4096)
        return bytes(b[:os.readv(fd, [b])])
    if reader == "recvmsg":
        return c.recvmsg(4096)[0]
    if reader == "recvfrom":
        return c.recvfrom(4096)[0]
    if reader == "recv_into":
        b = bytearray(4096)
        return bytes(b[:c.recv_into(b)])

wait_readable()
first = read()
assert first == b"HTTP/1.1 100 Continue\r\n\r\n", first
c.sendall(body)
rest = b""
while not rest.endswith(b"ok"):
    wait_readable()
    chunk = read()
    if not chunk:
        break
    rest += chunk
sys.stdout.buffer.write(first + rest)
"""

READERS = ("recv", "read", "readv", "recvmsg", "recvfrom", "recv_into")


def _expect_test(ctx, wait, readers=READERS):
    s = ctx.recording_server()
    body = b"amount=2000&currency=usd"
    for reader in readers:
        run = lambda env: ctx.python(EXPECT_CLIENT, s.port, body, wait,
                                     reader, env=env).stdout
        ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                                ctx.shim_env(s.authority))
        assert out0 == out1, "%s/%s: client saw %r, without shim %r" % (
            wait, reader, out1, out0)
        assert_tagged(got[0].raw, remove_header(ctl[0].raw, "Expect"),
                      "POST", s.authority, "/e", body,
                      what="%s/%s:" % (wait, reader))


def test_expect_100_blocking_reads(ctx):
    _expect_test(ctx, "blocking")


def test_expect_100_select(ctx):
    _expect_test(ctx, "select")


def test_expect_100_poll(ctx):
    _expect_test(ctx, "poll")


def test_expect_100_epoll(ctx):
    _expect_test(ctx, "epoll")


def test_expect_100_epoll_registered_before(ctx):
    _expect_test(ctx, "epoll-early", ("recv", "read"))
