"""`retrysafe doctor PROGRAM` (issue #4 part 6): what it says, for plain
HTTP and for HTTPS, about real programs (curl, wget, python3, node), about
programs built here (static, Go-like, musl, 32-bit, NSS), and that bad input
(not ELF, truncated, missing) is an error, exit 2, never a crash.

Exit status: 0 both covered, 1 not fully covered, 2 error."""

import os
import shutil
import struct
import subprocess

from harness import PYTHON, Skip, need, require_tool, timeout

TINY_C = "int main(void) { return 0; }\n"


class Report:
    """doctor's answer: exit status, its lines by label, and stderr."""

    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout.decode(errors="replace")
        self.err = p.stderr.decode(errors="replace")
        self.lines = {}
        self.notes = []
        for line in self.out.splitlines():
            label, sep, rest = line.partition(": ")
            if not sep:
                continue
            if label == "note":
                self.notes.append(rest)
            else:
                self.lines.setdefault(label, rest)

    def __str__(self):
        return "exit %d; stdout: %r; stderr: %r" % (self.rc, self.out,
                                                    self.err)

    def line(self, label):
        if label not in self.lines:
            raise AssertionError("no '%s:' line: %s" % (label, self))
        return self.lines[label]

    def expect(self, rc, **words):
        """Exit status rc, and each keyword's label (plain, https,
        program, script) has a line containing every one of its words."""
        assert self.rc == rc, "expected exit %d: %s" % (rc, self)
        labels = {"plain": "plain HTTP", "https": "HTTPS",
                  "program": "program", "script": "script"}
        for key, want in words.items():
            text = self.line(labels[key])
            for w in ([want] if isinstance(want, str) else want):
                assert w in text, "%r not in the %s line %r (%s)" % (
                    w, labels[key], text, self)
        return self


def doctor(ctx, *args, env=None):
    p = ctx.run([require_tool(), "doctor"] + list(args), env=env,
                check=False)
    r = Report(p)
    assert r.rc in (0, 1, 2), "doctor died or exited oddly: %s" % r
    if r.rc == 2:
        assert r.err.startswith("retrysafe: doctor: "), \
            "error without a message: %s" % r
        assert "plain HTTP:" not in r.out, "verdict printed on error: %s" % r
    else:
        assert r.err == "", "stderr on a verdict: %s" % r
    return r


def _error(ctx, *args, words=()):
    r = doctor(ctx, *args)
    assert r.rc == 2, "expected exit 2: %s" % r
    for w in words:
        assert w in r.err, "%r not in the error: %s" % (w, r)
    return r


def _cc(ctx, source, out, *flags, skip_reason=None):
    """Compiles source text to ctx.tmp/out; Skip (with the compiler's
    complaint) when that fails and skip_reason is given."""
    cc = need(os.environ.get("CC", "cc"))
    src = ctx.write(source, out + ".c")
    path = os.path.join(ctx.tmp, out)
    p = ctx.run([cc, "-o", path, src] + list(flags), check=False)
    if p.returncode != 0:
        if skip_reason:
            raise Skip("%s: %s" % (skip_reason,
                                   p.stderr.decode(errors="replace")
                                   .strip().splitlines()[-1:]))
        raise AssertionError("cc %s failed: %r" % (out, p.stderr[-800:]))
    return path


def _plain_covered():
    return ["covered", "send/write through libc"]


# -- real programs ---------------------------------------------------------------

def test_doctor_curl(ctx):
    curl = need("curl")
    for arg in ("curl", curl):   # a name resolved through PATH, and a path
        doctor(ctx, arg).expect(
            0, program=["ELF", "dynamically linked", "interpreter"],
            plain=_plain_covered(),
            https=["covered (OpenSSL libssl.so.", "linked dynamically: /"])


def test_doctor_wget(ctx):
    need("wget")
    doctor(ctx, "wget").expect(
        0, program="dynamically linked", plain=_plain_covered(),
        https=["covered (GnuTLS libgnutls.so.", "linked dynamically: /"])


