"""What every integration test uses: paths, the expected-key computation,
byte-exact comparison, and the per-test Context (temp dir, environment,
servers, running programs).

A test is a function test_NAME(ctx) in tests/integration/test_*.py. It fails
by raising AssertionError (or any exception), skips by raising Skip. The
runner (run.py) gives it a fresh Context in a process of its own.
"""

import base64
import decimal
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# `run.py --musl` sets RETRYSAFE_TEST_LIBC=musl: the library, the tool and
# the C clients are then build/musl's, built with musl-gcc (make musl), and
# only the tests marked @musl run (those whose programs under the shim are
# all our C clients: a glibc program cannot preload a musl library).
# `run.py --build DIR` sets RETRYSAFE_TEST_BUILD=DIR: another build's files
# (make SANITIZE=... builds into build/san-LIST).
MUSL = os.environ.get("RETRYSAFE_TEST_LIBC") == "musl"
BUILD = (os.path.join(ROOT, "build", "musl") if MUSL else
         os.path.abspath(os.path.join(ROOT, os.environ.get(
             "RETRYSAFE_TEST_BUILD", "build"))))
LIB = os.path.join(BUILD, "libretrysafe.so")
TOOL = os.path.join(BUILD, "retrysafe")
CLIENT_SRC = os.path.join(HERE, "clients")
CLIENT_BIN = os.path.join(BUILD, "clients")
# Clients that need a library Debian has no musl build of.
GLIBC_ONLY_CLIENTS = {"curl_post"}
PYTHON = sys.executable

TEST_SECRET = "retrysafe-integration-test-secret"
DEFAULT_HEADER = "Idempotency-Key"
DEFAULT_TIMEOUT = 10.0
KEY_TAG = b"retrysafe key v1\n"


