"""The library itself: it exports the hooks and nothing else, so the host's
own symbols (its libcrypto, its SQLite, its functions) are never replaced
by ours; and it loads without doing anything in a process that never
connects."""

import re
import subprocess

from harness import LIB, PRELOAD_FIRST, require_lib

HOOKS = {
    "connect", "close", "_exit", "_Exit", "execve", "execv", "execvp",
    "execvpe", "fexecve", "execl", "execlp", "execle", "shutdown", "close_range", "dup",
    "dup2", "dup3", "fcntl", "fcntl64", "fork", "write", "writev", "send",
    "sendto",
    "sendmsg", "sendmmsg", "sendfile", "sendfile64", "read", "readv",
    "recv", "recvfrom", "recvmsg", "__read_chk", "__recv_chk",
    "__recvfrom_chk", "poll", "ppoll", "__poll_chk", "__ppoll_chk",
    "select", "pselect", "epoll_ctl", "epoll_wait", "epoll_pwait",
    # OpenSSL, interposed (never linked): see src/tls_openssl.c
    "SSL_write", "SSL_write_ex", "SSL_read", "SSL_read_ex", "SSL_pending",
    "SSL_clear", "SSL_set_alpn_protos", "SSL_CTX_set_alpn_protos",
    "SSL_connect", "SSL_do_handshake", "SSL_free", "SSL_set_connect_state",
    # GnuTLS, interposed (never linked): see src/tls_gnutls.c
    "gnutls_record_send", "gnutls_record_recv", "gnutls_deinit",
}


def test_library_exports_only_hooks(ctx):
    require_lib()
    out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True,
                         text=True, check=True).stdout
    exported = {line.split()[-1].split("@")[0] for line in out.splitlines()
                if re.match(r"^[0-9a-f]+ [TWiV] ", line)}
    # A build with SANITIZE=address adds the symbol the ASan runtime needs
    # to find (src/asan_glue.c).
    want = HOOKS | {"swift_demangle"} if PRELOAD_FIRST else HOOKS
    assert exported == want, "unexpected exports: %s; missing: %s" % (
        sorted(exported - want), sorted(want - exported))


def test_library_does_not_link_libssl(ctx):
    require_lib()
    out = subprocess.run(["readelf", "-d", LIB], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
    assert not [n for n in needed if "libssl" in n or "gnutls" in n], needed


def test_library_has_no_undefined_own_symbols(ctx):
    require_lib()
    # Every undefined symbol must come from a system library (versioned
    # glibc, libcrypto, SQLite): none of ours may be left to chance.
    out = subprocess.run(["nm", "-D", "--undefined-only", LIB], capture_output=True,
                         text=True, check=True).stdout
    ours = [l for l in out.splitlines()
            if re.search(r"\b(http|outbound|conn|journal|key|config|flight|shim|"
                         r"hooks|secret|log|buf|location|keysource)_", l)]
    assert not ours, "undefined symbols of ours: %s" % ours


def test_process_that_never_connects_is_untouched(ctx):
    require_lib()
    env = ctx.shim_env("127.0.0.1:9")
    p = ctx.run(["sh", "-c", "echo hello; ls / >/dev/null"], env=env)
    assert p.stdout == b"hello\n" and p.stderr == b"", (p.stdout, p.stderr)
    # Lazy start: no state directory, no journal, no secret without a connection.
    import os
    state = env.get("XDG_STATE_HOME")
    assert not state or not os.path.exists(os.path.join(state, "retrysafe", "journal.db"))


def test_sqlite_and_libcrypto_load_only_at_start(ctx):
    # Every process the user starts gets the shim; one that never makes a
    # connection the shim tracks must not pay for loading SQLite and
    # libcrypto (about 3 ms). One that does gets them at that moment.
    require_lib()
    env = ctx.shim_env("127.0.0.1")
    maps = ctx.run(["cat", "/proc/self/maps"], env=env).stdout
    assert LIB.encode() in maps, "the shim is not loaded at all"
    for lib in (b"libsqlite3", b"libcrypto"):
        assert lib not in maps, "%r mapped in a process that never connected" % (
            lib,)
    s = ctx.recording_server()
    script = ("import socket, sys; c = socket.create_connection(('127.0.0.1', "
              "int(sys.argv[1]))); c.sendall(b'POST / HTTP/1.1\\r\\nHost: x\\r\\n"
              "Content-Length: 0\\r\\n\\r\\n'); c.recv(100); "
              "print(open('/proc/self/maps').read())")
    maps = ctx.python(script, s.port, env=ctx.shim_env(s.authority)).stdout
    assert b"libsqlite3" in maps, "SQLite not loaded once the shim started"