def _python_ssl(ctx, prog, shown=None):
    r = doctor(ctx, prog).expect(
        0, plain=_plain_covered(),
        https=["covered (OpenSSL libssl.so.", "python's _ssl module",
               "dlopen", "RTLD_LOCAL", "lib-dynload/_ssl"])
    if shown:
        r.expect(0, program=shown)
    return r


def test_doctor_python3(ctx):
    checked = 0
    if os.path.exists("/usr/bin/python3"):
        real = os.path.realpath("/usr/bin/python3")
        _python_ssl(ctx, "/usr/bin/python3",
                    shown=("/usr/bin/python3 -> %s" % real
                           if os.path.islink("/usr/bin/python3") else real))
        checked += 1
    on_path = shutil.which("python3", path=ctx.env.get("PATH"))
    if on_path and os.path.realpath(on_path) != os.path.realpath(
            "/usr/bin/python3"):
        with open(on_path, "rb") as f:
            script = f.read(2) == b"#!"
        if script:
            # A wrapper script (pyenv's shims are bash): doctor says what it
            # is and that it cannot see through it; the interpreter the
            # wrapper really runs is then covered.
            r = doctor(ctx, "python3")
            assert r.rc == 2 and "script" in r.err, \
                "python3 on PATH is a script: %s" % r
            real = ctx.run(["python3", "-c",
                            "import sys; print(sys.executable)"]
                           ).stdout.decode().strip()
            _python_ssl(ctx, real)
        else:
            _python_ssl(ctx, "python3")
        checked += 1
    # The interpreter running this suite (in a pyenv-style prefix here,
    # its _ssl in <prefix>/lib/python3.X/lib-dynload).
    _python_ssl(ctx, PYTHON)
    checked += 1
    assert checked >= 1


def _defines_dynamic(path, symbol):
    """Whether path's dynamic symbol table defines symbol, by readelf."""
    readelf = need("readelf")
    out = subprocess.run([readelf, "-W", "--dyn-syms", path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         timeout=30).stdout.decode(errors="replace")
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) >= 8 and f[7].split("@")[0] == symbol and f[6] != "UND":
            return True
    return False


@timeout(30)
def test_doctor_node(ctx):
    node = need("node")
    if _defines_dynamic(os.path.realpath(node), "SSL_write"):
        # nodejs.org's builds: OpenSSL inside the executable.
        doctor(ctx, "node").expect(
            1, plain=_plain_covered(),
            https=["not covered: OpenSSL is built into the executable",
                   "it defines SSL_write", "cannot see the plaintext",
                   "Next step: send HTTPS through a local TLS-terminating "
                   "proxy, or use plain HTTP to a sidecar."])
    else:
        # Debian's nodejs links the system's libssl.
        doctor(ctx, "node").expect(0, plain=_plain_covered(),
                                   https="covered (OpenSSL libssl.so.")


# -- programs built here ---------------------------------------------------------

def test_doctor_static(ctx):
    prog = _cc(ctx, TINY_C, "static_prog", "-static",
               skip_reason="static libc unavailable (cc -static failed)")
    doctor(ctx, prog).expect(
        1, program="statically linked",
        plain=["not covered", "statically linked", "Next step"],
        https=["not covered", "statically linked"])


def test_doctor_static_pie(ctx):
    prog = _cc(ctx, TINY_C, "static_pie", "-static-pie",
               skip_reason="cc -static-pie failed")
    doctor(ctx, prog).expect(1, program="statically linked",
                             plain=["not covered", "statically linked"])


def _go_expect(r, how):
    return r.expect(1, program=", Go)",
                    plain=["not covered: a Go program", how,
                           "raw system calls", "Next step"],
                    https=["not covered: a Go program"])


