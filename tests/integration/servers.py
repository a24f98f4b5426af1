"""Test servers for the integration suite. Python 3 standard library only.

The servers listen on 127.0.0.1 on an ephemeral port and (but for nginx)
run in threads of the test process, so a test can start them, point a client
at them and then look at what they saw:

RecordingServer  raw TCP. Frames requests (Content-Length and chunked) just
                 enough to answer each one, records every request's exact
                 bytes and every connection's whole byte stream. Anything
                 that does not look like HTTP switches the connection to
                 plain recording until the client closes it.

TLSRecordingServer  RecordingServer behind TLS (a certificate made at test
                 time, certs.py); also records ALPN, SNI, TLS version.

NginxServer      Debian's nginx with HTTP/2 on a TLS listener, logging each
                 request's protocol and Idempotency-Key (not a thread: a
                 subprocess, started and stopped by the test).

KeyServer        an HTTP API that honours idempotency keys the way Stripe
                 does: the first request with a key performs the side effect
                 and stores its answer; a later request with the same key
                 gets the stored answer without performing it. Without a key
                 every request performs it. An optional delay before the
                 work completes makes impatient clients time out and retry.

RedisServer      Debian's redis-server (a subprocess, nothing persisted),
                 for the journal in Redis: a password, ACL users, stop and
                 start again on the same port, pause (SIGSTOP), and a small
                 RESP client (cli) to look at what the shim stored.
"""

import json
import os
import re
import signal
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

MAX_HEAD = 64 * 1024
_TCHAR = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]")
_REQUEST_LINE = re.compile(
    rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \r\n]+) HTTP/(\d)\.(\d)$")


class Request:
    """One request as it arrived: raw is every byte of it, head and body."""

    def __init__(self, conn_index, raw, head_len, body, sent_continue):
        self.conn = conn_index          # index into RecordingServer.connections
        self.raw = bytes(raw)           # head + body exactly as received
        self.head = self.raw[:head_len] # request line, headers, empty line
        self.body = bytes(body)         # decoded (chunk framing removed)
        self.sent_continue = sent_continue  # the server sent 100 Continue
        line, *rest = self.head[:-4].split(b"\r\n") if self.head else [b""]
        parts = line.split(b" ")
        self.method = parts[0]
        self.target = parts[1] if len(parts) > 1 else b""
        self.headers = []
        for h in rest:
            name, _, value = h.partition(b":")
            self.headers.append((name.strip(), value.strip()))

    def header_values(self, name):
        """Values of every header line called name (any case)."""
        n = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        vals = self.header_values(name)
        return vals[0] if vals else None

    def __repr__(self):
        return "Request(conn=%d, %r)" % (self.conn, self.raw[:200])


class Connection:
    def __init__(self, index):
        self.index = index
        self.raw = bytearray()       # every byte received, in order
        self.requests = []           # Request objects, in order
        self.http = True             # False once the stream is not HTTP
        self.leftover = b""          # unframed bytes at close
        self.closed = threading.Event()
        # TLS connections only (TLSRecordingServer):
        self.tls = False             # the handshake completed
        self.alpn = None             # ALPN protocol negotiated, or None
        self.sni = None              # server name the client sent, or None
        self.tls_version = None      # e.g. "TLSv1.3"
        self.tls_error = None        # why the handshake failed, or None


class _Framer:
    """Finds complete requests at the front of a buffer."""

    NEED_MORE, NOT_HTTP = object(), object()

    @staticmethod
    def _looks_invalid(buf):
        """The start of a request line that cannot become one."""
        sp = buf.find(b" ")
        prefix = buf if sp < 0 else buf[:sp]
        if any(not _TCHAR.match(prefix[i:i + 1]) for i in range(len(prefix))):
            return True
        if sp == 0:
            return True
        nl = buf.find(b"\n")
        if nl >= 0:
            if nl == 0 or buf[nl - 1:nl] != b"\r":
                return True
            if not _REQUEST_LINE.match(bytes(buf[:nl - 1])):
                return True
        elif len(buf) > 8192:
            return True
        return False

    @staticmethod
    def parse_head(head):
        """(framing, content_length, expect_continue, close) from a head."""
        lines = head[:-4].split(b"\r\n")
        m = _REQUEST_LINE.match(lines[0])
        version = (int(m.group(3)), int(m.group(4)))
        chunked, length, expect, conn_tokens = False, 0, False, []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"transfer-encoding":
                codings = [c.strip() for c in value.split(b",")]
                chunked = codings[-1] == b"chunked"
            elif name == b"content-length":
                length = int(value)
            elif name == b"expect":
                expect = value == b"100-continue"
            elif name == b"connection":
                conn_tokens += [t.strip() for t in value.split(b",")]
        if version < (1, 1):
            close = b"keep-alive" not in conn_tokens
        else:
            close = b"close" in conn_tokens
        return ("chunked" if chunked else "length"), length, expect, close

    @staticmethod
    def decode_chunked(buf, start):
        """(decoded body, end offset) or None if the body is incomplete."""
        pos, body = start, bytearray()
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            size_field = bytes(buf[pos:nl]).split(b";")[0].strip()
            size = int(size_field, 16)
            pos = nl + 2
            if size == 0:
                break
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos:pos + size]
            pos += size + 2
        # trailers, then an empty line
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            if nl == pos:
                return bytes(body), nl + 2
            pos = nl + 2


