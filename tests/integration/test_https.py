"""HTTPS (issue #4): the shim tags requests inside TLS, where the program
hands its plaintext to OpenSSL (curl, python's _ssl, which loads libssl with
RTLD_LOCAL) or GnuTLS (wget). The servers decrypt and record what arrived:
every test compares the decrypted bytes of a run under the shim with a
control run without it, byte for byte, as the plain tests do.

Clients trust the run's test CA (certs.py: made once per run with the
openssl command, for localhost and 127.0.0.1) and use https://localhost:PORT
URLs, so SNI and the Host header say "localhost:PORT": that is the enabled
host (RETRYSAFE_HOSTS=localhost:PORT) and the authority in the key, whose
formula is the plain one with 443 as the default port.

HTTP/2: Debian's nginx with `listen ... ssl http2` logs each request's
protocol and key. For an enabled host the shim takes h2 out of the ALPN
offer, so curl --http2 speaks HTTP/1.1 and the key arrives; any other host
keeps HTTP/2.

Write semantics: tls_clients/ssl_post.c and gnutls_post.c call OpenSSL and
GnuTLS directly (SSL_write / SSL_write_ex, pieces, non-blocking WANT_WRITE
retries with the same buffer, SSL_MODE_ENABLE_PARTIAL_WRITE, both ALPN
setters; gnutls_record_send in pieces, GNUTLS_E_AGAIN retried with the same
buffer or with NULL, 0). They are compiled once per run by the tests.
"""

import fcntl
import os
import subprocess
import tempfile

from harness import (HERE, PYTHON, assert_bytes, assert_row, assert_tagged,
                     control_and_shim, exchange, expected_key, header_values,
                     insert_header, need, post_request, remove_header,
                     timeout, CLIENT_CFLAGS, Skip)

BODY = b"amount=2000&currency=usd&description=order-1234"
PATH = "/v1/charges"

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

PY_URLLIB = r"""
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                             method="POST")
with urllib.request.urlopen(req, timeout=8) as r:
    sys.stdout.write(r.read().decode())
"""

PY_REQUESTS = r"""
import sys, requests
r = requests.post(sys.argv[1], data=sys.argv[2].encode(), timeout=8)
r.raise_for_status()
sys.stdout.write(r.text)
"""

# Two POSTs and a GET on one kept-alive TLS connection.
PY_KEEPALIVE = r"""
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
c = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=ctx,
                                timeout=8)
out = []
for path, body in (("/one", b"a=1"), ("/two", b"b=2")):
    c.request("POST", path, body=body)
    out.append(c.getresponse().read())
c.request("GET", "/status")
out.append(c.getresponse().read())
sys.stdout.buffer.write(b",".join(out))
"""

# A tagged plain-HTTP POST on a raw socket (nothing here imports ssl), then
# this process's /proc/self/maps.
PY_PLAIN_THEN_MAPS = r"""
import socket, sys
port, body = int(sys.argv[1]), sys.argv[2].encode()
c = socket.create_connection(("127.0.0.1", port), timeout=8)
c.sendall(b"POST /v1/charges HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
answer = b""
while not answer.endswith(b"ok"):
    data = c.recv(4096)
    if not data:
        break
    answer += data
c.close()
sys.stderr.write(answer.decode(errors="replace"))
with open("/proc/self/maps") as f:
    sys.stdout.write(f.read())
"""

# An HTTPS POST with urllib (python's _ssl: libssl loaded RTLD_LOCAL), then
# /proc/self/maps.
PY_HTTPS_THEN_MAPS = r"""
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                             method="POST")
with urllib.request.urlopen(req, timeout=8) as r:
    sys.stderr.write(r.read().decode())
with open("/proc/self/maps") as f:
    sys.stdout.write(f.read())
"""

# The shim starts with a plain connection; libssl arrives only afterwards,
# when urllib is imported (dlopen of _ssl, RTLD_LOCAL), then an HTTPS POST.
PY_PLAIN_THEN_HTTPS = r"""
import socket, sys
port, url, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
c = socket.create_connection(("127.0.0.1", port), timeout=8)
c.sendall(b"POST /plain HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
answer = b""
while not answer.endswith(b"ok"):
    data = c.recv(4096)
    if not data:
        break
    answer += data
c.close()
import urllib.request
req = urllib.request.Request(url, data=body, method="POST")
with urllib.request.urlopen(req, timeout=8) as r:
    sys.stdout.write(answer.decode()[-2:] + "," + r.read().decode())
"""


