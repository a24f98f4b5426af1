"""Security (issue #8 part 5, SECURITY.md): private files and directories,
setuid and setgid programs left alone, keys that reveal nothing without the
secret, and the tool treating journal content as data only."""

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile

from harness import (KEY_TAG, TEST_SECRET, Skip, assert_bytes, assert_tagged,
                     canonical_body, client, exchange, expected_key,
                     header_values, need, normalize_authority,
                     not_under_asan, post_request)

NOBODY = 65534
PATH = "/v1/charges"
FORM = "application/x-www-form-urlencoded"
CARD = "tok_visa_4242QZX"   # a body string that must never reach the journal
BODY = "amount=2000&card=" + CARD


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def _files_under(top):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)


def _need_root(why):
    if os.geteuid() != 0:
        raise Skip("needs root: %s" % why)


def _post(ctx, s, env, body=BODY):
    """curl POST under env: (the request the server got, curl's stderr)."""
    p, reqs = exchange(s, lambda: ctx.curl("-d", body, s.url(PATH), env=env))
    return reqs[0], p.stderr.decode(errors="replace")


def _key_of(req):
    vals = header_values(req.raw, "Idempotency-Key")
    assert len(vals) == 1, "server got %d key lines: %r" % (len(vals),
                                                            req.raw[:400])
    return vals[0].decode()


# -- directories -------------------------------------------------------------

def test_created_private(ctx):
    """What the shim makes is 0700 (directories) and 0600 (files), even
    under umask 000."""
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, mode="guard")
    del env["RETRYSAFE_SECRET"]
    state = os.path.join(ctx.tmp, "fresh", "state")
    env["XDG_STATE_HOME"] = state
    _, reqs = exchange(s, lambda: ctx.run(
        ["/bin/sh", "-c", 'umask 000; exec "$@"', "sh", need("curl"), "-q", "-sS",
         "-d", BODY, s.url(PATH)], env=env))
    _key_of(reqs[0])
    top = os.path.join(state, "retrysafe")
    assert _mode(os.path.join(ctx.tmp, "fresh")) == 0o700, \
        oct(_mode(os.path.join(ctx.tmp, "fresh")))
    assert _mode(state) == 0o700 and _mode(top) == 0o700, \
        (oct(_mode(state)), oct(_mode(top)))
    names = {os.path.basename(f): _mode(f) for f in _files_under(top)}
    for name in ("secret", "journal.db", "journal.db-seen",
                 "journal.db-claims"):
        assert names.get(name) == 0o600, "%s: %r" % (name, names)
    loose = {n: oct(m) for n, m in names.items() if m & 0o077}
    assert not loose, "files others may read or write: %r" % loose


def _refused_journal(ctx, s, jdir, why):
    """A request under a journal in jdir: tagged, unrecorded, one warning
    naming the journal and why; nothing made in jdir."""
    jpath = os.path.join(jdir, "sub", "journal.db")
    before = sorted(os.listdir(jdir))
    req, err = _post(ctx, s, ctx.shim_env(s.authority, journal=jpath))
    assert _key_of(req) == expected_key("POST", s.authority, PATH, BODY,
                                        content_type=FORM).decode()
    want = "journal unusable: refusing journal %s: %s" % (jpath, why)
    assert err.count(want) == 1, "want %r in stderr %r" % (want, err)
    assert sorted(os.listdir(jdir)) == before, os.listdir(jdir)


def test_journal_world_writable_dir_refused(ctx):
    s = ctx.recording_server()
    ww = os.path.join(ctx.tmp, "ww")
    os.mkdir(ww)
    os.chmod(ww, 0o777)
    _refused_journal(ctx, s, ww, "directory %s is writable by every user and "
                     "has no sticky bit" % ww)
    # Like /tmp: the sticky bit makes it fine, and the journal is made.
    os.chmod(ww, 0o1777)
    jpath = os.path.join(ww, "sub", "journal.db")
    req, err = _post(ctx, s, ctx.shim_env(s.authority, journal=jpath))
    assert err == "", err
    rows = ctx.dump("--journal", jpath)
    assert [r["key"] for r in rows] == [_key_of(req)], rows
    assert _mode(os.path.dirname(jpath)) == 0o700


def test_journal_dir_of_other_user_refused(ctx):
    _need_root("only root can give a directory to another user")
    s = ctx.recording_server()
    other = os.path.join(ctx.tmp, "other")
    os.mkdir(other, 0o755)
    os.chown(other, NOBODY, NOBODY)
    _refused_journal(ctx, s, other, "directory %s belongs to uid %d, neither "
                     "to uid 0 nor to root" % (other, NOBODY))