def test_doctor_go_note_section(ctx):
    objcopy = need("objcopy")
    prog = _cc(ctx, TINY_C, "plain_prog")
    # A Go build ID note: namesz 4 ("Go\0\0"), descsz 8, type 4.
    note = ctx.write(struct.pack("<III", 4, 8, 4) + b"Go\0\0" + b"buildid!")
    fake = os.path.join(ctx.tmp, "gofake")
    p = ctx.run([objcopy, "--add-section", ".note.go.buildid=" + note,
                 prog, fake], check=False)
    if p.returncode != 0:
        raise Skip("objcopy --add-section failed: %r" % p.stderr[-300:])
    _go_expect(doctor(ctx, fake), ".note.go.buildid section")
    # The same program without the note is an ordinary C program.
    assert doctor(ctx, prog).rc != 2


def _strip_section_headers(path, out):
    """A copy of the 64-bit ELF file at path with e_shoff, e_shentsize,
    e_shnum and e_shstrndx zeroed (as sstrip leaves programs)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    assert data[4] == 2, "expected a 64-bit ELF file"
    struct.pack_into("<Q", data, 40, 0)
    struct.pack_into("<HHH", data, 58, 0, 0, 0)
    with open(out, "wb") as f:
        f.write(data)
    os.chmod(out, 0o755)
    return out


GO_NOTE_C = r"""
/* A Go build ID note in an allocated .note section: the linker puts it in
 * a PT_NOTE segment, where doctor finds it without section headers. */
__asm__(".section .note.go.buildid,\"a\",@note\n"
        ".balign 4\n.long 4\n.long 8\n.long 4\n"
        ".asciz \"Go\"\n.balign 4\n.ascii \"buildid!\"\n.previous\n");
int main(void) { return 0; }
"""

GO_BUILDINFO_C = r"""
/* Go's build information block: 16-byte aligned magic, then the pointer
 * size (8) and flags. */