# asyncio's TLS: an SSLObject over memory BIOs (no fd behind the SSL
# object), two POSTs on one connection.
PY_ASYNCIO = r"""
import asyncio, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reqs = [a.encode() for a in sys.argv[4:]]
async def main():
    ctx = ssl.create_default_context(cafile=ca)
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname=host)
    out = []
    for req in reqs:
        head, _, body = req.partition(b"\r\n\r\n")
        w.write(head + b"\r\n\r\n")
        w.write(body)
        await w.drain()
        ans = await r.readuntil(b"\r\n\r\n")
        out.append(ans + await r.readexactly(2))
    w.close()
    sys.stdout.buffer.write(b"".join(out))
asyncio.run(main())
"""

# New HTTPS connections to an enabled and a not-enabled server in turn, so
# SSL objects (and their addresses) are freed and reused between hosts.
PY_ALTERNATE = r"""
import sys, urllib.request
a, b = sys.argv[1], sys.argv[2]
out = []
for i in range(4):
    for url in (a, b):
        req = urllib.request.Request(url, data=b"n=%d" % i, method="POST")
        with urllib.request.urlopen(req, timeout=8) as r:
            out.append(r.read().decode())
print(",".join(out))
"""

NODE_FETCH = r"""
const [url, body] = process.argv.slice(1);
fetch(url, {method: 'POST', body}).then(r => r.text()).then(
    t => { process.stdout.write(t); process.exit(0); },
    e => { console.error(e); process.exit(1); });
"""


# -- helpers --------------------------------------------------------------------

def _tls_server(ctx, **kw):
    """A TLSRecordingServer; from now on ctx.env (so the control runs and
    ctx.shim_env too) trusts the test CA."""
    ctx.env = ctx.tls_env()
    return ctx.tls_server(**kw)


def _nginx(ctx):
    ctx.env = ctx.tls_env()
    return ctx.nginx_server()


def _check(ctx, s, run, hosts=None, body=BODY, path=PATH, expect_alpn=None):
    """Control run, then a run under the shim with s's host enabled; the
    shim run's decrypted bytes are the control's plus one key line.
    Returns (control request, shim request, key)."""
    env = ctx.shim_env(s.authority if hosts is None else hosts)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env)
    assert out0 == out1, "client saw %r under the shim, %r without" % (
        out1, out0)
    c = s.connections[got[0].conn]   # exchange() cleared the control's
    assert c.tls and c.sni == "localhost", (c.tls, c.sni, c.tls_error)
    key = assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, path,
                        body, tls=True)
    if expect_alpn is not None:
        alpn = s.connections[got[0].conn].alpn
        assert alpn == expect_alpn, "ALPN under the shim: %r, expected %r" % (
            alpn, expect_alpn)
    return ctl[0], got[0], key


def _untouched(ctx, s, run, hosts, n=1):
    env = ctx.shim_env(hosts)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env, n)
    assert out0 == out1, "client saw %r under the shim, %r without" % (
        out1, out0)
    for i, (c, g) in enumerate(zip(ctl, got)):
        assert_bytes(c.raw, g.raw, "request %d: server received" % (i + 1))


def _curl(ctx, *args, **kw):
    ca = ctx.tls_certs().ca
    return lambda env: ctx.curl("--cacert", ca, *args, env=env, **kw).stdout


