"""Faults (issue #8): the journal on a full, read-only, deleted or long
locked file system; writers killed mid-transaction; and multithreaded
programs that do awkward things: 16 threads on their own connections, a
signal handler calling write(), close() racing write(), fork while
threads post. Requests must still go out (tagged, or unchanged), the
program must get its answers and its exit status, the journal must pass
`PRAGMA integrity_check` and keep every row it committed, and where the
journal cannot be used one warning says so.

The C programs are clients/fault_threads.c."""

import errno
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

from harness import (LIB, PYTHON, Skip, assert_bytes, assert_tagged, client,
                     expected_key, header_values, musl, post_request,
                     preload, remove_header, timeout)
from servers import RecordingServer

FORM = "application/x-www-form-urlencoded"


def _form_request(port, path, body):
    return post_request("127.0.0.1:%d" % port, path, body,
                        headers=("Content-Type: " + FORM,))


def _raw_request(port, path, body):
    return post_request("127.0.0.1:%d" % port, path, body)


def _key(req):
    vals = header_values(req.raw, "Idempotency-Key")
    assert len(vals) == 1, "%d key lines in %r" % (len(vals), req.raw[:400])
    return vals[0].decode()


def _lines(out):
    """{first word: rest of the line (str)} of a client's stdout."""
    d = {}
    for line in out.decode().splitlines():
        word, _, rest = line.partition(" ")
        d[word] = rest
    return d


def _integrity(path):
    con = sqlite3.connect(path, timeout=10)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


# -- threads ------------------------------------------------------------------

@timeout(30)
@musl
def test_faults_16_threads_own_connections(ctx):
    # 16 threads x 25 POSTs, each thread on its own connection, head and
    # body in separate sends: every request byte-exact with its own key,
    # one journal row per request.
    s = ctx.recording_server()
    p = ctx.run([client("fault_threads"), "threads", s.port, 16, 25],
                env=ctx.shim_env(s.authority), timeout=25)
    assert p.stdout == b"done\n" and p.stderr == b"", (p.stdout, p.stderr)
    got = s.wait_requests(400)
    assert len(got) == 400, len(got)
    per_conn = {}
    for r in got:
        per_conn.setdefault(r.conn, []).append(r)
    assert len(per_conn) == 16, "connections: %d" % len(per_conn)
    keys = set()
    for conn, reqs in per_conn.items():
        t = reqs[0].target.decode()[2:]
        for i, r in enumerate(reqs):
            path, body = "/t" + t, "t=%s&i=%d" % (t, i)
            keys.add(assert_tagged(r.raw, _form_request(s.port, path, body),
                                   "POST", s.authority, path, body,
                                   what="conn %d request %d:" % (conn, i)))
    assert len(keys) == 400, "keys not distinct: %d" % len(keys)
    rows = ctx.dump()
    assert len(rows) == 400, "expected 400 rows, got %d" % len(rows)
    assert {r["key"].encode() for r in rows} == keys, \
        "journal keys differ from the keys the server received"
    assert {(r["outcome"], r["status"], r["attempt"]) for r in rows} == {
        ("completed", 200, 1)}, {(r["outcome"], r["status"]) for r in rows}


# -- write() in a signal handler ----------------------------------------------

