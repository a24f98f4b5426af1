"""Real programs under the shim: curl, python3 (urllib), wget, node, and a
libcurl client. Each is run once without the shim (the control) and once with
it against the same RecordingServer; the shim run must deliver the control's
bytes plus exactly one key line, with the key the contract prescribes."""

from harness import (PYTHON, assert_tagged, client, control_and_shim, need)

BODY = b"amount=2000&currency=usd&description=order-1234"
PATH = "/v1/charges"

PY_URLLIB = r"""
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                             method="POST")
with urllib.request.urlopen(req, timeout=8) as r:
    sys.stdout.write(r.read().decode())
"""

NODE_FETCH = r"""
const [url, body] = process.argv.slice(1);
fetch(url, {method: 'POST', body}).then(r => r.text()).then(
    t => { process.stdout.write(t); process.exit(0); },
    e => { console.error(e); process.exit(1); });
"""


def _check(ctx, server, run, body=BODY, path=PATH):
    ctl, got, out0, out1 = control_and_shim(
        ctx, server, run, ctx.shim_env(server.authority))
    assert out0 == out1, "client saw %r under the shim, %r without" % (
        out1, out0)
    assert_tagged(got[0].raw, ctl[0].raw, "POST", server.authority, path,
                  body)


def test_curl_post(ctx):
    s = ctx.recording_server()
    _check(ctx, s, lambda env: ctx.curl("-d", BODY, s.url(PATH),
                                        env=env).stdout)


def test_python_urllib_post(ctx):
    # http.client writes the head and the body with two send() calls.
    s = ctx.recording_server()
    _check(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_URLLIB, s.url(PATH),
                                        BODY], env=env).stdout)


def test_python_json_body_post(ctx):
    # The key covers the body bytes as sent (contract: the decoded body).
    s = ctx.recording_server()
    body = b'{"amount": 2000,\n "currency": "usd"}'
    _check(ctx, s, lambda env: ctx.run([PYTHON, "-c", PY_URLLIB, s.url(PATH),
                                        body], env=env).stdout, body=body)


def test_wget_post(ctx):
    wget = need("wget")
    s = ctx.recording_server()
    _check(ctx, s, lambda env: ctx.run(
        [wget, "-q", "-O", "-", "--no-config", "--tries=1", "--timeout=8",
         "--post-data=" + BODY.decode(), s.url(PATH)], env=env).stdout)


def test_node_fetch_post(ctx):
    node = need("node")
    s = ctx.recording_server()
    _check(ctx, s, lambda env: ctx.run([node, "-e", NODE_FETCH, s.url(PATH),
                                        BODY], env=env).stdout)


def test_libcurl_client_post(ctx):
    s = ctx.recording_server()
    exe = client("curl_post")
    _check(ctx, s, lambda env: ctx.run([exe, s.url(PATH), BODY],
                                       env=env).stdout)


def test_libcurl_client_extra_headers(ctx):
    s = ctx.recording_server()
    exe = client("curl_post")
    _check(ctx, s, lambda env: ctx.run(
        [exe, s.url(PATH), BODY, "Content-Type: application/json",
         "X-Trace: abc"], env=env).stdout)