def _tls_client(ctx, name, header, libs):
    """tls_clients/NAME.c, compiled with libs once per run into the
    runner's directory (not in clients/: those link libcurl only). Skip
    when the library's header is not installed."""
    src = os.path.join(HERE, "tls_clients", name + ".c")
    parent = os.path.dirname(os.path.abspath(ctx.tmp))
    exe = os.path.join(parent, name)
    if os.path.exists(exe):
        return exe
    with open(os.path.join(parent, "." + name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(exe):
            return exe
        if not os.path.exists(header):
            raise Skip("%s missing: cannot build %s" % (header, name))
        fd, tmp = tempfile.mkstemp(prefix="." + name + "-", dir=parent)
        os.close(fd)
        p = subprocess.run([os.environ.get("CC", "cc")] + CLIENT_CFLAGS +
                           ["-o", tmp, src] + libs,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise AssertionError("building %s failed:\n%s"
                                 % (name, p.stdout.decode(errors="replace")))
        os.rename(tmp, exe)
    return exe


def _ssl_post(ctx):
    """tls_clients/ssl_post.c: OpenSSL called directly."""
    return _tls_client(ctx, "ssl_post", "/usr/include/openssl/ssl.h",
                       ["-lssl", "-lcrypto"])


def _gnutls_post(ctx):
    """tls_clients/gnutls_post.c: GnuTLS called directly."""
    return _tls_client(ctx, "gnutls_post", "/usr/include/gnutls/gnutls.h",
                       ["-lgnutls"])


def _ssl_post_test(ctx, args, body=BODY, times=1, size=None, exe=None,
                   **server):
    """ssl_post ARGS (or exe ARGS) sends a fixed POST (times times on one
    connection) to a TLS server; each request must arrive with its key line
    and nothing else changed. Returns (the server's requests, the client's
    stderr)."""
    exe = exe or _ssl_post(ctx)
    s = _tls_server(ctx, **server)
    if size is not None:
        body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    req = post_request(s.authority, PATH, body,
                       ["User-Agent: ssl_post",
                        "Content-Type: application/octet-stream"])
    f = ctx.write(req)
    argv = [exe] + [str(a) for a in args] + ["-k", times, "127.0.0.1",
                                             s.port, "localhost",
                                             ctx.tls_certs().ca, f]
    p, got = exchange(s, lambda: ctx.run(argv, env=ctx.shim_env(s.authority),
                                         timeout=15), n=times, timeout=15)
    assert p.stdout == OK * times, "%s printed %r, expected %r" % (
        os.path.basename(exe), p.stdout[:300], OK * times)
    key = expected_key("POST", s.authority, PATH, body, tls=True)
    what = "%s %s:" % (os.path.basename(exe),
                       " ".join(str(a) for a in args))
    for r in got:
        assert_bytes(insert_header(req, "Idempotency-Key", key), r.raw, what)
    assert len({r.conn for r in got}) == 1, "not one connection"
    return got, p.stderr.decode(errors="replace")


def _key_of(raw):
    vals = header_values(raw, "Idempotency-Key")
    assert len(vals) == 1, "%d key lines in %r" % (len(vals), raw[:400])
    return vals[0].decode()


def _mapped(maps, needle):
    """Distinct paths of mapped files whose name contains needle."""
    out = set()
    for line in maps.decode(errors="replace").splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and needle in os.path.basename(parts[5]):
            out.add(parts[5].strip())
    return out


# -- the harness itself (no shim) -----------------------------------------------

def test_https_harness_tls_server(ctx):
    # Without the shim: the TLS server decrypts and frames what curl sends,
    # and records ALPN, SNI and the TLS version.
    s = _tls_server(ctx, alpn=["http/1.1"])
    run = _curl(ctx, "-d", BODY, s.url(PATH))
    _, got = exchange(s, lambda: run(ctx.env))
    c = s.connections[0]
    assert c.tls and c.sni == "localhost" and c.alpn == "http/1.1", (
        c.tls, c.sni, c.alpn, c.tls_error)
    assert got[0].raw.startswith(b"POST %s HTTP/1.1\r\nHost: %s\r\n"
                                 % (PATH.encode(), s.authority.encode()))
    assert got[0].body == BODY, got[0].raw


def test_https_harness_nginx_h2(ctx):
    # Without the shim: nginx negotiates h2 with curl --http2 and logs the
    # key header of a request that carries one.
    n = _nginx(ctx)
    ctx.curl("--http2", "--cacert", ctx.tls_certs().ca, "-H",
             "Idempotency-Key: k-1", "-d", BODY, n.url(PATH))
    e = n.wait_entries(1)[0]
    assert (e["protocol"], e["alpn"], e["key"], e["method"], e["uri"]) == (
        "HTTP/2.0", "h2", "k-1", "POST", PATH), e


# -- a. to d.: real programs over TLS ------------------------------------------

def test_https_curl_post(ctx):
    # curl, OpenSSL linked normally (SSL_write from the executable's libcurl)
    s = _tls_server(ctx, alpn=["http/1.1"])
    ctl, got, _ = _check(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
                         expect_alpn="http/1.1")
    assert got.body == BODY


def test_https_python_urllib_post(ctx):
    # python's _ssl loads libssl with RTLD_LOCAL: a hook that looks up the
    # real SSL_write with dlsym(RTLD_NEXT) gets NULL here and crashes.
    s = _tls_server(ctx, alpn=["http/1.1"])
    _check(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_URLLIB, s.url(PATH),
                                        BODY], env=env).stdout,
           expect_alpn="http/1.1")


def test_https_python_urllib_json_body(ctx):
    s = _tls_server(ctx)
    body = b'{"amount": 2000,\n "currency": "usd"}'
    _check(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_URLLIB, s.url(PATH),
                                        body], env=env).stdout, body=body)


def test_https_python_requests_post(ctx):
    p = ctx.python("import requests", check=False)
    if p.returncode != 0:
        raise Skip("`import requests` fails in %s" % PYTHON)
    s = _tls_server(ctx, alpn=["http/1.1"])
    _check(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_REQUESTS,
                                        s.url(PATH), BODY], env=env).stdout)


def test_https_wget_post(ctx):
    # Debian's wget uses GnuTLS (gnutls_record_send)
    wget = need("wget")
    s = _tls_server(ctx, alpn=["http/1.1"])
    ca = ctx.tls_certs().ca
    _check(ctx, s, lambda env: ctx.run(
        [wget, "-q", "-O", "-", "--no-config", "--tries=1", "--timeout=8",
         "--ca-certificate=" + ca, "--post-data=" + BODY.decode(),
         s.url(PATH)], env=env).stdout)