@timeout(30)
@musl
def test_faults_signal_handler_writes(ctx):
    # SIGALRM every 200 us while the main thread sends 64 KiB POSTs on A
    # (in 256-byte send()s);
    # the handler writes to a pipe and whole requests to B (a tracked
    # socket in the same lock stripe as A). No deadlock (the time limit),
    # the pipe's records all there and in order, A's requests byte-exact
    # and tagged, B's each tagged or unchanged, none lost or reordered.
    a = ctx.recording_server()
    b = ctx.recording_server()
    env = ctx.shim_env("%s,%s" % (a.authority, b.authority))
    p = ctx.run([client("fault_threads"), "sigwrite", a.port, b.port, 2000],
                env=env, timeout=20)
    out = _lines(p.stdout)
    assert p.stderr == b"", p.stderr
    n_a = int(out["a"])
    n_b, short = map(int, out["b"].split())
    signals = int(out["signals"])
    records, ordered = map(int, out["pipe"].split())
    assert n_a > 0 and signals > 0, out
    assert (records, ordered) == (signals, 1), (
        "pipe: %d records (ordered: %d) for %d signals" % (records, ordered,
                                                            signals))
    assert short == 0, "%d handler writes came short" % short
    got_a = a.wait_requests(n_a)
    assert len(got_a) == n_a, (len(got_a), n_a)
    pad = b"x" * (64 * 1024 - 13)
    for i, r in enumerate(got_a):
        body = b"i=%06d&pad=" % i + pad
        assert_tagged(r.raw, _raw_request(a.port, "/a", body), "POST",
                      a.authority, "/a", body, what="A request %d:" % i)
    got_b = b.wait_requests(n_b) if n_b else []
    assert len(got_b) == n_b, (len(got_b), n_b)
    tagged = 0
    for i, r in enumerate(got_b):
        body = b"n=%08d" % i
        plain = _form_request(b.port, "/sig", body)
        if header_values(r.raw, "Idempotency-Key"):
            assert_tagged(r.raw, plain, "POST", b.authority, "/sig", body,
                          what="B request %d:" % i)
            tagged += 1
        else:
            assert_bytes(plain, r.raw, "B request %d (untagged):" % i)
    # Signals that come while the main thread is outside the shim (in
    # recv(), say) have their requests tagged, from the handler; the rest
    # pass unchanged.
    assert tagged > 0, "none of %d tagged" % n_b


# -- close() racing write() -----------------------------------------------------

_REQ_RE = re.compile(rb"POST /c(\d+) HTTP/1\.1\r\n")


def _split_requests(data):
    """The requests in a connection's stream with their key lines taken
    out: [(raw without key, key or None, complete)], raising on bytes that
    are not a request this program wrote."""
    out, pos = [], 0
    while pos < len(data):
        m = _REQ_RE.match(data, pos)
        if not m and data.find(b"\r\n\r\n", pos) < 0 and (
                data[pos:pos + 7] == b"POST /c"[:len(data) - pos]):
            out.append((data[pos:], None, False))    # cut in its head
            break
        if not m:
            raise AssertionError("not the start of a request at %d: %r"
                                 % (pos, data[pos:pos + 120]))
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            out.append((data[pos:], None, False))
            break
        head = data[pos:end + 4]
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        raw = data[pos:end + 4 + length]
        complete = len(raw) == len(head) + length
        keys = header_values(raw, "Idempotency-Key")
        out.append((remove_header(raw, "Idempotency-Key"),
                    keys[0] if keys else None, complete))
        pos += len(raw)
    return out