class RecordingServer:
    """Records what clients send; answers every request with 200 "ok".

    response: the bytes sent as every answer (default OK_RESPONSE).
    rcvbuf: SO_RCVBUF for accepted sockets, to make senders block sooner.
    send_continue: answer Expect: 100-continue when only the head is in.
    """

    def __init__(self, response=OK_RESPONSE, rcvbuf=None, send_continue=True,
                 host="127.0.0.1"):
        self.response = response
        self.send_continue = send_continue
        self.connections = []
        self._cond = threading.Condition()
        self._socks = []
        self._stopped = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                      rcvbuf)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def authority(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def url(self, path="/"):
        return "http://%s%s" % (self.authority, path)

    # -- what was received --------------------------------------------------

    @property
    def requests(self):
        with self._cond:
            return [r for c in self.connections for r in c.requests]

    def wait_requests(self, n, timeout=5.0):
        """The first n requests (all connections, in order of arrival of
        their connections); AssertionError if fewer arrive in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for c in self.connections for r in c.requests]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "server got %d request(s), expected %d; streams: %r"
                        % (len(got), n,
                           [bytes(c.raw[:300]) for c in self.connections]))
                self._cond.wait(left)

    def wait_closed(self, n_connections, timeout=5.0):
        """The first n connections, once each is closed by the client."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.connections) < n_connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("server saw %d connection(s), "
                                         "expected %d"
                                         % (len(self.connections),
                                            n_connections))
                self._cond.wait(left)
            conns = self.connections[:n_connections]
        for c in conns:
            if not c.closed.wait(max(0.0, deadline - time.monotonic())):
                raise AssertionError("connection %d not closed; got %r"
                                     % (c.index, bytes(c.raw[:300])))
        return conns

    def clear(self):
        """Forget what was recorded (live connections keep recording into
        their own objects, which are no longer listed)."""
        with self._cond:
            self.connections = []

    # -- machinery ----------------------------------------------------------

    def _accept_loop(self):
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                if self._stopped:
                    sock.close()
                    return
                conn = Connection(len(self.connections))
                self.connections.append(conn)
                self._socks.append(sock)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(sock, conn),
                             daemon=True).start()

    def _wrap(self, sock, conn):
        """The socket to serve conn on (TLSRecordingServer: after the TLS
        handshake), or None to drop the connection."""
        return sock

    def _serve(self, sock, conn):
        buf = bytearray()
        continued = False   # 100 sent for the request at the front of buf
        try:
            sock = self._wrap(sock, conn)
            if sock is None:
                return
            while True:
                try:
                    data = sock.recv(262144)
                except OSError:
                    data = b""
                if not data:
                    break
                with self._cond:
                    conn.raw += data
                if not conn.http:
                    continue
                buf += data
                while conn.http:
                    res = self._frame(sock, conn, buf, continued)
                    if res is _Framer.NEED_MORE:
                        break
                    if res is _Framer.NOT_HTTP:
                        conn.http = False
                        break
                    if res == "continued":
                        continued = True
                        break
                    consumed, close = res
                    del buf[:consumed]
                    continued = False
                    if close:
                        # the socket's own shutdown: on a TLS socket
                        # SSLSocket.shutdown would drop the TLS layer
                        socket.socket.shutdown(sock, socket.SHUT_WR)
        except OSError:
            pass
        finally:
            with self._cond:
                conn.leftover = bytes(buf)
            try:
                if sock is not None:
                    sock.close()
            except OSError:
                pass
            conn.closed.set()
            with self._cond:
                self._cond.notify_all()

    def _frame(self, sock, conn, buf, continued):
        start = 0
        while buf[start:start + 2] == b"\r\n":   # empty lines between requests
            start += 2
        if start:
            del buf[:start]
        if not buf:
            return _Framer.NEED_MORE
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if _Framer._looks_invalid(buf) or len(buf) > MAX_HEAD:
                return _Framer.NOT_HTTP
            return _Framer.NEED_MORE
        head_len = end + 4
        if _Framer._looks_invalid(buf[:head_len]):
            return _Framer.NOT_HTTP
        try:
            framing, length, expect, close = _Framer.parse_head(
                bytes(buf[:head_len]))
        except (ValueError, AttributeError):
            return _Framer.NOT_HTTP
        if framing == "chunked":
            try:
                done = _Framer.decode_chunked(buf, head_len)
            except ValueError:
                return _Framer.NOT_HTTP
            if done is not None:
                body, total = done
        else:
            done = len(buf) >= head_len + length or None
            if done:
                body, total = buf[head_len:head_len + length], head_len + length
        if done is None:
            if (expect and self.send_continue and not continued
                    and len(buf) == head_len):
                sock.sendall(CONTINUE_RESPONSE)
                return "continued"
            return _Framer.NEED_MORE
        req = Request(conn.index, buf[:total], head_len, body,
                      expect and continued)
        with self._cond:
            conn.requests.append(req)
            self._cond.notify_all()
        sock.sendall(self.response)
        return total, close

    def stop(self):
        with self._cond:
            self._stopped = True
            socks = list(self._socks)
        try:
            self._listener.close()
        except OSError:
            pass
        for s in socks:
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class TLSRecordingServer(RecordingServer):
    """RecordingServer behind TLS (python's ssl, server side): records the
    exact decrypted bytes of every request and connection, and per
    connection the negotiated ALPN protocol, the SNI name and the TLS
    version (Connection.alpn, .sni, .tls_version; .tls_error when the
    handshake failed).

    certs: a certs.Certs (the server certificate for localhost and
    127.0.0.1). alpn: the protocols offered by ALPN, in order of preference
    (None: no ALPN); may be changed between connections. name: the host
    name clients use in URLs and Host headers (authority, url).
    """

    def __init__(self, certs, alpn=None, name="localhost", **kw):
        self.certs = certs
        self.alpn = list(alpn) if alpn else None
        self.name = name
        self._contexts = {}
        super().__init__(**kw)

    @property
    def authority(self):
        """What clients put in URLs and Host headers: "localhost:PORT"."""
        return "%s:%d" % (self.name, self.port)

    @property
    def sock_authority(self):
        """The listening address: "127.0.0.1:PORT"."""
        return RecordingServer.authority.fget(self)

    def url(self, path="/"):
        return "https://%s%s" % (self.authority, path)

    def _context(self):
        alpn = tuple(self.alpn) if self.alpn else ()
        with self._cond:
            ctx = self._contexts.get(alpn)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.certs.chain, self.certs.key)
                if alpn:
                    ctx.set_alpn_protocols(list(alpn))
                ctx.sni_callback = self._sni
                self._contexts[alpn] = ctx
            return ctx

    @staticmethod
    def _sni(ssl_sock, name, ctx):
        conn = getattr(ssl_sock, "_rs_conn", None)
        if conn is not None:
            conn.sni = name
        return None

    def _wrap(self, sock, conn):
        try:
            ssock = self._context().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as e:
            conn.tls_error = "%s: %s" % (type(e).__name__, e)
            sock.close()
            return None
        ssock._rs_conn = conn
        with self._cond:
            # wrap_socket detached sock: stop() must shut down ssock
            self._socks = [ssock if s is sock else s for s in self._socks]
            stopped = self._stopped
        if stopped:
            ssock.close()
            return None
        try:
            ssock.settimeout(10)
            ssock.do_handshake()
            ssock.settimeout(None)
        except (OSError, ValueError) as e:
            conn.tls_error = "%s: %s" % (type(e).__name__, e)
            ssock.close()
            return None
        with self._cond:
            conn.tls = True
            conn.alpn = ssock.selected_alpn_protocol()
            conn.tls_version = ssock.version()
            self._cond.notify_all()
        return ssock