def test_https_curl_keepalive_two_posts(ctx):
    s = _tls_server(ctx)
    run = _curl(ctx, "-d", "a=1", s.url("/one"), "--next", "--cacert",
                ctx.tls_certs().ca, "-d", "b=2", s.url("/two"))
    env = ctx.shim_env(s.authority)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env, n=2)
    assert ctl[0].conn == ctl[1].conn, "curl did not reuse the connection"
    assert got[0].conn == got[1].conn, "not one connection under the shim"
    assert out1 == b"okok", out1
    k1 = assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, "/one",
                       b"a=1", tls=True)
    k2 = assert_tagged(got[1].raw, ctl[1].raw, "POST", s.authority, "/two",
                       b"b=2", tls=True)
    assert k1 != k2


def test_https_host_without_port_matches(ctx):
    s = _tls_server(ctx)
    _check(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), hosts="localhost")


def test_https_default_port_dropped_from_key(ctx):
    # curl believes it talks to https://api.example.test/ (port 443: Host
    # and SNI say "api.example.test") and is sent to the test server: the
    # key's authority has no port, as for :80 in plain HTTP.
    s = _tls_server(ctx)
    name = "api.example.test"
    run = lambda env: ctx.curl(
        "-k", "--connect-to", "%s:443:127.0.0.1:%d" % (name, s.port), "-d",
        BODY, "https://%s%s" % (name, PATH), env=env).stdout
    env = ctx.shim_env(name)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env)
    assert s.connections[0].sni == name, s.connections[0].sni
    assert header_values(ctl[0].raw, "Host") == [name.encode()], ctl[0].head
    assert_tagged(got[0].raw, ctl[0].raw, "POST", name + ":443", PATH, BODY,
                  tls=True)


# -- e. HTTP/2: h2 out of the ALPN offer for enabled hosts only ---------------

def test_https_curl_http2_enabled_host_nginx(ctx):
    n = _nginx(ctx)
    ca = ctx.tls_certs().ca
    ctx.curl("--http2", "--cacert", ca, "-d", BODY, n.url(PATH),
             env=ctx.shim_env(n.authority))
    e = n.wait_entries(1)[0]
    key = expected_key("POST", n.authority, PATH, BODY, tls=True).decode()
    assert (e["protocol"], e["alpn"], e["key"]) == ("HTTP/1.1", "http/1.1",
                                                    key), (
        "nginx logged protocol=%r alpn=%r key=%r; expected HTTP/1.1, "
        "http/1.1, %s (whole entry %r)" % (e["protocol"], e["alpn"],
                                            e["key"], key, e))


def _h2_untouched(ctx, host_lists):
    n = _nginx(ctx)
    ca = ctx.tls_certs().ca
    wrong = []
    for i, hosts in enumerate(host_lists(n)):
        ctx.curl("--http2", "--cacert", ca, "-d", BODY, n.url(PATH),
                 env=ctx.shim_env(hosts))
        e = n.wait_entries(i + 1)[i]
        if (e["protocol"], e["alpn"], e["key"]) != ("HTTP/2.0", "h2", None):
            wrong.append("RETRYSAFE_HOSTS=%r: protocol=%r alpn=%r key=%r"
                         % (hosts, e["protocol"], e["alpn"], e["key"]))
    assert not wrong, "expected HTTP/2.0, h2, no key; nginx logged " + (
        "; ".join(wrong))


def test_https_curl_http2_other_host_keeps_h2(ctx):
    # Not enabled: no hosts at all, another name, the address (the host is
    # the name in SNI and Host, not the address connected to).
    _h2_untouched(ctx, lambda n: ("", "api.example.test",
                                  "*.example.org,127.0.0.1:%d" % n.port))


def test_https_curl_http2_same_name_other_port_untagged(ctx):
    # "localhost:1" is not localhost:PORT. SNI carries no port, and curl
    # gives OpenSSL its own BIO, so the session has no socket to ask: the
    # ALPN decision is by name (README, HTTPS), and h2 is dropped. Guessing
    # the port from other connections guessed wrong with several in flight
    # (asyncio, curl multi). What must hold: the request is not tagged, and
    # it still succeeds over HTTP/1.1.
    n = _nginx(ctx)
    ctx.curl("--http2", "--cacert", ctx.tls_certs().ca, "-d", BODY, n.url(PATH),
             env=ctx.shim_env("localhost:1"))
    e = n.wait_entries(1)[0]
    assert (e["protocol"], e["alpn"], e["key"]) == ("HTTP/1.1", "http/1.1", None), e