@timeout(30)
@musl
def test_faults_close_racing_write(ctx):
    # One thread writes whole requests (one write() each) to the current
    # fd while another closes it at random moments and connects anew, the
    # new connection getting the closed number. No crash; each
    # connection's stream is whole requests of this program, in order,
    # maybe ending in a cut one: nothing of another connection spliced in;
    # every key is the request's own. A request written while neither a
    # close nor a connect was under way went to a connection the shim had
    # tracked, fresh: it is tagged. (Others, written while connect() was
    # returning or close() taking the number away, may pass unchanged.)
    # The server answers nothing: a socket closed with unread answers
    # would be reset, its unsent bytes dropped by the kernel.
    s = ctx.recording_server(response=b"")
    p = ctx.run([client("fault_threads"), "closerace", s.port, 1500],
                env=ctx.shim_env(s.authority), timeout=20)
    out = _lines(p.stdout)
    assert p.stderr == b"", p.stderr
    conns, reused = int(out["conns"]), int(out["reused"])
    stable = {int(i) for i in out["stable"].split()}
    assert reused > conns // 2 and len(stable) > 100, (conns, reused,
                                                       len(stable))
    closed = s.wait_closed(conns, timeout=10)
    seen, untagged = set(), []
    for c in closed:
        last_i = -1
        for n, (raw, key, complete) in enumerate(_split_requests(
                bytes(c.raw))):
            if not complete:
                continue
            target = raw.split(b" ", 2)[1].decode()
            body = raw[raw.find(b"\r\n\r\n") + 4:]
            m = re.match(rb"k=(\d+)&i=(\d+)&pad=p*$", body)
            assert m and b"/c" + m.group(1) == target.encode(), (
                "conn %d: request %d body %r does not match %s"
                % (c.index, n, body[:40], target))
            i = int(m.group(2))
            assert i > last_i, "conn %d: out of order" % c.index
            last_i = i
            seen.add(i)
            assert_bytes(_raw_request(s.port, target, body), raw,
                         "conn %d request %d:" % (c.index, n))
            if key is not None:
                assert key == expected_key("POST", s.authority, target,
                                           body), (
                    "conn %d request %d: wrong key" % (c.index, n))
            elif i in stable:
                untagged.append((c.index, i))
    assert stable <= seen, "%d whole writes lost of %d (seen %d), e.g. %r" % (
        len(stable - seen), len(stable), len(seen), sorted(stable - seen)[:20])
    assert not untagged, (
        "%d requests written while no close or connect was under way went "
        "out untagged (connection, request): %r" % (len(untagged),
                                                    untagged[:10]))


@timeout(20)
@musl
def test_faults_write_waiting_while_fd_closed_and_reused(ctx):
    # A write() waits in the shim (behind another thread's blocked send on
    # the same connection) while a third thread closes the fd and a new
    # connection takes its number. The waiting write raced that close: it
    # fails with EBADF, as it could have without the shim, rather than
    # putting its bytes on the new connection; and the new connection is
    # tracked: its request arrives alone, tagged.
    s = ctx.recording_server()
    p = ctx.run([client("fault_threads"), "stalecall", s.port],
                env=ctx.shim_env(s.authority), timeout=15, check=False)
    out = _lines(p.stdout)
    assert p.returncode == 0 and p.stderr == b"", (
        "exited %d (%r); the new connection got %r"
        % (p.returncode, p.stdout + p.stderr,
           [bytes(c.raw[:200]) for c in s.connections]))
    f, f2 = out["fds"].split()
    assert f == f2, out
    assert out["w"] == "-1 %d" % errno.EBADF, (
        "the write that raced close() returned %r, expected -1 EBADF"
        % out["w"])
    got = s.wait_requests(1)
    time.sleep(0.2)
    assert len(s.requests) == 1 and s.connections[0].leftover == b"", (
        "new connection got %r" % bytes(s.connections[0].raw[:400]))
    assert_tagged(got[0].raw, _form_request(s.port, "/new", "n=1"), "POST",
                  s.authority, "/new", "n=1")


# -- fork while threads post -----------------------------------------------------

@timeout(40)
@musl
def test_faults_fork_while_threads_post(ctx):
    # Four threads POST in a loop while the main thread forks 20 times;
    # each child POSTs on a connection of its own and _exits. No child
    # hangs; every request (the children's too) tagged with its key; the
    # journal has a row for each, under the right pid.
    s = ctx.recording_server()
    p = ctx.run([client("fault_threads"), "forkloop", s.port, 20],
                env=ctx.shim_env(s.authority), timeout=35)
    assert p.stderr == b"", p.stderr
    lines = p.stdout.decode().splitlines()
    parent = int(lines[0].split()[1])
    children = {}
    for l in lines:
        w = l.split()
        if w[0] == "child":
            children[int(w[1])] = int(w[2])
    assert sorted(children) == list(range(20)), lines
    n_threads = int(lines[-1].split()[1])
    got = s.wait_requests(20 + n_threads, timeout=10)
    assert len(got) == 20 + n_threads, (len(got), 20 + n_threads)
    sent = {}
    for r in got:
        path = r.target.decode()
        if path.startswith("/child"):
            body = "r=%s" % path[6:]
        else:
            body = r.body.decode()
            assert re.match(r"t=%s&i=\d+$" % path[3:], body), (path, body)
        sent[(path, body)] = assert_tagged(
            r.raw, _form_request(s.port, path, body), "POST", s.authority,
            path, body, what="%s %s:" % (path, body)).decode()
    rows = ctx.dump()
    assert len(rows) == len(got), "expected %d rows, got %d" % (len(got),
                                                                 len(rows))
    assert sorted(r["key"] for r in rows) == sorted(sent.values())
    pids = {r["path"]: r["pid"] for r in rows if r["path"].startswith(
        "/child")}
    assert pids == {"/child%d" % k: v for k, v in children.items()}, pids
    assert {r["pid"] for r in rows if r["path"].startswith("/th")} == {
        parent}
    assert {(r["outcome"], r["status"]) for r in rows} == {
        ("completed", 200)}, {(r["outcome"], r["status"]) for r in rows}