# ---------------------------------------------------------------------------


class NginxServer:
    """Debian's nginx on a TLS listener with HTTP/2 (`listen 127.0.0.1:PORT
    ssl http2`), answering every request with 200 "ok" and logging, per
    request, the protocol ($server_protocol: "HTTP/2.0" or "HTTP/1.1"), the
    Idempotency-Key header, method, URI, status, ALPN, SNI and lengths, one
    JSON object a line, to an access log in `directory`. Runs in the
    foreground (daemon off, master_process off) as a subprocess; stop()
    ends it.

    Raises harness.Skip when nginx is missing or built without HTTP/2.
    """

    LOG_FORMAT = ('{"protocol":"$server_protocol",'
                  '"key":"$http_idempotency_key",'
                  '"method":"$request_method","uri":"$request_uri",'
                  '"status":"$status","alpn":"$ssl_alpn_protocol",'
                  '"sni":"$ssl_server_name","content_length":"$content_length",'
                  '"request_length":"$request_length",'
                  '"connection":"$connection",'
                  '"connection_requests":"$connection_requests"}')

    def __init__(self, certs, directory, name="localhost",
                 header="Idempotency-Key"):
        import shutil
        import subprocess
        from harness import Skip
        self._subprocess = subprocess
        exe = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
             if os.path.exists(p)), None)
        if exe is None:
            raise Skip("nginx not installed")
        info = subprocess.run([exe, "-V"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT).stdout.decode(
                                  errors="replace")
        if "--with-http_v2_module" not in info:
            raise Skip("nginx built without --with-http_v2_module")
        if "--with-http_ssl_module" not in info:
            raise Skip("nginx built without --with-http_ssl_module")
        m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", info)
        self.version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
        self.exe = exe
        self.certs = certs
        self.name = name
        self.header_var = "$http_" + header.lower().replace("-", "_")
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.access_log = os.path.join(directory, "access.log")
        self.error_log = os.path.join(directory, "error.log")
        self.conf = os.path.join(directory, "nginx.conf")
        self.proc = None
        self.port = None
        last = ""
        for _ in range(5):
            self.port = _free_port()
            last = self._start()
            if last is None:
                return
        raise AssertionError("nginx did not start: %s" % last)

    def _config(self):
        d = self.dir
        fmt = self.LOG_FORMAT.replace("$http_idempotency_key",
                                      self.header_var)
        # nginx >= 1.25.1 has `http2 on;` and warns about `listen ... http2`
        if self.version >= (1, 25, 1):
            listen, h2 = "listen 127.0.0.1:%d ssl;" % self.port, "http2 on;"
        else:
            listen, h2 = "listen 127.0.0.1:%d ssl http2;" % self.port, ""
        return """\
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    default_type text/plain;
    log_format retrysafe escape=json '%(fmt)s';
    server {
        %(listen)s
        %(h2)s
        server_name %(name)s;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        client_max_body_size 64m;
        access_log %(d)s/access.log retrysafe;
        location / {
            return 200 "ok";
        }
    }
}
""" % dict(d=d, fmt=fmt, listen=listen, h2=h2, name=self.name,
           cert=self.certs.chain, key=self.certs.key)

    def _start(self):
        """Starts nginx on self.port; None when it listens, else why not."""
        sp = self._subprocess
        with open(self.conf, "w") as f:
            f.write(self._config())
        argv = [self.exe, "-p", self.dir + "/", "-c", self.conf, "-g",
                "daemon off; master_process off;"]
        if self.version >= (1, 19, 5):
            argv[1:1] = ["-e", self.error_log]
        env = {k: v for k, v in os.environ.items()
               if k != "LD_PRELOAD" and not k.startswith("RETRYSAFE_")}
        out = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = sp.Popen(argv, stdin=sp.DEVNULL, stdout=out, stderr=out,
                             env=env)
        out.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exit %s: %s" % (self.proc.returncode, self._errors())
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return None
            except OSError:
                time.sleep(0.02)
        self.stop()
        return "not listening after 5 s: %s" % self._errors()

    def _errors(self):
        text = ""
        for fn in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, fn), "rb") as f:
                    text += f.read().decode(errors="replace")
            except OSError:
                pass
        return text[-1500:]

    @property
    def authority(self):
        return "%s:%d" % (self.name, self.port)

    def url(self, path="/"):
        return "https://%s%s" % (self.authority, path)

    def entries(self):
        """The access log so far: one dict per request; "-" and empty
        values become None."""
        try:
            with open(self.access_log, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        out = []
        for line in data.splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            out.append({k: (None if v in ("", "-") else v)
                        for k, v in obj.items()})
        return out

    def wait_entries(self, n, timeout=5.0):
        """The first n access log entries; AssertionError if fewer are
        written in time."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.entries()
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError("nginx logged %d request(s), expected "
                                     "%d: %r; errors: %s"
                                     % (len(got), n, got, self._errors()))
            time.sleep(0.02)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(3)
        except self._subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _TLSHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer over TLS: each accepted connection is wrapped and
    its handshake done in the connection's own thread, so a client that
    stalls its handshake never holds up the accept loop. ssl_context is set
    by the owner before the first connection."""

    ssl_context = None

    def finish_request(self, request, client_address):
        try:
            ssock = self.ssl_context.wrap_socket(
                request, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            return
        try:
            ssock.settimeout(10)
            ssock.do_handshake()
            ssock.settimeout(None)
            self.RequestHandlerClass(ssock, client_address, self)
        except (OSError, ValueError):
            pass
        finally:
            try:
                ssock.close()
            except OSError:
                pass


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------


class KeyServer:
    """A payment-like API honouring idempotency keys.

    Every POST is an operation ("charge"). Its work takes `delay` seconds;
    when the work completes the side effect is recorded (effects, count) and
    the answer is stored under the request's key. A later request with the
    same key gets the stored answer (replayed=True) and performs nothing; one
    that arrives while its twin is still working waits for the twin's answer.
    Reusing a key with a different request gets 422 and performs nothing,
    as Stripe does. Requests without a key always perform the operation.
    honour_keys=False makes a server that knows nothing of keys.

    Optional, for answers other than the usual small 200 (the defaults give
    exactly the behaviour above):
    status       the status of a performed operation's answer: an int, or a
                 sequence used in turn by the 1st, 2nd, ... performed
                 operation (its last value for any later one). The side
                 effect is recorded whatever the status.
    payload_size pad the JSON answer (a "pad" member of x's) so that its
                 body is exactly this many bytes (when it is not already
                 longer).
    chunked      answer with Transfer-Encoding: chunked (chunks of at most
                 1000 bytes) instead of Content-Length.
    tls_certs    a certs.Certs: serve HTTPS (python's ssl, the handshake in
                 the connection's thread) with its server certificate;
                 authority and url then say localhost:PORT.

    Every record in requests also has sent_key (the header's value as it
    arrived, whether or not keys are honoured), status and answer (the exact
    bytes of the answer sent, head and body; None until it is sent).
    """

    def __init__(self, delay=0.0, header="Idempotency-Key", honour_keys=True,
                 status=200, payload_size=None, chunked=False,
                 tls_certs=None):
        self.delay = delay
        self.header = header
        self.honour_keys = honour_keys
        self.status = status
        self.payload_size = payload_size
        self.chunked = chunked
        self.tls_certs = tls_certs
        self.effects = []      # dicts: n, key, method, path, body
        self.requests = []     # dicts: key, method, path, body, replayed,
                               # sent_key, status, answer
        self._lock = threading.Condition()
        self._store = {}       # key -> (fingerprint, event, answer)
        self._busy = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                server._handle(self)

            do_PUT = do_PATCH = do_DELETE = do_GET = do_POST

        if tls_certs is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        else:
            self._httpd = _TLSHTTPServer(("127.0.0.1", 0), Handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_certs.chain, tls_certs.key)
            context.set_alpn_protocols(["http/1.1"])
            self._httpd.ssl_context = context
        self._httpd.daemon_threads = True
        self.host = "127.0.0.1"
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def authority(self):
        """host:port as clients write it: localhost:PORT over TLS (the
        certificate's name), 127.0.0.1:PORT otherwise."""
        if self.tls_certs is not None:
            return "localhost:%d" % self.port
        return "%s:%d" % (self.host, self.port)

    def url(self, path="/"):
        scheme = "https" if self.tls_certs is not None else "http"
        return "%s://%s%s" % (scheme, self.authority, path)

    @property
    def count(self):
        """How many times the side effect was performed."""
        with self._lock:
            return len(self.effects)

    def wait_idle(self, timeout=10.0):
        """Waits until no operation is in progress (the work of requests
        whose clients gave up goes on, as on a real server)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("KeyServer still busy")
                self._lock.wait(left)

    def _read_body(self, h):
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _handle(self, h):
        with self._lock:
            self._busy += 1
        try:
            self._operate(h)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def _operate(self, h):
        body = self._read_body(h)
        sent_key = h.headers.get(self.header)
        key = sent_key if self.honour_keys else None
        fp = (h.command, h.path, body)
        record = {"key": key, "method": h.command, "path": h.path,
                  "body": body, "replayed": False, "sent_key": sent_key,
                  "status": None, "answer": None}
        with self._lock:
            self.requests.append(record)
            entry = self._store.get(key) if key is not None else None
            if entry is None and key is not None:
                entry = (fp, threading.Event(), [])
                self._store[key] = entry
                owner = True
            else:
                owner = entry is None
        if entry is not None and not owner:
            if entry[0] != fp:
                self._answer(h, 422, {"error": "idempotency key reused with "
                                               "a different request"},
                             record=record)
                return
            entry[1].wait(60)
            record["replayed"] = True
            status, payload = entry[2][0] if entry[2] else (
                409, {"error": "concurrent request did not finish"})
            self._answer(h, status, payload, replayed=True, record=record)
            return
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            n = len(self.effects) + 1
            self.effects.append({"n": n, "key": key, "method": h.command,
                                 "path": h.path, "body": body})
            if isinstance(self.status, int):
                status = self.status
            else:
                status = list(self.status)[min(n, len(self.status)) - 1]
        payload = {"id": "ch_%d" % n, "charge": n, "key": key}
        if entry is not None:
            entry[2].append((status, payload))
            entry[1].set()
        self._answer(h, status, payload, record=record)

    def _payload_bytes(self, payload):
        data = (json.dumps(payload, sort_keys=True) + "\n").encode()
        if self.payload_size is not None and len(data) < self.payload_size:
            payload = dict(payload, pad="")
            short = self.payload_size - len(
                (json.dumps(payload, sort_keys=True) + "\n").encode())
            payload["pad"] = "x" * max(0, short)
            data = (json.dumps(payload, sort_keys=True) + "\n").encode()
        return data

    def _answer(self, h, status, payload, replayed=False, record=None):
        data = self._payload_bytes(payload)
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            if self.chunked:
                h.send_header("Transfer-Encoding", "chunked")
                data = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 1000]),
                                                    data[i:i + 1000])
                                for i in range(0, len(data), 1000)) + \
                    b"0\r\n\r\n"
            else:
                h.send_header("Content-Length", str(len(data)))
            if replayed:
                h.send_header("Idempotent-Replayed", "true")
            # what end_headers is about to send (BaseHTTPRequestHandler
            # buffers the head), so a test can compare a replay with it
            head = b"".join(getattr(h, "_headers_buffer", [])) + b"\r\n"
            if record is not None:
                with self._lock:
                    record["status"] = status
                    record["answer"] = head + data
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass     # the client gave up; the work is done all the same

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------


class RedisError(Exception):
    """An error reply from Redis (its text)."""


def _resp_command(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class _RespReader:
    """Reads RESP2 replies from a socket: bytes, int, list, None; an error
    reply is returned as a RedisError (raised by the caller)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError("not a RESP reply: %r" % line[:100])


class RedisServer:
    """Debian's redis-server on 127.0.0.1:PORT (a free port), run in the
    foreground as a subprocess with nothing persisted (--save '',
    --appendonly no: a restart starts empty), its files in `directory`.

    password  requirepass: the default user's password.
    users     {name: password}: ACL users with every right (`user NAME on
              >PASS ~* &* +@all`), or {name: (password, "RULES ...")}
              with those rules instead; without a password the default
              user is then switched off, so that only they can log in.
              cli() logs in as the first.
    timeout   Redis's `timeout`: seconds after which it closes an idle
              client's connection (0, the default: never).

Nothing is saved on its own (--save ''; stop() does not save either), but
snapshot() makes an RDB file in `directory` (SAVE): each start() after it
loads that snapshot instead of starting empty, as a Redis restarted after
a crash goes back to its last snapshot.

    url(...) is the journal location (redis://[user:password@]127.0.0.1:
    PORT[/db], credentials %-encoded); cli(*args) runs one command as the
    server's own administrator (the first user, else the password) and
    returns its reply (bytes, int, list or None; RedisError for an error
    reply). stop() ends it (start() runs it again on the same port), kill()
    ends it with SIGKILL, pause() and resume() stop and continue it
    (SIGSTOP, SIGCONT): it then accepts connections but never answers.

    Raises harness.Skip when redis-server is not installed.
    """

    def __init__(self, directory, password=None, users=None, timeout=0):
        import shutil
        import subprocess
        from harness import Skip
        self._subprocess = subprocess
        self.exe = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
            else None)
        if self.exe is None:
            raise Skip("redis-server not installed (apt-get install "
                       "redis-server)")
        self.dir = os.path.abspath(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "redis.log")
        self.password = password
        self.users = dict(users or {})
        self.timeout = timeout
        self.proc = None
        self.paused = False
        last = ""
        for _ in range(5):
            self.port = _free_port()
            last = self.start()
            if last is None:
                return
        raise AssertionError("redis-server did not start: %s" % last)

    def _argv(self):
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", self.log, "--daemonize", "no",
                "--databases", "16", "--timeout", str(self.timeout)]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        for name, pw in self.users.items():
            pw, rules = pw if isinstance(pw, tuple) else (pw, "~* &* +@all")
            argv += ["--user", name, "on", ">" + pw] + rules.split()
        if self.users and self.password is None:
            argv += ["--user", "default", "off"]
        return argv

    def start(self):
        """Runs the server on self.port; None once it answers PING, else
        why not (and it is not running)."""
        env = {k: v for k, v in os.environ.items()
               if k != "LD_PRELOAD" and not k.startswith("RETRYSAFE_")}
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = self._subprocess.Popen(
            self._argv(), stdin=self._subprocess.DEVNULL, stdout=out,
            stderr=out, env=env, cwd=self.dir)
        out.close()
        self.paused = False
        deadline = time.monotonic() + 5
        why = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exit %s: %s" % (self.proc.returncode, self.errors())
            try:
                if self.cli("PING", timeout=1) == b"PONG":
                    return None
            except (OSError, RedisError) as e:
                why = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.02)
        self.kill()
        return "no PONG after 5 s (%s): %s" % (why, self.errors())

    def errors(self):
        """The end of the server's log."""
        text = ""
        for fn in (self.log, os.path.join(self.dir, "stdout.log")):
            try:
                with open(fn, "rb") as f:
                    text += f.read().decode(errors="replace")
            except OSError:
                pass
        return text[-1500:]

    # -- where, and what is stored -----------------------------------------

    def url(self, user=None, password=None, db=None, scheme="redis"):
        """The journal location; by default with the server's own
        credentials (the first ACL user, else the password)."""
        from urllib.parse import quote
        if user is None and password is None:
            if self.users:
                user, password = next(iter(self.users.items()))
                password = password[0] if isinstance(password, tuple) else password
            else:
                password = self.password
        cred = ""
        if password is not None:
            cred = "%s:%s@" % (quote(user or "", safe=""),
                               quote(password, safe=""))
        return "%s://%s127.0.0.1:%d%s" % (scheme, cred, self.port,
                                          "" if db is None else "/%d" % db)

    def cli(self, *args, db=0, timeout=5.0):
        """Runs one command (after AUTH, and SELECT db when not 0) on a
        connection of its own; returns the reply, raises RedisError for an
        error reply."""
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        timeout=timeout)
        try:
            cmds = []
            if self.users:
                name, pw = next(iter(self.users.items()))
                cmds.append(("AUTH", name, pw[0] if isinstance(pw, tuple) else pw))
            elif self.password is not None:
                cmds.append(("AUTH", self.password))
            if db:
                cmds.append(("SELECT", db))
            cmds.append(args)
            sock.sendall(b"".join(_resp_command(c) for c in cmds))
            reader = _RespReader(sock)
            replies = [reader.reply() for _ in cmds]
        finally:
            sock.close()
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies[-1]

    def keys(self, pattern="*", db=0):
        """The names of the keys matching pattern, sorted (str)."""
        return sorted(k.decode() for k in self.cli("KEYS", pattern, db=db))

    # -- its life ---------------------------------------------------------

    def snapshot(self):
        """SAVE: the data as it is now is what start() loads from now on."""
        assert self.cli("SAVE") == b"OK", "SAVE failed: %s" % self.errors()

    def pause(self):
        """SIGSTOP: connections are still accepted (the kernel's backlog),
        no command is answered."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        """SIGKILL, at once."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        """Ends the server (SIGTERM, SIGKILL after 3 s) without saving;
        start() runs it again on the same port, empty (or from the last
        snapshot())."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(3)
        except self._subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