def test_https_curl_http2_alpn_offer_recorded(ctx):
    # The same on the recording server, which offers h2 and http/1.1: the
    # shim run negotiates http/1.1 and sends the control's HTTP/1.1 bytes
    # (recorded while the server offered http/1.1 only) plus the key.
    s = _tls_server(ctx, alpn=["http/1.1"])
    run = _curl(ctx, "--http2", "-d", BODY, s.url(PATH))
    _, ctl = exchange(s, lambda: run(ctx.env))
    assert s.connections[0].alpn == "http/1.1"
    s.alpn = ["h2", "http/1.1"]
    s.clear()
    p = ctx.curl("--cacert", ctx.tls_certs().ca, "--http2", "-d", BODY,
                 s.url(PATH), env=ctx.shim_env(s.authority), check=False)
    s.wait_closed(1)
    alpn = s.connections[0].alpn
    assert alpn == "http/1.1", ("ALPN under the shim with h2 offered: %r, "
                                "expected http/1.1 (curl exit %d)"
                                % (alpn, p.returncode))
    assert p.returncode == 0, p.stderr
    got = s.wait_requests(1)
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH, BODY,
                  tls=True)


# -- f. hosts not enabled -------------------------------------------------------

def test_https_other_host_untouched(ctx):
    s = _tls_server(ctx)
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
               "api.example.test,localhost:1,*.example.org")


def test_https_no_hosts_untouched(ctx):
    s = _tls_server(ctx)
    _untouched(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_URLLIB,
                                            s.url(PATH), BODY],
                                           env=env).stdout, "")


def test_https_matching_uses_host_not_address(ctx):
    # The connection goes to 127.0.0.1:PORT; the host is the Host header's
    # (and SNI's) "localhost:PORT", so enabling the address tags nothing.
    s = _tls_server(ctx)
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), s.sock_authority)


# -- g. the journal --------------------------------------------------------------

def test_https_journal_row(ctx):
    s = _tls_server(ctx)
    target = PATH + "?expand=customer"
    run = _curl(ctx, "-d", BODY, s.url(target))
    _, got = exchange(s, lambda: run(ctx.shim_env(s.authority)))
    key = _key_of(got[0].raw)
    assert key == expected_key("POST", s.authority, target, BODY,
                               tls=True).decode()
    rows = ctx.dump()
    assert len(rows) == 1, "expected 1 row, got %r" % rows
    assert_row(rows[0], "curl's HTTPS row", method="POST", host=s.authority,
               path=PATH, key=key, tls=True, status=200,
               outcome="completed", body_len=len(BODY), attempt=1)


def test_https_journal_row_gnutls(ctx):
    wget = need("wget")
    s = _tls_server(ctx)
    _, got = exchange(s, lambda: ctx.run(
        [wget, "-q", "-O", "-", "--no-config", "--tries=1", "--timeout=8",
         "--ca-certificate=" + ctx.tls_certs().ca,
         "--post-data=" + BODY.decode(), s.url(PATH)],
        env=ctx.shim_env(s.authority)))
    key = _key_of(got[0].raw)
    rows = ctx.dump()
    assert len(rows) == 1, "expected 1 row, got %r" % rows
    assert_row(rows[0], "wget's HTTPS row", method="POST", host=s.authority,
               path=PATH, key=key, tls=True, status=200, outcome="completed")


# -- h. libssl: never brought in, never a second copy ---------------------------

def test_https_no_libssl_in_plain_process(ctx):
    # A process that never loads a TLS library makes a tagged plain POST
    # (the shim fully started) and shows its maps: no libssl, no GnuTLS.
    s = ctx.recording_server()
    p = ctx.python(PY_PLAIN_THEN_MAPS, s.port, BODY,
                   env=ctx.shim_env(s.authority))
    got = s.wait_requests(1)
    assert header_values(got[0].raw, "Idempotency-Key"), (
        "the plain POST was not tagged (is the shim loaded?): %r" % got[0].raw)
    assert _mapped(p.stdout, "libretrysafe"), "the shim is not mapped"
    for lib in ("libssl", "libgnutls"):
        assert not _mapped(p.stdout, lib), (
            "%s mapped into a process that never loaded it: %s"
            % (lib, sorted(_mapped(p.stdout, lib))))


def test_https_no_libssl_in_cat(ctx):
    p = ctx.run(["cat", "/proc/self/maps"], env=ctx.shim_env("*"))
    assert _mapped(p.stdout, "libretrysafe"), "the shim is not mapped"
    for lib in ("libssl", "libgnutls"):
        assert not _mapped(p.stdout, lib), (
            "%s mapped into cat: %s" % (lib, sorted(_mapped(p.stdout, lib))))