# -- the journal's file system fails ----------------------------------------------

# Posts "/j/<tag>/<n>" (body "tag=<tag>&n=<n>") to 127.0.0.1:PORT on one
# keep-alive connection. argv: PORT TAG [forever]. Without "forever" it
# reads commands from stdin: a number posts that many and prints
# "posted N" (N: all so far); an empty line or end of input exits 0.
# Forever: posts until killed, printing each request's number once
# answered.
PY_POSTER = r"""
import http.client, sys
port, tag = int(sys.argv[1]), sys.argv[2]
forever = sys.argv[3:] == ["forever"]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
n = 0

def post():
    global n
    c.request("POST", "/j/%s/%d" % (tag, n), body="tag=%s&n=%d" % (tag, n),
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"ok"
    n += 1

while forever:
    post()
    print(n - 1, flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    for _ in range(int(line)):
        post()
    print("posted", n, flush=True)
"""


class _Poster:
    """A PY_POSTER process driven through its stdin; stderr goes to a
    file, so a test can wait for a warning while it runs."""

    def __init__(self, ctx, server, tag, env):
        self.server, self.tag, self.n = server, tag, 0
        self.err_path = os.path.join(ctx.tmp, "poster-%s.err" % tag)
        self.p = subprocess.Popen(
            [PYTHON, "-c", PY_POSTER, str(server.port), tag], env=env,
            cwd=ctx.tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.err_path, "wb"))

    def post(self, k):
        self.p.stdin.write(b"%d\n" % k)
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        self.n += k
        assert line == b"posted %d\n" % self.n, (line, self.stderr())

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read()

    def wait_stderr(self, seconds):
        deadline = time.monotonic() + seconds
        while not self.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stderr()

    def finish(self):
        out, _ = self.p.communicate(b"\n", timeout=20)
        assert self.p.returncode == 0, (self.p.returncode, out,
                                        self.stderr())
        return self.stderr()

    def requests(self):
        """This poster's paths and keys, as the server received them:
        every request byte-exact with its own key."""
        keys = {}
        want = ["/j/%s/%d" % (self.tag, i) for i in range(self.n)]
        got = [r for r in self.server.wait_requests(0)
               if r.target.decode().startswith("/j/%s/" % self.tag)]
        assert [r.target.decode() for r in got] == want, (
            "%s: server got %r" % (self.tag, [r.target for r in got]))
        for r, path in zip(got, want):
            body = "tag=%s&n=%s" % (self.tag, path.rsplit("/", 1)[1])
            assert r.body == body.encode(), (path, r.body)
            keys[path] = assert_tagged(
                r.raw, remove_header(r.raw, "Idempotency-Key"), "POST",
                self.server.authority, path, body, what="%s:" % path).decode()
        return keys

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate()