__attribute__((used, aligned(16)))
static const char buildinfo[32] = "\xff Go buildinf:\x08\x02";
int main(void) { return buildinfo[0] == 0; }
"""


def test_doctor_go_without_section_headers(ctx):
    if shutil.which("readelf") is None:
        raise Skip("readelf not installed")
    prog = _cc(ctx, GO_NOTE_C, "go_note")
    segs = ctx.run(["readelf", "-lW", prog]).stdout.decode()
    if ".note.go.buildid" not in segs:
        raise Skip("the linker did not put the note in a segment")
    stripped = _strip_section_headers(prog, prog + ".sstrip")
    _go_expect(doctor(ctx, stripped), "Go build ID note")
    prog = _cc(ctx, GO_BUILDINFO_C, "go_buildinfo")
    stripped = _strip_section_headers(prog, prog + ".sstrip")
    _go_expect(doctor(ctx, stripped), "Go build information")


def test_doctor_not_go_lookalike(ctx):
    # The magic with no pointer size after it (as in a C string, or in
    # retrysafe itself) is not Go build information.
    prog = _cc(ctx, GO_BUILDINFO_C.replace(r"\x08\x02", ""), "lookalike")
    stripped = _strip_section_headers(prog, prog + ".sstrip")
    r = doctor(ctx, stripped)
    assert ", Go" not in r.line("program"), str(r)
    r.expect(1, plain=_plain_covered(), https="no TLS library linked")
    # retrysafe itself holds the magic as a C string.
    tool = _strip_section_headers(require_tool(),
                                  os.path.join(ctx.tmp, "tool.sstrip"))
    r = doctor(ctx, tool)
    assert ", Go" not in r.line("program"), str(r)


def test_doctor_no_tls_library(ctx):
    prog = _cc(ctx, TINY_C, "no_tls")
    doctor(ctx, prog).expect(
        1, program=["dynamically linked", "glibc"], plain=_plain_covered(),
        https=["not covered: no TLS library linked", "dlopen"])


def test_doctor_musl(ctx):
    need("musl-gcc")
    src = ctx.write(TINY_C, "musl_prog.c")
    prog = os.path.join(ctx.tmp, "musl_prog")
    ctx.run(["musl-gcc", "-o", prog, src])
    r = doctor(ctx, prog).expect(
        1, program=["dynamically linked", "musl", "interpreter /",
                    "ld-musl-"],
        plain=_plain_covered(), https="no TLS library linked")
    assert any("musl build" in n for n in r.notes), str(r)
    assert not any("not found" in n for n in r.notes), \
        "musl's libc.so is its loader, not a missing library: %s" % r


STUB_C = "int %s(void *s, const void *b, int n) { (void)s; (void)b; " \
         "return n; }\n"
CALLER_C = "int %s(void *, const void *, int);\n" \
           "int main(void) { return %s(0, \"x\", 1) != 1; }\n"


def _stub_library(ctx, soname, symbol, subdir="lib"):
    d = os.path.join(ctx.tmp, subdir)
    os.makedirs(d, exist_ok=True)
    src = ctx.write(STUB_C % symbol, "%s_%s.c" % (subdir, symbol))
    out = os.path.join(d, soname)
    ctx.run([need(os.environ.get("CC", "cc")), "-shared", "-fPIC", "-o", out,
             "-Wl,-soname," + soname, src])
    return out


def _link_against(ctx, name, symbol, libs, rpath="$ORIGIN/lib", dtags=None):
    # Keep every library named, used or not (Debian links --as-needed).
    flags = ["-Wl,--no-as-needed", "-L" + os.path.join(ctx.tmp, "lib")]
    flags += ["-l:" + os.path.basename(l) for l in libs]
    flags += ["-Wl,-rpath," + rpath]
    if dtags:
        flags.append("-Wl,--%s-new-dtags" % dtags)
    return _cc(ctx, CALLER_C % (symbol, symbol), name, *flags)


def test_doctor_dynamic_openssl_found_by_origin(ctx):
    # A libssl.so.3 of our own beside the program, found through $ORIGIN in
    # DT_RUNPATH and in DT_RPATH.
    lib = _stub_library(ctx, "libssl.so.3", "SSL_write")
    for dtags in ("enable", "disable"):
        prog = _link_against(ctx, "ssl_" + dtags, "SSL_write", [lib],
                             dtags=dtags)
        doctor(ctx, prog).expect(
            0, plain=_plain_covered(),
            https=["covered (OpenSSL libssl.so.3, linked dynamically: " +
                   lib + ")"])


def test_doctor_origin_parent_directory(ctx):
    # A prefix layout: bin/prog with DT_RUNPATH $ORIGIN/../lib (shown
    # without the "bin/..").
    lib = _stub_library(ctx, "libssl.so.3", "SSL_write")
    prog = _link_against(ctx, "prefix_prog", "SSL_write", [lib],
                         rpath="$ORIGIN/../lib", dtags="enable")
    os.makedirs(os.path.join(ctx.tmp, "bin"))
    moved = os.path.join(ctx.tmp, "bin", "prog")
    os.rename(prog, moved)
    doctor(ctx, moved).expect(
        0, https="covered (OpenSSL libssl.so.3, linked dynamically: %s)" % lib)


def test_doctor_nss(ctx):
    nss = _stub_library(ctx, "libnss3.so", "PR_Write")
    prog = _link_against(ctx, "nss_prog", "PR_Write", [nss])
    doctor(ctx, prog).expect(
        1, plain=_plain_covered(),
        https=["not covered", "NSS", "not interposed", "libnss3.so",
               "Next step"])
    ssl = _stub_library(ctx, "libssl.so.3", "SSL_write")
    both = _link_against(ctx, "nss_and_ssl", "SSL_write", [ssl, nss])
    doctor(ctx, both).expect(
        1, https=["partly covered", "OpenSSL libssl.so.3", "NSS libnss3.so",
                  "not interposed"])


def test_doctor_openssl_built_in(ctx):
    # A program that defines SSL_write itself (as node does) calls its own
    # copy: nothing preloaded can see it.
    src = STUB_C % "SSL_write" + CALLER_C.split("\n", 1)[1] % "SSL_write"
    prog = _cc(ctx, src, "builtin_ssl", "-rdynamic")
    doctor(ctx, prog).expect(
        1, plain=_plain_covered(),
        https=["not covered: OpenSSL is built into the executable",
               "(it defines SSL_write)", "Next step"])


def test_doctor_library_not_found(ctx):
    # A soname no system has, and a run path that does not exist.
    lib = _stub_library(ctx, "libssl.so.99", "SSL_write")
    prog = _link_against(ctx, "lost_ssl", "SSL_write", [lib],
                         rpath="/nonexistent-retrysafe")
    r = doctor(ctx, prog).expect(
        0, https=["covered (OpenSSL libssl.so.99", "not found on this system"])
    assert any("not found" in n and "libssl.so.99" in n for n in r.notes), \
        str(r)
    # LD_LIBRARY_PATH is searched, as the loader does.
    env = dict(ctx.env, LD_LIBRARY_PATH=os.path.dirname(lib))
    doctor(ctx, prog, env=env).expect(
        0, https="linked dynamically: " + lib + ")")


X86_STUB_S = ".globl %s\n.type %s,@function\n%s: ret\n"
X86_MAIN_S = ".globl _start\n_start: call SSL_write@PLT\n hlt\n"


def _ld32(ctx, *args):
    ctx.run(["ld", "-m", "elf_i386"] + list(args))


def test_doctor_32bit(ctx):
    # A 32-bit i386 program and library, assembled and linked without a
    # 32-bit libc; a 64-bit libssl.so.3 earlier in the run path is skipped
    # as the loader skips it.
    for tool in ("as", "ld"):
        need(tool)
    t = ctx.tmp
    os.makedirs(os.path.join(t, "lib"))
    ctx.write(X86_STUB_S % (("SSL_write",) * 3), "ssl.s")
    ctx.write(X86_STUB_S % (("other",) * 3), "other.s")
    ctx.write(X86_MAIN_S, "main.s")
    p = ctx.run(["as", "--32", "-o", "ssl.o", "ssl.s"], check=False)
    if p.returncode != 0:
        raise Skip("as --32 unavailable: %r" % p.stderr[-200:])
    ctx.run(["as", "--32", "-o", "other.o", "other.s"])
    ctx.run(["as", "--32", "-o", "main.o", "main.s"])
    _ld32(ctx, "-shared", "-soname", "libssl.so.3", "-o", "lib/libssl.so.3",
          "ssl.o")
    _ld32(ctx, "-shared", "-soname", "libother.so.1", "-o",
          "lib/libother.so.1", "other.o")
    _stub_library(ctx, "libssl.so.3", "SSL_write", subdir="wrong")
    _ld32(ctx, "-pie", "--dynamic-linker", "/lib/ld-linux.so.2",
          "--enable-new-dtags", "-rpath", "$ORIGIN/wrong:${ORIGIN}/lib",
          "-o", "prog32", "main.o", "lib/libssl.so.3")
    r = doctor(ctx, os.path.join(t, "prog32")).expect(
        0, program=["ELF 32-bit", "glibc", "interpreter /lib/ld-linux.so.2"],
        plain=_plain_covered(),
        https="linked dynamically: %s/lib/libssl.so.3)" % t)
    assert any("32-bit" in n for n in r.notes), str(r)
    # SSL_write linked into the program itself: built in.
    _ld32(ctx, "-pie", "--dynamic-linker", "/lib/ld-linux.so.2", "-rpath",
          "$ORIGIN/lib", "-o", "builtin32", "main.o", "ssl.o",
          "lib/libother.so.1")
    doctor(ctx, os.path.join(t, "builtin32")).expect(
        1, program=["ELF 32-bit", "dynamically linked"],
        https="OpenSSL is built into the executable (it defines SSL_write)")


def test_doctor_script_follows_interpreter(ctx):
    script = ctx.write("#!%s -u\nprint('hi')\n" % PYTHON, "agent.py")
    os.chmod(script, 0o755)
    r = _python_ssl(ctx, script)
    r.expect(0, script=[script, "#!" + PYTHON])
    sh = ctx.write("#!/bin/sh\nexec curl \"$@\"\n", "wrapper.sh")
    _error(ctx, sh, words=["shell script", "#!/bin/sh", "Next step"])


# -- errors ----------------------------------------------------------------------

def test_doctor_not_elf(ctx):
    text = ctx.write("just some text, not a program\n", "notes.txt")
    _error(ctx, text, words=[text, "not an ELF file"])
    _error(ctx, ctx.write("", "empty"), words=["not an ELF file"])
    _error(ctx, ctx.tmp, words=["is a directory"])
    fifo = os.path.join(ctx.tmp, "fifo")
    os.mkfifo(fifo)
    _error(ctx, fifo, words=["not a regular file"])   # and does not block
    # ELF magic with another class, and a big-endian header.
    _error(ctx, ctx.write(b"\x7fELF\x03\x01\x01" + b"\0" * 60, "class3"),
           words=["unknown ELF class"])
    _error(ctx, ctx.write(b"\x7fELF\x02\x02\x01" + b"\0" * 60, "bigend"),
           words=["big-endian"])


def test_doctor_truncated_elf(ctx):
    with open(require_tool(), "rb") as f:
        data = f.read()
    for cut in (3, 15, 16, 40, 63, 64, 100, 1000, 5000, len(data) // 2,
                len(data) - 1):
        path = ctx.write(data[:cut], "cut%d" % cut)
        r = _error(ctx, path)
        want = "not an ELF file" if cut < 16 else "truncated"
        assert want in r.err, "cut at %d: %s" % (cut, r)


def test_doctor_corrupt_elf(ctx):
    with open(require_tool(), "rb") as f:
        data = bytearray(f.read())
    wrong = dict(
        phoff=(32, "<Q", 1 << 60), shoff=(40, "<Q", len(data) - 8),
        phentsize=(54, "<H", 7), phnum=(56, "<H", 0xfff0),
        shnum=(60, "<H", 0xfff0))
    for name, (off, fmt, value) in wrong.items():
        bad = bytearray(data)
        struct.pack_into(fmt, bad, off, value)
        r = _error(ctx, ctx.write(bytes(bad), "bad_" + name))
        assert "corrupt" in r.err or "truncated" in r.err, \
            "%s: %s" % (name, r)


def test_doctor_missing_program(ctx):
    _error(ctx, "retrysafe-no-such-program",
           words=["retrysafe-no-such-program", "not found in PATH"])
    _error(ctx, "/nonexistent/prog",
           words=["/nonexistent/prog", "No such file"])


def test_doctor_not_a_program(ctx):
    obj = os.path.join(ctx.tmp, "tiny.o")
    src = ctx.write(TINY_C, "tiny.c")
    ctx.run([need(os.environ.get("CC", "cc")), "-c", "-o", obj, src])
    _error(ctx, obj, words=["object file", "not a program"])
    lib = _stub_library(ctx, "libthing.so.1", "thing")
    _error(ctx, lib, words=["shared library", "not a program"])


def test_doctor_usage(ctx):
    _error(ctx, words=["usage: retrysafe doctor PROGRAM"])
    _error(ctx, "a", "b", words=["usage"])
    p = ctx.tool("doctor", "--help")
    assert b"usage: retrysafe doctor PROGRAM" in p.stdout, p.stdout
    p = ctx.tool("--help")
    assert b"doctor PROGRAM" in p.stdout, p.stdout