def test_https_one_libssl_in_tls_process(ctx):
    s = _tls_server(ctx)
    p = ctx.python(PY_HTTPS_THEN_MAPS, s.url(PATH), BODY,
                   env=ctx.shim_env(s.authority))
    got = s.wait_requests(1)
    libssl = _mapped(p.stdout, "libssl")
    assert len(libssl) == 1, "expected exactly one libssl mapped, got %s" % (
        sorted(libssl),)
    libcrypto = _mapped(p.stdout, "libcrypto")
    assert len(libcrypto) == 1, ("expected exactly one libcrypto mapped, got "
                                 "%s" % (sorted(libcrypto),))
    assert len(header_values(got[0].raw, "Idempotency-Key")) == 1, (
        "not tagged: %r" % got[0].raw)


def test_https_libssl_loaded_after_shim_started(ctx):
    # The shim starts on a plain connection before python loads libssl
    # (RTLD_LOCAL, by importing urllib): the later HTTPS POST is tagged too.
    plain = ctx.recording_server()
    s = _tls_server(ctx)
    hosts = "%s,%s" % (plain.authority, s.authority)
    p = ctx.python(PY_PLAIN_THEN_HTTPS, plain.port, s.url(PATH), BODY,
                   env=ctx.shim_env(hosts))
    assert p.stdout == b"ok,ok", p.stdout
    pr = plain.wait_requests(1)[0]
    assert _key_of(pr.raw) == expected_key("POST", plain.authority, "/plain",
                                           BODY).decode()
    tr = s.wait_requests(1)[0]
    vals = header_values(tr.raw, "Idempotency-Key")
    key = expected_key("POST", s.authority, PATH, BODY, tls=True)
    assert vals == [key], "HTTPS request key lines %r, expected [%r]: %r" % (
        vals, key, tr.raw)


# -- i. GET, keep-alive ------------------------------------------------------------

def test_https_get_untouched(ctx):
    s = _tls_server(ctx)
    _untouched(ctx, s, _curl(ctx, s.url(PATH + "?limit=3")), s.authority)


def test_https_keepalive_python_http_client(ctx):
    s = _tls_server(ctx)
    ca = ctx.tls_certs().ca
    run = lambda env: ctx.python(PY_KEEPALIVE, "localhost", s.port, ca,
                                 env=env).stdout
    env = ctx.shim_env(s.authority)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env, n=3)
    assert out1 == b"ok,ok,ok", out1
    assert len({r.conn for r in ctl}) == 1, "control: not one connection"
    assert len({r.conn for r in got}) == 1, "not one connection under shim"
    k1 = assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, "/one",
                       b"a=1", tls=True, what="first POST:")
    k2 = assert_tagged(got[1].raw, ctl[1].raw, "POST", s.authority, "/two",
                       b"b=2", tls=True, what="second POST:")
    assert k1 != k2
    assert_bytes(ctl[2].raw, got[2].raw, "GET:")


# -- j. a large body, Expect: 100-continue ------------------------------------------

@timeout(20)
def test_https_curl_2mb_expect_100_continue(ctx):
    # curl sends "Expect: 100-continue" for bodies over 1 MiB and waits (30
    # s here: a shim that stalls makes the test time out) for the answer.
    # The shim answers 100 itself and drops the Expect line, as in plain.
    s = _tls_server(ctx)
    body = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    f = ctx.write(body)
    run = _curl(ctx, "--expect100-timeout", "30", "-H",
                "Content-Type: application/octet-stream", "--data-binary",
                "@" + f, s.url(PATH), timeout=15)
    env = ctx.shim_env(s.authority)
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env)
    assert header_values(ctl[0].raw, "Expect") == [b"100-continue"], (
        "curl sent no Expect header: %r" % ctl[0].head)
    assert out1 == b"ok", out1
    assert got[0].body == body, "body changed (%d bytes arrived)" % len(
        got[0].body)
    assert not got[0].sent_continue and not header_values(
        got[0].raw, "Expect"), "Expect header forwarded: %r" % got[0].head
    assert_tagged(got[0].raw, remove_header(ctl[0].raw, "Expect"), "POST",
                  s.authority, PATH, body, tls=True)


# -- OpenSSL called directly: write semantics, ALPN setters ---------------------

def test_https_ssl_write(ctx):
    _ssl_post_test(ctx, ["-w", "write"])


def test_https_ssl_write_ex_read_ex(ctx):
    _ssl_post_test(ctx, ["-w", "write_ex", "-r", "read_ex"])


def test_https_ssl_write_7_byte_pieces(ctx):
    _ssl_post_test(ctx, ["-w", "write", "-s", "7"])


def test_https_ssl_write_ex_1_byte_pieces(ctx):
    _ssl_post_test(ctx, ["-w", "write_ex", "-s", "1"])