def _sanitizer_runtimes(lib):
    """{soname: path} of the sanitizer runtimes lib was linked with (a build
    made with make SANITIZE=...), as the loader finds them; {} for a plain
    build."""
    if not os.path.exists(lib):
        return {}
    p = subprocess.run(["ldd", lib], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return dict(re.findall(r"^\s*(lib(?:asan|ubsan)\.so\S*) => (/\S+)",
                           p.stdout.decode(errors="replace"), re.M))


# A sanitized library: the programs it is preloaded into are not
# instrumented, so the ASan runtime must be preloaded ahead of it (ASan
# refuses to start when it is not first of all the libraries), and each
# program's reports go to files the runner checks after the test (any report
# fails it), so that one from a program a test expects to fail is seen too.
SANITIZER_RUNTIMES = {} if MUSL else _sanitizer_runtimes(LIB)
SANITIZED = bool(SANITIZER_RUNTIMES)
PRELOAD_FIRST = [os.path.realpath(path) for name, path in
                 SANITIZER_RUNTIMES.items() if name.startswith("libasan.")]
# Hosts such as python3 leak at exit by design: no leak reports there (our
# own programs get them back, _leak_checked; tests/run-all gives them to the
# unit tests). UBSan honours its log_path only without ASan (gcc 12): with
# it, its reports go to stderr, and abort the program.
ASAN_OPTIONS = "detect_leaks=0:halt_on_error=1:abort_on_error=1"
UBSAN_OPTIONS = "halt_on_error=1:abort_on_error=1:print_stacktrace=1"


def not_under_asan(why):
    """Skip (saying why) when the shim is a build with SANITIZE=address: for
    the few tests ASan's own runtime cannot pass."""
    if PRELOAD_FIRST:
        raise Skip("not under ASan: " + why)


def sanitizer_log_dir(tmp):
    """Where the programs of the test whose temp dir is tmp write their
    sanitizer reports: beside tmp, not in it."""
    return tmp.rstrip("/") + ".sanitizer"


# Variables a test environment never inherits: they would change what the
# programs send or whether the shim is loaded.
_SCRUB_PREFIXES = ("RETRYSAFE_",)
_SCRUB = {"LD_PRELOAD", "LD_LIBRARY_PATH", "http_proxy", "HTTP_PROXY",
          "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
          "NO_PROXY", "CURL_HOME", "WGETRC", "NODE_OPTIONS", "PYTHONPATH"}


class Skip(Exception):
    """Raised by a test that cannot run here (a program is missing)."""


def musl(fn):
    """Marks a test that also runs under `run.py --musl`."""
    fn.musl = True
    return fn


def timeout(seconds):
    """Decorator: this test may take up to `seconds` (default 10)."""
    def mark(fn):
        fn.timeout = seconds
        return fn
    return mark


# -- keys ---------------------------------------------------------------------

def _b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def normalize_authority(authority, tls=False):
    """Lower case, default port dropped: "Example.COM:80" -> "example.com"."""
    a = _b(authority).lower()
    default = b":443" if tls else b":80"
    if a.endswith(default):
        a = a[:-len(default)]
    return a


# -- canonical bodies (README, "The key"; src/canon.h), written here
# independently of the C code so the tests check it -------------------------

def body_kind(content_type):
    """'json', 'form' or 'raw' for a Content-Type value."""
    if not content_type:
        return "raw"
    t = _b(content_type).split(b";")[0].strip(b" \t").lower()
    if t == b"application/json":
        return "json"
    if t == b"application/x-www-form-urlencoded":
        return "form"
    typ, _, sub = t.partition(b"/")
    if typ and sub.endswith(b"+json") and len(sub) > 5:
        return "json"
    return "raw"


def _json_number(text):
    d = decimal.Decimal(text)
    if d == 0:
        return "0"
    sign, digits, exp = d.as_tuple()
    ds = "".join(map(str, digits)).lstrip("0")
    while ds.endswith("0"):
        ds, exp = ds[:-1], exp + 1
    return ("-" if sign else "") + ds + ("" if exp == 0 else "e%d" % exp)


def _canon_json(body):
    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate keys")
        return ("obj", sorted(items, key=lambda kv: kv[0].encode("utf-8")))

    def bad_constant(name):
        raise ValueError(name)

    def out(v):
        if isinstance(v, tuple) and v[0] == "num":
            return v[1]
        if isinstance(v, tuple) and v[0] == "obj":
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + out(x)
                                  for k, x in v[1]) + "}"
        if isinstance(v, list):
            return "[" + ",".join(out(x) for x in v) + "]"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        return json.dumps(v)   # true, false, null

    num = lambda t: ("num", _json_number(t))
    value = json.loads(body.decode("utf-8"), object_pairs_hook=pairs,
                       parse_int=num, parse_float=num, parse_constant=bad_constant)
    return out(value).encode("utf-8")


def _pct_decode(b):
    out, i = bytearray(), 0
    while i < len(b):
        c = b[i]
        if c == 0x2B:
            out.append(0x20)
        elif c == 0x25:
            h = b[i + 1:i + 3]
            if len(h) != 2 or not all(x in b"0123456789abcdefABCDEF" for x in h):
                raise ValueError("bad escape")
            out.append(int(h, 16))
            i += 2
        else:
            out.append(c)
        i += 1
    return bytes(out)


def _pct_encode(b):
    safe = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            b"0123456789-._~")
    return b"".join(bytes([c]) if c in safe else b"%%%02X" % c for c in b)


def _canon_form(body):
    pairs = []
    for part in body.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_pct_decode(name), _pct_decode(value)))
    pairs.sort(key=lambda p: p[0])   # stable: a repeated name keeps its order
    return b"&".join(_pct_encode(n) + b"=" + _pct_encode(v) for n, v in pairs)