def _mount_tmpfs(ctx, name, size):
    """A fresh tmpfs of size at ctx.tmp/name (unmounted when the test
    ends); Skip when mounting is not permitted here."""
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700"
                        % size, "tmpfs", d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise Skip("cannot mount a tmpfs here: %s"
                   % p.stdout.decode(errors="replace").strip())
    ctx._cleanup.append(lambda: _umount(d))
    return d


def _umount(d):
    if subprocess.run(["umount", d], stderr=subprocess.DEVNULL).returncode:
        subprocess.run(["umount", "-l", d], stderr=subprocess.DEVNULL)


def _fill(directory):
    """Writes a file in directory until the file system is full; returns
    its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        try:
            while True:
                f.write(b"\0")
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return path


def _keys(jpath):
    con = sqlite3.connect("file:%s?mode=ro" % jpath, uri=True, timeout=10)
    try:
        return {(row[0], row[1]) for row in con.execute(
            "SELECT id, key FROM attempts")}
    finally:
        con.close()


def _wait_rows(jpath, n, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if os.path.exists(jpath) and len(_keys(jpath)) >= n:
                break
        except sqlite3.OperationalError:
            pass      # made, its tables not yet
        time.sleep(0.05)
    return _keys(jpath)


def _one_journal_warning(text, what):
    lines = [l for l in text.decode(errors="replace").splitlines()
             if l.strip()]
    assert len(lines) == 1 and "journal" in lines[0].lower(), (
        "%s: expected one warning line about the journal, got %r"
        % (what, lines))


def _journal_on_tmpfs(ctx, name):
    """A journal on a tmpfs of its own, with the three rows of a first
    process: (server, directory, journal, environment, that process, its
    rows)."""
    s = ctx.recording_server()
    d = _mount_tmpfs(ctx, name, "8m")
    jpath = os.path.join(d, "journal.db")
    env = ctx.shim_env(s.authority, journal=jpath)
    first = _Poster(ctx, s, "first", env)
    first.post(3)
    assert first.finish() == b""
    before = _wait_rows(jpath, 3)
    assert len(before) == 3, before
    return s, d, jpath, env, first, before


@timeout(30)
def test_faults_journal_on_full_file_system(ctx):
    # The journal's file system fills up under a running process: its
    # requests still go out tagged, it exits 0, and it says once that the
    # journal is unusable. Once space is freed, the journal passes
    # integrity_check, kept every row written before, and takes new ones,
    # from that same process too.
    s, d, jpath, env, first, before = _journal_on_tmpfs(ctx, "small")
    filler = _fill(d)
    full = _Poster(ctx, s, "full", env)
    try:
        full.post(20)
        _one_journal_warning(full.wait_stderr(15), "on a full file system")
        os.unlink(filler)
        full.post(5)
        _one_journal_warning(full.finish(), "after space came back")
    finally:
        full.kill()
    late = [k for path, k in full.requests().items()
            if int(path.rsplit("/", 1)[1]) >= 20]
    first.requests()
    assert _integrity(jpath) == ["ok"], _integrity(jpath)
    assert set(late) <= {k for _, k in _keys(jpath)}, (
        "rows queued after space came back are missing")
    after = _Poster(ctx, s, "after", env)
    after.post(2)
    assert after.finish() == b""
    keys = after.requests()
    rows = _wait_rows(jpath, 5)
    assert before <= rows, "rows lost: %r" % (before - rows)
    assert set(keys.values()) <= {k for _, k in rows}, (keys, rows)
    assert _integrity(jpath) == ["ok"]


@timeout(30)
def test_faults_journal_on_read_only_mount(ctx):
    # The journal's file system is remounted read-only (root ignores a
    # file's 0400): requests go out tagged, the program exits 0 with one
    # warning, and the journal is as it was.
    s, d, jpath, env, first, before = _journal_on_tmpfs(ctx, "ro")
    p = subprocess.run(["mount", "-o", "remount,ro", d],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.returncode == 0, p.stdout
    ro = _Poster(ctx, s, "ro", env)
    try:
        ro.post(5)
        _one_journal_warning(ro.finish(), "read-only journal")
    finally:
        ro.kill()
    ro.requests()
    first.requests()
    assert _keys(jpath) == before
    subprocess.run(["mount", "-o", "remount,rw", d], check=True)
    assert _integrity(jpath) == ["ok"]


@timeout(30)
def test_faults_journal_deleted_while_in_use(ctx):
    # The journal and its -wal and -shm are deleted while a process
    # posts: its requests still go out tagged and it exits 0 (its rows go
    # to the deleted file); a process started afterwards makes a new
    # journal, which holds its rows and passes integrity_check.
    s = ctx.recording_server()
    jpath = ctx.journal_path
    env = ctx.shim_env(s.authority)
    old = _Poster(ctx, s, "old", env)
    try:
        old.post(5)
        assert len(_wait_rows(jpath, 5)) == 5
        for suffix in ("", "-wal", "-shm"):
            os.unlink(jpath + suffix)
        old.post(5)
        new = _Poster(ctx, s, "new", env)
        new.post(3)
        assert new.finish() == b""
        old.post(5)
        err = old.finish()
    finally:
        old.kill()
    lines = err.decode(errors="replace").splitlines()
    assert all("journal" in l.lower() for l in lines) and len(lines) <= 1, (
        lines)
    old.requests()
    keys = new.requests()
    rows = _wait_rows(jpath, 3)
    assert {k for _, k in rows} == set(keys.values()), (rows, keys)
    assert _integrity(jpath) == ["ok"]


@timeout(40)
def test_faults_journal_locked_longer_than_the_waits(ctx):
    # Another process holds the journal's write lock (BEGIN IMMEDIATE)
    # for longer than the writer's five busy waits of 2 s, while a
    # process keeps posting: its requests go out tagged without waiting
    # for the lock, one warning says a batch was given up, and the rows
    # queued after the lock is gone are written.
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    first = _Poster(ctx, s, "first", env)
    first.post(2)
    assert first.finish() == b""
    jpath = ctx.journal_path
    before = _wait_rows(jpath, 2)
    holder = sqlite3.connect(jpath, isolation_level=None, timeout=5)
    busy = _Poster(ctx, s, "busy", env)
    try:
        holder.execute("BEGIN IMMEDIATE")
        end = time.monotonic() + 11.5
        while time.monotonic() < end:
            busy.post(1)
            time.sleep(0.1)
        _one_journal_warning(busy.stderr(), "locked journal")
        holder.execute("ROLLBACK")
        busy.post(5)
        _one_journal_warning(busy.finish(), "after the lock")
    finally:
        holder.close()
        busy.kill()
    keys = busy.requests()
    first.requests()
    rows = _keys(jpath)
    assert before <= rows
    written = {k for _, k in rows}
    late = [keys["/j/busy/%d" % i] for i in range(busy.n - 5, busy.n)]
    assert set(late) <= written, "rows queued after the lock was released " \
        "are missing"
    assert _integrity(jpath) == ["ok"]


@timeout(60)
def test_faults_killed_writers_keep_committed_rows(ctx):
    # Rounds of six processes posting as fast as they can, all killed
    # (SIGKILL) at random moments: after each round the journal passes
    # integrity_check and still has every row a reader saw committed just
    # before the kills. Afterwards the journal takes new rows.
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    jpath = ctx.journal_path
    rnd = random.Random(8)
    for rnd_no in range(3):
        procs = [subprocess.Popen(
            [PYTHON, "-c", PY_POSTER, str(s.port), "r%dp%d" % (rnd_no, i),
             "forever"], env=env, cwd=ctx.tmp, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE) for i in range(6)]
        try:
            _wait_rows(jpath, 1, seconds=10)
            time.sleep(rnd.uniform(0.3, 1.0))
            seen = _keys(jpath)
            for p in procs:
                time.sleep(rnd.uniform(0, 0.03))
                p.kill()
        finally:
            for p in procs:
                p.kill()
                _, err = p.communicate()
                assert p.returncode == -signal.SIGKILL and err == b"", (
                    p.returncode, err[-500:])
        assert _integrity(jpath) == ["ok"], "round %d: %r" % (
            rnd_no, _integrity(jpath))
        rows = _keys(jpath)
        assert seen <= rows, "round %d: %d committed rows lost" % (
            rnd_no, len(seen - rows))
    last = _Poster(ctx, s, "last", env)
    last.post(1)
    assert last.finish() == b""
    key = last.requests()["/j/last/0"]
    assert key in {k for _, k in _wait_rows(jpath, len(rows) + 1)}


NOBODY = 65534


def _as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@timeout(30)
def test_faults_journal_file_read_only_for_its_user(ctx):
    # A journal of mode 0400 (root ignores modes, so this runs as nobody,
    # with copies of the library and client that nobody can reach): the
    # request goes out tagged, the program exits 0 with one warning, and
    # the journal is as it was.
    if os.geteuid() != 0:
        raise Skip("needs root: to run the program as another user")
    s = ctx.recording_server()
    top = tempfile.mkdtemp(prefix="retrysafe-ro-", dir="/tmp")
    ctx._cleanup.append(lambda: shutil.rmtree(top, ignore_errors=True))
    os.chmod(top, 0o755)
    lib, sender = (shutil.copy(path, top) for path in (LIB, client("raw_send")))
    state = os.path.join(top, "state")
    os.makedirs(state)
    os.chown(state, NOBODY, NOBODY)
    env = ctx.shim_env(s.authority, journal=os.path.join(state, "journal.db"))
    env.update(LD_PRELOAD=preload(lib), HOME=state, XDG_STATE_HOME=state)

    def post(path, body):
        s.clear()
        f = os.path.join(top, path.strip("/"))
        with open(f, "wb") as out:
            out.write(_raw_request(s.port, path, body))
        os.chmod(f, 0o644)
        p = subprocess.run([sender, s.host, str(s.port), f], env=env,
                           preexec_fn=_as_nobody, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        assert p.returncode == 0, (p.returncode, p.stderr)
        req = s.wait_requests(1)[0]
        assert_tagged(req.raw, _raw_request(s.port, path, body), "POST",
                      s.authority, path, body, what=path + ":")
        return p.stderr

    jpath = os.path.join(state, "journal.db")
    assert post("/before", "a=1") == b""
    before = _wait_rows(jpath, 1)
    assert len(before) == 1, before
    for f in os.listdir(state):
        if f.startswith("journal.db"):
            os.chmod(os.path.join(state, f), 0o400)
    _one_journal_warning(post("/after", "a=2"), "journal of mode 0400")
    assert _keys(jpath) == before
    assert _integrity(jpath) == ["ok"]


@timeout(60)
@musl
def test_faults_exit_from_signal_handler_inside_the_shim(ctx):
    # _exit() from a SIGALRM handler while the program peeks at the shim's
    # own 100 Continue, at delays that land inside the shim's work and
    # outside it: every run ends at once (the exit-time release takes no
    # lock it could be waiting for on its own thread), and the server gets
    # the head as the shim forwards it after its own 100 (without the
    # Expect line) or, when the handler cut into the shim, nothing.
    s = RecordingServer(send_continue=False)
    ctx._cleanup.append(s.stop)
    env = ctx.shim_env(s.authority, journal="off")
    head = (b"POST /charge HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 10"
            b"\r\nExpect: 100-continue\r\n\r\n" % s.port)
    runs = 30
    for i in range(runs):
        p = subprocess.run([client("exit_in_handler"), str(s.port),
                            str(300 + 137 * i)], env=env, timeout=8,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.returncode == 0, ("run %d: exit %d, stderr %r"
                                   % (i, p.returncode, p.stderr))
    forwarded = head.replace(b"Expect: 100-continue\r\n", b"")
    got = [bytes(c.raw) for c in s.wait_closed(runs, timeout=10)]
    for i, raw in enumerate(got):
        assert raw in (b"", forwarded), "connection %d got %r" % (i, raw)