def test_https_ssl_keepalive_three_posts(ctx):
    _ssl_post_test(ctx, ["-w", "write_ex", "-s", "100"], times=3)


@timeout(20)
def test_https_ssl_nonblocking_3mb_want_write(ctx):
    # Non-blocking, 4 KiB send buffer, no partial writes: OpenSSL returns
    # WANT_WRITE and the client retries with the same buffer and length.
    _, err = _ssl_post_test(ctx, ["-n", "-b", "4096", "-w", "write_ex"],
                            size=3 * 1024 * 1024, rcvbuf=16384)
    assert "want_write=0 " not in err, (
        "the client never saw WANT_WRITE (the case is not exercised): %s"
        % err)


@timeout(20)
def test_https_ssl_nonblocking_partial_writes(ctx):
    # SSL_MODE_ENABLE_PARTIAL_WRITE: short counts, each in the caller's
    # coordinates, advance the client through the request.
    _, err = _ssl_post_test(ctx, ["-n", "-p", "-b", "4096", "-w", "write"],
                            size=3 * 1024 * 1024, rcvbuf=16384)
    assert "want_write=0 " not in err, (
        "the client never saw WANT_WRITE (the case is not exercised): %s"
        % err)


def _alpn_case(ctx, setter, hosts):
    """ssl_post offering h2,http/1.1 (set with SSL_CTX_set_alpn_protos or
    SSL_set_alpn_protos) to a server preferring h2: the negotiated ALPN."""
    exe = _ssl_post(ctx)
    s = _tls_server(ctx, alpn=["h2", "http/1.1"])
    req = post_request(s.authority, PATH, BODY)
    f = ctx.write(req)
    _, got = exchange(s, lambda: ctx.run(
        [exe, "-a", "h2,http/1.1", "-A", setter, "127.0.0.1", s.port,
         "localhost", ctx.tls_certs().ca, f],
        env=ctx.shim_env(s.authority if hosts is None else hosts)))
    return s.connections[got[0].conn].alpn, got[0], s, req


def test_https_ssl_alpn_ssl_setter(ctx):
    alpn, got, s, req = _alpn_case(ctx, "ssl", None)
    assert alpn == "http/1.1", ("enabled host, SSL_set_alpn_protos: ALPN %r, "
                                "expected http/1.1" % alpn)
    assert_tagged(got.raw, req, "POST", s.authority, PATH, BODY, tls=True)


def test_https_ssl_alpn_ctx_setter(ctx):
    alpn, got, s, req = _alpn_case(ctx, "ctx", None)
    assert alpn == "http/1.1", ("enabled host, SSL_CTX_set_alpn_protos: ALPN "
                                "%r, expected http/1.1" % alpn)
    assert_tagged(got.raw, req, "POST", s.authority, PATH, BODY, tls=True)


def test_https_ssl_alpn_other_host_keeps_h2(ctx):
    for setter in ("ssl", "ctx"):
        alpn, got, _, req = _alpn_case(ctx, setter, "api.example.test")
        assert alpn == "h2", ("host not enabled, %s setter: ALPN %r, expected "
                              "h2" % (setter, alpn))
        assert_bytes(req, got.raw)


# -- GnuTLS called directly -----------------------------------------------------

def test_https_gnutls_send(ctx):
    _ssl_post_test(ctx, [], exe=_gnutls_post(ctx))


def test_https_gnutls_5_byte_pieces_keepalive(ctx):
    _ssl_post_test(ctx, ["-s", "5"], times=2, exe=_gnutls_post(ctx))


@timeout(20)
def test_https_gnutls_nonblocking_3mb_again(ctx):
    # GNUTLS_E_AGAIN, then the same buffer and size again.
    _, err = _ssl_post_test(ctx, ["-n", "-b", "4096"], exe=_gnutls_post(ctx),
                            size=3 * 1024 * 1024, rcvbuf=16384)
    assert "again=0" not in err, "never saw GNUTLS_E_AGAIN: %s" % err


@timeout(20)
def test_https_gnutls_nonblocking_null_retry(ctx):
    # GNUTLS_E_AGAIN, then gnutls_record_send(session, NULL, 0): GnuTLS
    # documents this as sending the same data as before.
    _, err = _ssl_post_test(ctx, ["-n", "-z", "-b", "4096"],
                            exe=_gnutls_post(ctx), size=3 * 1024 * 1024,
                            rcvbuf=16384)
    assert "again=0" not in err, "never saw GNUTLS_E_AGAIN: %s" % err


# -- other TLS users ------------------------------------------------------------

