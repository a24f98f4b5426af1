"""The launcher: `retrysafe run --hosts H [--mode M] [--journal P]
[--scope S] -- CMD ARGS...` sets the RETRYSAFE_* variables and LD_PRELOAD
(keeping an existing LD_PRELOAD) and execs CMD; --help and --version."""

import os
import re

from harness import (LIB, PYTHON, ROOT, assert_tagged, exchange, preload,
                     require_lib, require_tool)

BODY = b"amount=2000&currency=usd"
PATH = "/v1/charges"

SHOW_ENV = r"""
import os, sys
names = ["LD_PRELOAD", "RETRYSAFE_HOSTS", "RETRYSAFE_MODE",
         "RETRYSAFE_JOURNAL", "RETRYSAFE_SCOPE"]
for n in names:
    print("%s=%s" % (n, os.environ.get(n, "<unset>")))
with open("/proc/self/maps") as f:
    maps = f.read()
print("MAPPED=" + ",".join(sorted({l.split()[-1] for l in maps.splitlines()
                                  if l.split()[-1].endswith(".so")
                                  or ".so." in l.split()[-1]})))
"""


def _show_env(ctx, args, env=None):
    tool = require_tool()
    require_lib()
    p = ctx.run([tool, "run"] + args + ["--", PYTHON, "-c", SHOW_ENV],
                env=env)
    out = {}
    for line in p.stdout.decode().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def _is_our_lib(path):
    return (os.path.basename(path) == "libretrysafe.so"
            and os.path.exists(path)
            and os.path.samefile(path, LIB))


def test_launcher_run_tags(ctx):
    tool = require_tool()
    require_lib()
    s = ctx.recording_server()
    _, ctl = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH)))
    out, got = exchange(s, lambda: ctx.run(
        [tool, "run", "--hosts", s.authority, "--", "curl", "-q", "-sS",
         "-d", BODY, s.url(PATH)]).stdout)
    assert out == b"ok", out
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH, BODY)


def test_launcher_scope(ctx):
    tool = require_tool()
    require_lib()
    s = ctx.recording_server()
    _, ctl = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH)))
    _, got = exchange(s, lambda: ctx.run(
        [tool, "run", "--hosts", s.authority, "--scope", "run-42", "--",
         "curl", "-q", "-sS", "-d", BODY, s.url(PATH)]))
    assert_tagged(got[0].raw, ctl[0].raw, "POST", s.authority, PATH, BODY,
                  scope="run-42")


def test_launcher_sets_variables(ctx):
    journal = os.path.join(ctx.tmp, "j.db")
    v = _show_env(ctx, ["--hosts", "api.example.test,*.example.org",
                        "--mode", "guard", "--journal", journal,
                        "--scope", "task-7"])
    assert v.get("RETRYSAFE_HOSTS") == "api.example.test,*.example.org", v
    assert v.get("RETRYSAFE_MODE") == "guard", v
    assert v.get("RETRYSAFE_JOURNAL") == journal, v
    assert v.get("RETRYSAFE_SCOPE") == "task-7", v
    pre = [p for p in re.split(r"[: ]", v.get("LD_PRELOAD", "")) if p]
    assert any(_is_our_lib(p) for p in pre), (
        "LD_PRELOAD=%r does not name build/libretrysafe.so" % v["LD_PRELOAD"])
    assert any(_is_our_lib(p) for p in v["MAPPED"].split(",")), (
        "libretrysafe.so not loaded in the child: %s" % v["MAPPED"])


def test_launcher_keeps_existing_ld_preload(ctx):
    existing = None
    for cand in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/libm.so.6",
                 "/lib/libm.so.6", "/lib64/libm.so.6"):
        if os.path.exists(cand):
            existing = cand
            break
    assert existing, "no libm to preload"
    # (preload(): a sanitized tool needs the ASan runtime first too.)
    env = dict(ctx.env, LD_PRELOAD=preload(existing))
    v = _show_env(ctx, ["--hosts", "127.0.0.1"], env=env)
    pre = [p for p in re.split(r"[: ]", v.get("LD_PRELOAD", "")) if p]
    assert existing in pre, "existing LD_PRELOAD lost: %r" % v["LD_PRELOAD"]
    assert any(_is_our_lib(p) for p in pre), (
        "LD_PRELOAD=%r does not name build/libretrysafe.so" % v["LD_PRELOAD"])
    assert any(_is_our_lib(p) for p in v["MAPPED"].split(",")), (
        "libretrysafe.so not loaded: %s" % v["MAPPED"])


def test_launcher_exit_status_and_args(ctx):
    tool = require_tool()
    p = ctx.run([tool, "run", "--hosts", "127.0.0.1", "--", "sh", "-c",
                 'printf "%s|" "$@"; exit 7', "sh", "a b", "--hosts", ""],
                check=False)
    assert p.returncode == 7, (p.returncode, p.stderr)
    assert p.stdout == b"a b|--hosts||", p.stdout


def test_launcher_missing_command(ctx):
    tool = require_tool()
    p = ctx.run([tool, "run", "--hosts", "127.0.0.1", "--",
                 os.path.join(ctx.tmp, "no-such-program")], check=False)
    assert p.returncode != 0, "exit 0 for a program that does not exist"
    assert p.stderr, "no message for a program that does not exist"


def test_launcher_help(ctx):
    tool = require_tool()
    p = ctx.run([tool, "--help"])
    text = (p.stdout + p.stderr).decode(errors="replace")
    assert re.search(r"usage", text, re.I), text
    assert "run" in text and "--hosts" in text, text


def test_launcher_run_without_command_fails(ctx):
    tool = require_tool()
    p = ctx.run([tool, "run", "--hosts", "127.0.0.1"], check=False)
    assert p.returncode != 0, "exit 0 without a command"


def test_launcher_version(ctx):
    tool = require_tool()
    with open(os.path.join(ROOT, "Makefile")) as f:
        m = re.search(r"^VERSION\s*:?=\s*(\S+)", f.read(), re.M)
    p = ctx.run([tool, "--version"])
    text = p.stdout.decode(errors="replace")
    assert m and m.group(1) in text, "version %r not in %r" % (
        m and m.group(1), text)
