"""Test servers for the integration suite. Python 3 standard library only.

Both servers listen on 127.0.0.1 on an ephemeral port and run in threads of
the test process, so a test can start them, point a client at them and then
look at what they saw:

RecordingServer  raw TCP. Frames requests (Content-Length and chunked) just
                 enough to answer each one, records every request's exact
                 bytes and every connection's whole byte stream. Anything
                 that does not look like HTTP switches the connection to
                 plain recording until the client closes it.

KeyServer        an HTTP API that honours idempotency keys the way Stripe
                 does: the first request with a key performs the side effect
                 and stores its answer; a later request with the same key
                 gets the stored answer without performing it. Without a key
                 every request performs it. An optional delay before the
                 work completes makes impatient clients time out and retry.
"""

import json
import re
import socket
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

    def _serve(self, sock, conn):
        buf = bytearray()
        continued = False   # 100 sent for the request at the front of buf
        try:
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
                        sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            with self._cond:
                conn.leftover = bytes(buf)
            try:
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
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


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
    """

    def __init__(self, delay=0.0, header="Idempotency-Key", honour_keys=True):
        self.delay = delay
        self.header = header
        self.honour_keys = honour_keys
        self.effects = []      # dicts: n, key, method, path, body
        self.requests = []     # dicts: key, method, path, body, replayed
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

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.host = "127.0.0.1"
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def authority(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, path="/"):
        return "http://%s%s" % (self.authority, path)

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
        key = h.headers.get(self.header) if self.honour_keys else None
        fp = (h.command, h.path, body)
        record = {"key": key, "method": h.command, "path": h.path,
                  "body": body, "replayed": False}
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
                                               "a different request"})
                return
            entry[1].wait(60)
            record["replayed"] = True
            status, payload = entry[2][0] if entry[2] else (
                409, {"error": "concurrent request did not finish"})
            self._answer(h, status, payload, replayed=True)
            return
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            n = len(self.effects) + 1
            self.effects.append({"n": n, "key": key, "method": h.command,
                                 "path": h.path, "body": body})
        payload = {"id": "ch_%d" % n, "charge": n, "key": key}
        if entry is not None:
            entry[2].append((200, payload))
            entry[1].set()
        self._answer(h, 200, payload)

    def _answer(self, h, status, payload, replayed=False):
        data = (json.dumps(payload, sort_keys=True) + "\n").encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            if replayed:
                h.send_header("Idempotent-Replayed", "true")
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