def test_https_python_asyncio_memory_bio(ctx):
    # asyncio drives an SSLObject over memory BIOs: the SSL object has no
    # socket, the host is known from SNI (and the Host header) only.
    s = _tls_server(ctx)
    reqs = [post_request(s.authority, "/one", b"a=1"),
            post_request(s.authority, "/two", b"b=2")]
    _, got = exchange(s, lambda: ctx.python(
        PY_ASYNCIO, "localhost", s.port, ctx.tls_certs().ca,
        *[r.decode() for r in reqs], env=ctx.shim_env(s.authority)), n=2)
    assert got[0].conn == got[1].conn
    for i, (path, body) in enumerate((("/one", b"a=1"), ("/two", b"b=2"))):
        assert_tagged(got[i].raw, reqs[i], "POST", s.authority, path, body,
                      tls=True, what="request %d:" % (i + 1))
    rows = ctx.dump()
    assert [(r.get("path"), r.get("tls"), r.get("status"), r.get("outcome"))
            for r in rows] == [("/one", True, 200, "completed"),
                               ("/two", True, 200, "completed")], rows


def test_https_ssl_objects_reused_across_hosts(ctx):
    a = _tls_server(ctx)
    b = ctx.tls_server()
    p = ctx.python(PY_ALTERNATE, a.url(PATH), b.url(PATH),
                   env=ctx.shim_env(a.authority))
    assert p.stdout == b",".join([b"ok"] * 8) + b"\n", p.stdout
    ga, gb = a.wait_requests(4), b.wait_requests(4)
    for i in range(4):
        body = b"n=%d" % i
        vals = header_values(ga[i].raw, "Idempotency-Key")
        key = expected_key("POST", a.authority, PATH, body, tls=True)
        assert vals == [key], ("enabled host, round %d: key lines %r, "
                               "expected [%r]" % (i, vals, key))
        assert header_values(gb[i].raw, "Idempotency-Key") == [], (
            "host not enabled, round %d, tagged: %r" % (i, gb[i].raw))
        assert_bytes(remove_header(ga[i].raw, "Idempotency-Key").replace(
            a.authority.encode(), b.authority.encode()), gb[i].raw,
            "round %d, other host:" % i)


def test_https_node_fetch(ctx):
    # Node.js: tagged when it uses the system's libssl; when OpenSSL is
    # built into the executable (a known limit) it must work untouched.
    node = need("node")
    s = _tls_server(ctx)
    ctx.env["NODE_EXTRA_CA_CERTS"] = ctx.tls_certs().ca
    ldd = subprocess.run(["ldd", os.path.realpath(node)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shared = b"libssl" in ldd.stdout
    run = lambda env: ctx.run([node, "-e", NODE_FETCH, s.url(PATH), BODY],
                              env=env).stdout
    ctl, got, out0, out1 = control_and_shim(ctx, s, run,
                                            ctx.shim_env(s.authority))
    assert out0 == out1 == b"ok", (out0, out1)
    if shared:
        assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH,
                      BODY, tls=True, what="node (shared libssl):")
    else:
        assert_bytes(ctl[0].raw, got[0].raw, "node (static OpenSSL):")


# -- found in review -------------------------------------------------------------

PY_SHARED_CONTEXT = r"""
import http.client, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.set_alpn_protocols(["h2", "http/1.1"])
for i in range(3):
    # A new connection each time, one SSLContext for all (urllib3 and
    # requests do this): OpenSSL frees the SSL objects by reference count.
    c = http.client.HTTPSConnection("localhost", port, context=ctx)
    c.request("POST", "/ctx%d" % i, body=b"n=%d" % i)
    sys.stdout.buffer.write(c.getresponse().read())
    c.close()
"""


def test_https_shared_context_keeps_h2_out_on_every_connection(ctx):
    # The ALPN list set on an SSL_CTX must survive the SSL objects made
    # from it: each connection still negotiates http/1.1 and is tagged.
    s = _tls_server(ctx, alpn=["h2", "http/1.1"])
    p = ctx.python(PY_SHARED_CONTEXT, s.port, env=ctx.shim_env(s.authority))
    assert p.stdout == b"ok" * 3, p.stdout
    got = s.wait_requests(3)
    assert [c.alpn for c in s.connections] == ["http/1.1"] * 3, [
        c.alpn for c in s.connections]
    for i, r in enumerate(got):
        assert r.raw.count(b"\r\nIdempotency-Key: ") == 1, r.raw


def test_https_wget_tls12_tagged(ctx):
    # GnuTLS over TLS 1.2 (safe renegotiation set): still a client session.
    wget = need("wget")
    s = _tls_server(ctx, alpn=["http/1.1"])
    ca = ctx.tls_certs().ca
    _check(ctx, s, lambda env: ctx.run(
        [wget, "-q", "-O", "-", "--no-config", "--tries=1", "--timeout=8",
         "--secure-protocol=TLSv1_2", "--ca-certificate=" + ca,
         "--post-data=" + BODY.decode(), s.url(PATH)], env=env).stdout)