def canonical_body(content_type, body):
    """The body as the key sees it: canonical JSON or form when it parses
    as the Content-Type says, else the bytes as they are."""
    body = _b(body)
    kind = body_kind(content_type)
    try:
        if kind == "json":
            return _canon_json(body)
        if kind == "form":
            return _canon_form(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return body


def content_type_of(raw):
    """The Content-Type value in a raw request head, or None."""
    vals = header_values(raw, b"Content-Type") if b"\r\n\r\n" in raw else []
    return vals[0] if vals else None


def expected_key(method, authority, path, body=b"", scope=b"",
                 secret=TEST_SECRET, tls=False, content_type=None):
    """The key the shim must send, per the contract (README, "The key"):
    base64url_nopad(HMAC-SHA256(secret, msg)[:24]) where msg is the tag
    followed by (method, authority, path with query, scope, body), each as
    an 8-byte big-endian length and its bytes; a JSON or form body (by
    content_type) counts in its canonical form. Returns bytes."""
    msg = bytearray(KEY_TAG)
    for field in (_b(method), normalize_authority(authority, tls), _b(path),
                  _b(scope), canonical_body(content_type, body)):
        msg += len(field).to_bytes(8, "big") + field
    digest = hmac.new(_b(secret), bytes(msg), hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


# -- raw request bytes --------------------------------------------------------

def head_end(raw):
    """Offset of the empty line ending the head (its CRLF)."""
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        raise AssertionError("no end of head in %r" % raw[:300])
    return i + 2


def insert_header(raw, name, value):
    """raw with "name: value\\r\\n" as the last header line."""
    i = head_end(raw)
    return raw[:i] + _b(name) + b": " + _b(value) + b"\r\n" + raw[i:]


def remove_header(raw, name):
    """raw without any header line called name (any case)."""
    i = head_end(raw)
    lines = raw[:i].split(b"\r\n")
    n = _b(name).lower()
    kept = [l for l in lines[1:]
            if l.split(b":", 1)[0].strip().lower() != n]
    return b"\r\n".join(lines[:1] + kept) + raw[i:]


def header_values(raw, name):
    """Values of the header lines called name (any case) in raw's head."""
    i = head_end(raw)
    n = _b(name).lower()
    out = []
    for line in raw[:i].split(b"\r\n")[1:]:
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == n:
            out.append(v.strip())
    return out


def describe_diff(expected, got, limit=2000):
    """A readable account of where two byte strings differ."""
    if expected == got:
        return "identical"
    n = 0
    while n < min(len(expected), len(got)) and expected[n] == got[n]:
        n += 1
    lo = max(0, n - 60)
    msg = ["expected %d bytes, got %d; first difference at offset %d"
           % (len(expected), len(got), n),
           "  expected[%d:]: %r" % (lo, expected[lo:n + 80]),
           "  got     [%d:]: %r" % (lo, got[lo:n + 80])]
    if len(expected) + len(got) <= limit:
        msg += ["  full expected: %r" % expected, "  full got:      %r" % got]
    return "\n".join(msg)


def assert_bytes(expected, got, what="server received"):
    if expected != got:
        raise AssertionError("%s wrong bytes: %s"
                             % (what, describe_diff(expected, got)))


def assert_tagged(got, original, method, authority, path, body,
                  header=DEFAULT_HEADER, scope=b"", secret=TEST_SECRET,
                  what="server received", tls=False):
    """got must be original plus exactly one `header: key` line, inserted
    last, with the key the contract prescribes (tls: the authority's
    default port is 443). Returns the key."""
    key = expected_key(method, authority, path, body, scope, secret, tls,
                       content_type_of(original))
    vals = header_values(got, header) if b"\r\n\r\n" in got else []
    if len(vals) != 1:
        raise AssertionError("%s %d %s header line(s), expected 1 (%s): %s"
                             % (what, len(vals), header, vals,
                                describe_diff(insert_header(original, header,
                                                            key), got)))
    if vals[0] != key:
        raise AssertionError("%s %s: %s, expected %s (method=%r authority=%r"
                             " path=%r scope=%r body=%d bytes)"
                             % (what, header, vals[0].decode("latin-1"),
                                key.decode(), method, authority, path, scope,
                                len(_b(body))))
    assert_bytes(insert_header(original, header, key), got, what)
    return key


def assert_untagged(got, original, header=DEFAULT_HEADER,
                    what="server received"):
    assert_bytes(original, got, what)


# -- the per-test context -----------------------------------------------------

def base_env(tmp):
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUB and not k.startswith(_SCRUB_PREFIXES)}
    home = os.path.join(tmp, "home")
    state = os.path.join(tmp, "state")
    os.makedirs(home, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    env.update(HOME=home, XDG_STATE_HOME=state, RETRYSAFE_SECRET=TEST_SECRET,
               LC_ALL="C", TZ="UTC")
    if SANITIZED:
        logs = sanitizer_log_dir(tmp)
        os.makedirs(logs, exist_ok=True)
        env["ASAN_OPTIONS"] = "%s:log_path=%s/asan" % (ASAN_OPTIONS, logs)
        env["UBSAN_OPTIONS"] = "%s:log_path=%s/ubsan" % (UBSAN_OPTIONS, logs)
    return env


def _leak_checked(argv, env):
    """env, with leak detection on when argv runs one of our own programs
    (the tool, a C client) in a sanitized build: their leaks are ours. Not
    for `retrysafe run`: the program it starts is a host."""
    exe = str(argv[0])
    if (not SANITIZED or "ASAN_OPTIONS" not in env
            or os.path.dirname(os.path.abspath(exe)) not in (BUILD, CLIENT_BIN)
            or (exe == TOOL and len(argv) > 1 and argv[1] == "run")):
        return env
    return dict(env, ASAN_OPTIONS=env["ASAN_OPTIONS"].replace(
        "detect_leaks=0", "detect_leaks=1"))


def sanitizer_reports(tmp):
    """The reports the test's programs wrote: [(file name, text)]."""
    logs = sanitizer_log_dir(tmp)
    out = []
    for fn in sorted(os.listdir(logs)) if os.path.isdir(logs) else ():
        with open(os.path.join(logs, fn), "rb") as f:
            out.append((fn, f.read().decode(errors="replace")))
    return out


def preload(*libraries):
    """An LD_PRELOAD value naming libraries, after the ASan runtime when
    this is a sanitized build."""
    return " ".join(PRELOAD_FIRST + list(libraries))


def _arg(a):
    return a if isinstance(a, bytes) else str(a)


def _show(a):
    a = a.decode("latin-1") if isinstance(a, bytes) else str(a)
    return "<script>" if "\n" in a else a


class Context:
    """One test's world: ctx.tmp (fresh directory), ctx.env (environment
    without the shim), servers that stop when the test ends."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.env = base_env(tmp)
        self._cleanup = []
        self._n = 0

    def close(self):
        for fn in reversed(self._cleanup):
            try:
                fn()
            except Exception:
                pass

    # servers
    def recording_server(self, **kw):
        from servers import RecordingServer
        s = RecordingServer(**kw)
        self._cleanup.append(s.stop)
        return s

    def key_server(self, **kw):
        from servers import KeyServer
        s = KeyServer(**kw)
        self._cleanup.append(s.stop)
        return s

    # TLS (certs.py): one CA and server certificate per run of the suite
    def tls_certs(self):
        """The run's test certificates (certs.Certs: ca, cert, key, chain),
        made with the openssl command on first use."""
        import certs
        return certs.for_run(self.tmp)

    def tls_server(self, **kw):
        """A TLSRecordingServer (https://localhost:PORT) with the run's
        certificate."""
        from servers import TLSRecordingServer
        s = TLSRecordingServer(self.tls_certs(), **kw)
        self._cleanup.append(s.stop)
        return s

    def nginx_server(self, **kw):
        """Debian's nginx with HTTP/2 over TLS (servers.NginxServer), its
        files in tmp/nginx-N; Skip if nginx or its http2 module is
        missing."""
        from servers import NginxServer
        self._n += 1
        s = NginxServer(self.tls_certs(),
                        os.path.join(self.tmp, "nginx-%d" % self._n), **kw)
        self._cleanup.append(s.stop)
        return s

    def redis_server(self, **kw):
        """Debian's redis-server (servers.RedisServer), its files in
        tmp/redis-N; Skip if it is not installed. Ended with the test."""
        from servers import RedisServer
        self._n += 1
        s = RedisServer(os.path.join(self.tmp, "redis-%d" % self._n), **kw)
        self._cleanup.append(s.stop)
        return s

    def tls_env(self, env=None):
        """env (default ctx.env) plus SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
        CURL_CA_BUNDLE naming the test CA."""
        return self.tls_certs().client_env(self.env if env is None else env)

    # environments
    def shim_env(self, hosts=None, **variables):
        """ctx.env plus LD_PRELOAD of the shim, RETRYSAFE_HOSTS=hosts (unset
        when None) and RETRYSAFE_<NAME>=value for each keyword."""
        require_lib()
        env = dict(self.env)
        env["LD_PRELOAD"] = preload(LIB)
        if hosts is not None:
            env["RETRYSAFE_HOSTS"] = hosts
        for k, v in variables.items():
            env["RETRYSAFE_" + k.upper()] = str(v)
        return env

    # files
    def write(self, data, name=None):
        """Writes data to a new file in tmp; returns its path."""
        self._n += 1
        path = os.path.join(self.tmp, name or "data%d" % self._n)
        with open(path, "wb") as f:
            f.write(_b(data))
        return path

    # programs
    def run(self, argv, env=None, timeout=8.0, check=True, input=None,
            cwd=None):
        """Runs argv; returns the CompletedProcess (bytes). With check, a
        non-zero exit fails the test, showing stderr."""
        try:
            p = subprocess.run([_arg(a) for a in argv],
                               env=_leak_checked(argv, env or self.env),
                               input=input, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout,
                               cwd=cwd or self.tmp)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s timed out after %ss; stderr: %r"
                                 % (os.path.basename(str(argv[0])), timeout,
                                    (e.stderr or b"")[-500:]))
        if check and p.returncode != 0:
            how = ("exited %d" % p.returncode if p.returncode > 0 else
                   "killed by %s" % signal.Signals(-p.returncode).name)
            raise AssertionError("%s %s; stderr: %r; stdout: %r"
                                 % (" ".join(map(_show, argv))[:300], how,
                                    p.stderr[-800:], p.stdout[-300:]))
        return p

    def python(self, code, *args, env=None, **kw):
        """Runs a python3 snippet (the real interpreter, not a shell shim)."""
        return self.run([PYTHON, "-c", code] + list(args), env=env, **kw)

    def curl(self, *args, env=None, **kw):
        """Runs curl quietly (no ~/.curlrc), failing on connection errors."""
        return self.run([need("curl"), "-q", "-sS"] + list(args), env=env,
                        **kw)

    # the tool and the journal
    def tool(self, *args, env=None, **kw):
        """Runs build/retrysafe ARGS (without the shim, by default in
        ctx.env: the journal at its default location in the temp dir)."""
        return self.run([require_tool()] + list(args), env=env, **kw)

    def dump(self, *args, env=None):
        """`retrysafe dump --json ARGS`: the rows as dicts, oldest first."""
        p = self.tool("dump", "--json", *args, env=env)
        return parse_json_lines(p.stdout, "retrysafe dump --json")

    def stats(self, *args, env=None):
        """`retrysafe stats --json ARGS`: {host: that host's object}."""
        p = self.tool("stats", "--json", *args, env=env)
        out = {}
        for obj in parse_json_lines(p.stdout, "retrysafe stats --json"):
            if "host" not in obj:
                raise AssertionError("stats --json line without host: %r"
                                     % obj)
            out[obj["host"]] = obj
        return out

    @property
    def journal_path(self):
        """Where the shim keeps its journal in ctx.env (no RETRYSAFE_JOURNAL):
        $XDG_STATE_HOME/retrysafe/journal.db."""
        return default_journal(self.env)


def default_journal(env):
    """The journal's default location for env: $XDG_STATE_HOME/retrysafe/
    journal.db, else ~/.local/state/retrysafe/journal.db."""
    state = env.get("XDG_STATE_HOME") or os.path.join(env["HOME"], ".local",
                                                      "state")
    return os.path.join(state, "retrysafe", "journal.db")


def parse_json_lines(data, what="output"):
    """One JSON object per non-empty line of data (bytes)."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("%s: not a JSON line (%s): %r"
                                 % (what, e, line[:300]))
        if not isinstance(obj, dict):
            raise AssertionError("%s: not a JSON object: %r"
                                 % (what, line[:300]))
        out.append(obj)
    return out


# The fields of a `retrysafe dump --json` line and their JSON types (status
# and duration_ms may also be null).
ROW_FIELDS = {"time": str, "pid": int, "exe": str, "method": str, "host": str,
              "path": str, "key": str, "fingerprint": str, "attempt": int,
              "generation": int, "tls": bool, "body_len": int, "status": int,
              "outcome": str, "duration_ms": int}
OUTCOMES = ("pending", "completed", "unknown", "failed", "skipped", "replayed",
            "refused")


def assert_row(row, what="row", **want):
    """Each keyword names a field of a dump row and the value it must have
    (compared with ==, so status=None means null)."""
    wrong = ["%s=%r (expected %r)" % (k, row.get(k, "<absent>"), v)
             for k, v in want.items() if k not in row or row[k] != v]
    if wrong:
        raise AssertionError("%s: %s; whole row: %r"
                             % (what, ", ".join(wrong), row))


def need(program):
    """Full path of program, or Skip if it is not installed."""
    path = shutil.which(program)
    if path is None:
        raise Skip("%s not installed" % program)
    return path


def _built(path, how):
    if not os.path.exists(path):
        raise AssertionError("%s missing (%s)" % (os.path.relpath(path, ROOT),
                                                  how))
    return path


def require_lib():
    _built(LIB, "make musl" if MUSL else "run make")


def require_tool():
    return _built(TOOL, "make musl" if MUSL else "run make")


def client(name):
    """Path of build/clients/NAME (built by run.py or the Makefile)."""
    return _built(os.path.join(CLIENT_BIN, name),
                  "make musl" if MUSL else "make integration builds it")


CLIENT_CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wshadow",
                 "-Wpointer-arith", "-Wstrict-prototypes", "-O2", "-g"]
# Our own clients are built with the sanitizers the library has.
CLIENT_SANITIZE = ["-fsanitize=" + ",".join(
    kind for kind, so in (("address", "libasan."), ("undefined", "libubsan."))
    if any(n.startswith(so) for n in SANITIZER_RUNTIMES)),
    "-fno-omit-frame-pointer"] if SANITIZED else []


def build_clients():
    """Compiles each clients/NAME.c newer than build/clients/NAME, as the
    Makefile does. Returns a list of error messages."""
    errors = []
    if not os.path.isdir(CLIENT_SRC):
        return errors
    os.makedirs(CLIENT_BIN, exist_ok=True)
    cc = "musl-gcc" if MUSL else os.environ.get("CC", "cc")
    libs = ["-lpthread"] if MUSL else ["-lcurl", "-lpthread"]
    for fn in sorted(os.listdir(CLIENT_SRC)):
        if not fn.endswith(".c") or (MUSL and fn[:-2] in GLIBC_ONLY_CLIENTS):
            continue
        src = os.path.join(CLIENT_SRC, fn)
        out = os.path.join(CLIENT_BIN, fn[:-2])
        if (os.path.exists(out)
                and os.path.getmtime(out) >= os.path.getmtime(src)):
            continue
        p = subprocess.run([cc] + CLIENT_CFLAGS + CLIENT_SANITIZE
                           + ["-o", out, src] + libs,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            errors.append("building %s failed:\n%s"
                          % (fn, p.stdout.decode(errors="replace")))
    return errors


# -- common shapes of a test ----------------------------------------------------

def exchange(server, fn, n=1, timeout=5.0):
    """Forgets what server saw, calls fn(), and returns (fn's result, the
    first n requests the server then received)."""
    server.clear()
    out = fn()
    return out, server.wait_requests(n, timeout)


def control_and_shim(ctx, server, run, shim_env, n=1):
    """run(env) once without the shim (the control) and once with shim_env,
    against the same server. Returns (control requests, shim requests,
    control output, shim output)."""
    out0, ctl = exchange(server, lambda: run(ctx.env), n)
    out1, got = exchange(server, lambda: run(shim_env), n)
    return ctl, got, out0, out1


def post_request(authority, path, body, headers=(), method=b"POST"):
    """A plain HTTP/1.1 request as a client would write it."""
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (_b(method), _b(path),
                                                 _b(authority))
    for h in headers:
        head += _b(h) + b"\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(_b(body))
    return head + _b(body)