def test_state_directory_through_own_link(ctx):
    # A state directory reached through a link of the user's own (a
    # symlinked ~/.local) holds a working journal and secret; the journal
    # file itself is never a link.
    s = ctx.recording_server()
    real = os.path.join(ctx.tmp, "real")
    os.mkdir(real, 0o700)
    link = os.path.join(ctx.tmp, "state-link")
    os.symlink(real, link)
    env = ctx.shim_env(s.authority)
    del env["RETRYSAFE_SECRET"]
    env["XDG_STATE_HOME"] = link
    req, err = _post(ctx, s, env)
    assert err == "", err
    jpath = os.path.join(link, "retrysafe", "journal.db")
    rows = ctx.dump("--journal", jpath)
    assert [r["key"] for r in rows] == [_key_of(req)], rows
    assert os.path.isfile(os.path.join(real, "retrysafe", "secret"))
    # The journal file as a link: refused, even to a journal of ours.
    linked = os.path.join(ctx.tmp, "linked.db")
    os.symlink(os.path.join(real, "retrysafe", "journal.db"), linked)
    env = ctx.shim_env(s.authority, journal=linked)
    req, err = _post(ctx, s, env)
    assert "refusing journal %s: it is a symbolic link" % linked in err, err


def test_state_directory_through_other_users_link(ctx):
    _need_root("only root can give a link to another user")
    s = ctx.recording_server()
    real = os.path.join(ctx.tmp, "real")
    os.mkdir(real, 0o700)
    theirs = os.path.join(ctx.tmp, "their-link")
    os.symlink(real, theirs)
    os.lchown(theirs, NOBODY, NOBODY)
    _refused_journal(ctx, s, theirs, "link %s belongs to uid %d, neither to "
                     "uid 0 nor to root" % (theirs, NOBODY))


def test_secret_dir_refused(ctx):
    """No secret from a directory others can change: requests pass
    untagged, with the reason; no secret is created there."""
    s = ctx.recording_server()
    ww = os.path.join(ctx.tmp, "wwstate")
    os.mkdir(ww)
    os.chmod(ww, 0o777)
    env = ctx.shim_env(s.authority, journal="off")
    del env["RETRYSAFE_SECRET"]
    env["XDG_STATE_HOME"] = ww
    control, _ = _post(ctx, s, ctx.env)
    req, err = _post(ctx, s, env)
    assert_bytes(control.raw, req.raw)
    want = ("no key secret: refusing the secret in %s/retrysafe: directory %s "
            "is writable by every user and has no sticky bit" % (ww, ww))
    assert want in err, "want %r in stderr %r" % (want, err)
    assert os.listdir(ww) == [], os.listdir(ww)


def test_tool_journal_in_unsafe_dir(ctx):
    """The tool reads such a journal with a warning (dump, stats), refuses
    to change it (prune, forget), and `key` does not use it, as the shim."""
    s = ctx.recording_server()
    jdir = os.path.join(ctx.tmp, "j")
    jpath = os.path.join(jdir, "journal.db")
    req, _ = _post(ctx, s, ctx.shim_env(s.authority, journal=jpath))
    key = _key_of(req)
    os.chmod(jdir, 0o777)
    why = ("refusing journal %s: directory %s is writable by every user and "
           "has no sticky bit" % (jpath, jdir))
    for cmd in ("dump", "stats"):
        p = ctx.tool(cmd, "--journal", jpath)
        assert why in p.stderr.decode() and b"reading it anyway" in p.stderr, \
            (cmd, p.stderr)
        assert s.authority.encode() in p.stdout, (cmd, p.stdout)
    for args in (["prune", "--journal", jpath, "--older-than", "1s"],
                 ["forget", "--journal", jpath, key]):
        p = ctx.tool(*args, check=False)
        assert p.returncode == 2 and p.stdout == b"", (args, p)
        assert why in p.stderr.decode(), (args, p.stderr)
    assert [r["key"] for r in ctx.dump("--journal", jpath)] == [key]
    # Within the window the shim's retry would be generation 0 anyway; a
    # refused journal is not read: a first attempt.
    p = ctx.tool("key", "--journal", jpath, "--content-type", FORM, "POST",
                 s.url(PATH), "-", input=BODY.encode())
    assert p.stdout.decode().strip() == key, p.stdout
    assert why in p.stderr.decode(), p.stderr


# -- setuid and setgid programs ---------------------------------------------

def _system_lib_dir():
    """A directory the loader trusts for preloading into a secure-execution
    program (glibc: the standard ones only)."""
    p = subprocess.run(["cc", "-print-multiarch"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    arch = p.stdout.decode().strip() if p.returncode == 0 else ""
    for d in ("/usr/lib/" + arch if arch else None, "/usr/lib"):
        if d and os.path.isdir(d):
            return d
    raise Skip("no standard library directory found")


def _secure_run(ctx, s, prog, libname, raw, env):
    p = ctx.run([prog, str(s.port), libname], env=env, input=raw)
    first, _, rest = p.stdout.partition(b"\n")
    return first.decode(), rest, p.stderr


def test_setuid_setgid_left_alone(ctx):
    """glibc preloads into a setuid or setgid program only a library of a
    standard directory that is itself set-user-ID: installed so, the shim
    is loaded (the client sees it in /proc/self/maps) and does nothing -
    the server gets the bytes as written, no journal, no output. The same
    binary without the bit is tagged (the control)."""
    _need_root("only root can make a program setuid to another user and "
               "install a library where the loader trusts it")
    from harness import LIB, MUSL
    if MUSL:
        raise Skip("musl's loader ignores LD_PRELOAD for such programs")
    not_under_asan("the ASan runtime must be preloaded by path, and the "
                   "loader takes no path for a secure-exec program")
    s = ctx.recording_server()
    libname = "libretrysafe-sectest-%d.so" % os.getpid()
    installed = os.path.join(_system_lib_dir(), libname)
    raw = post_request(s.authority, PATH, BODY)
    # Where the setuid program, running as nobody, could make a journal.
    reachable = tempfile.mkdtemp(prefix="retrysafe-suid-")
    os.chmod(reachable, 0o711)
    try:
        shutil.copyfile(LIB, installed)
        os.chmod(installed, 0o4755)
        plain = os.path.join(ctx.tmp, "plain")
        shutil.copyfile(client("secure_exec"), plain)
        os.chmod(plain, 0o755)
        env = ctx.shim_env(s.authority, log="info")
        env["LD_PRELOAD"] = libname
        # The control: loaded, active, tagged, journaled.
        (line, _, err), reqs = exchange(
            s, lambda: _secure_run(ctx, s, plain, libname, raw, env))
        assert line == "secure=0 loaded=1", line
        assert b"active for 1 host pattern" in err, err
        assert_tagged(reqs[0].raw, raw, "POST", s.authority, PATH, BODY)
        assert os.path.exists(ctx.journal_path)
        for how, bits, uid, gid in (("setuid", 0o4755, NOBODY, 0),
                                    ("setgid", 0o2755, 0, NOBODY)):
            jdir = os.path.join(reachable, how + "-state")
            os.mkdir(jdir, 0o700)
            os.chown(jdir, uid, gid)   # where its effective user could write
            prog = os.path.join(ctx.tmp, how)
            shutil.copyfile(plain, prog)
            os.chown(prog, uid, gid)
            os.chmod(prog, bits)
            env["RETRYSAFE_JOURNAL"] = os.path.join(jdir, "journal.db")
            (line, _, err), reqs = exchange(
                s, lambda: _secure_run(ctx, s, prog, libname, raw, env))
            if line.startswith("secure=0"):
                raise Skip("%s did not run in secure-execution mode (a nosuid "
                           "mount?): %s" % (how, line))
            assert line == "secure=1 loaded=1", \
                "%s: %s (the loader did not preload %s)" % (how, line,
                                                            installed)
            assert_bytes(raw, reqs[0].raw, "%s: server received" % how)
            assert err == b"", "%s: the shim spoke: %r" % (how, err)
            assert os.listdir(jdir) == [], (how, os.listdir(jdir))
    finally:
        if os.path.exists(installed):
            os.unlink(installed)
        shutil.rmtree(reachable, ignore_errors=True)


# -- keys --------------------------------------------------------------------

def _macs(secret, body, authority):
    """(key, fingerprint) as the shim derives them (README, "The key")."""
    msg = bytearray(KEY_TAG)
    for field in (b"POST", normalize_authority(authority), PATH.encode(), b"",
                  canonical_body(FORM, body.encode())):
        msg += len(field).to_bytes(8, "big") + field
    m0 = hmac.new(secret.encode(), bytes(msg), hashlib.sha256).digest()
    fp = hmac.new(secret.encode(), b"retrysafe fingerprint v1\n" + m0,
                  hashlib.sha256).hexdigest()[:32]
    key = expected_key("POST", authority, PATH, body, content_type=FORM,
                       secret=secret).decode()
    return key, fp


def test_keys_reveal_nothing_without_secret(ctx):
    """Two requests one digit apart: their keys and fingerprints are the
    secret's HMACs - reproduced with it, not with another secret, not by a
    plain hash - and no body byte is in the journal's files (tag mode)."""
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    bodies = (BODY, BODY.replace("2000", "2001"))
    for body in bodies:
        _post(ctx, s, env, body)
    rows = ctx.dump()
    assert len(rows) == 2, rows
    for row, body in zip(rows, bodies):
        want = _macs(TEST_SECRET, body, s.authority)
        assert (row["key"], row["fingerprint"]) == want, (row, want)
        other = _macs("another secret", body, s.authority)
        assert other[0] != row["key"] and other[1] != row["fingerprint"]
        plain = hashlib.sha256(body.encode()).hexdigest()
        assert row["fingerprint"] not in plain, row
        p = ctx.tool("key", "--content-type", FORM, "POST", s.url(PATH), "-",
                     input=body.encode(),
                     env=dict(ctx.env, RETRYSAFE_SECRET="another secret"))
        assert p.stdout.decode().strip() not in (rows[0]["key"],
                                                 rows[1]["key"]), p.stdout
    assert rows[0]["key"] != rows[1]["key"]
    assert rows[0]["fingerprint"] != rows[1]["fingerprint"]
    files = _files_under(os.path.dirname(ctx.journal_path))
    assert any(f.endswith("journal.db") for f in files), files
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        for needle in (CARD.encode(), b"amount=200"):
            assert needle not in data, "%s holds %r" % (f, needle)


def test_guard_stores_answers(ctx):
    """Guard mode keeps the answer's bytes for replay (SECURITY.md says so):
    the response body is in the journal's files; the request body is not."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nreceipt_ZQ81XK7P"
    s = ctx.recording_server(response=answer)
    _post(ctx, s, ctx.shim_env(s.authority, mode="guard"))
    data = b"".join(open(f, "rb").read()
                    for f in _files_under(os.path.dirname(ctx.journal_path)))
    assert b"receipt_ZQ81XK7P" in data
    assert CARD.encode() not in data


# -- journal content is data --------------------------------------------------

HOSTILE = {
    "path": "/x\x1b[2J\x1b]0;owned\x07\r\nforged row\t\x9b\x7f",
    "exe": "ev\x1bil\n",
    "host": "h\x1b[31m\nost",
    "method": "PO\rST",
}


def _hostile_journal(ctx):
    """A journal the shim wrote, its row then given hostile text (as a
    client could send, or another tool write) through SQLite directly."""
    s = ctx.recording_server()
    _post(ctx, s, ctx.shim_env(s.authority))
    db = sqlite3.connect(ctx.journal_path)
    with db:
        db.execute("UPDATE attempts SET path = ?, exe = ?, host = ?, "
                   "method = ?", (HOSTILE["path"], HOSTILE["exe"],
                                  HOSTILE["host"], HOSTILE["method"]))
        # Bytes that are not UTF-8, stored as TEXT as they are.
        db.execute("INSERT INTO attempts (time_ms, pid, exe, method, host, "
                   "path, key, fingerprint, generation, attempt, tls, "
                   "body_len, outcome) SELECT time_ms + 1, pid, exe, method, "
                   "host, CAST(? AS TEXT), key, fingerprint, generation, "
                   "attempt + 1, tls, body_len, outcome FROM attempts",
                   (b"/bad\xff\xc3(utf8",))
    db.close()


def test_dump_and_stats_escape_journal_text(ctx):
    _hostile_journal(ctx)
    out = ctx.tool("dump").stdout
    lines = out.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4, out   # header + 2 rows
    for bad in (b"\x1b", b"\r", b"\t", b"\x07", b"\x7f", b"\x9b", b"\xc2",
                b"\xff"):
        assert bad not in out, "raw %r in dump: %r" % (bad, out)
    for want in (b"/x\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0aforged row\\x09"
                 b"\\xc2\\x9b\\x7f", b"ev\\x1bil\\x0a", b"h\\x1b[31m\\x0aost",
                 b"PO\\x0dST", b"/bad\\xff\\xc3(utf8"):
        assert want in out, "%r not in %r" % (want, out)

    rows = ctx.dump()   # every line parses (harness), as strict UTF-8:
    ctx.tool("dump", "--json").stdout.decode("utf-8")
    assert len(rows) == 2, rows
    for field, value in HOSTILE.items():
        assert rows[0][field] == value, (field, rows[0][field])
    assert rows[1]["path"] == "/bad\ufffd\ufffd(utf8", rows[1]["path"]

    out = ctx.tool("stats").stdout
    lines = out.split(b"\n")
    assert len(lines) == 3 and lines[1].startswith(b"h\\x1b[31m\\x0aost "), out
    assert b"\x1b" not in out and b"\n" not in lines[1], out
    stats = ctx.stats()
    assert list(stats) == [HOSTILE["host"]], stats
    assert stats[HOSTILE["host"]]["requests"] == 2
    json.dumps(stats)
