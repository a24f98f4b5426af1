"""The key: the same for the same request whoever sends it, different when
method, authority, path, scope, body or secret differ, and computed over the
normalised authority."""

from harness import (PYTHON, assert_tagged, client, exchange, expected_key,
                     header_values, insert_header, assert_bytes,
                     post_request)

BODY = b"amount=2000&currency=usd"
PATH = "/v1/charges"

PY_HTTPCLIENT = r"""
import sys, http.client
host, port, path, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection(host, port, timeout=8)
c.request("POST", path, body=body.encode())
sys.stdout.write(c.getresponse().read().decode())
"""


def _key_of(req, header="Idempotency-Key"):
    vals = header_values(req.raw, header)
    assert len(vals) == 1, "expected one %s line, got %r in %r" % (
        header, vals, req.raw[:400])
    return vals[0]


def _curl_post(ctx, s, env, body=BODY, path=PATH):
    _, reqs = exchange(s, lambda: ctx.curl("-d", body, s.url(path), env=env))
    return reqs[0]


def test_same_key_from_two_processes(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    a = _curl_post(ctx, s, env)
    b = _curl_post(ctx, s, env)
    want = expected_key("POST", s.authority, PATH, BODY)
    assert _key_of(a) == want, "first process sent %r, expected %r" % (
        _key_of(a), want)
    assert _key_of(b) == want, "second process sent %r, expected %r" % (
        _key_of(b), want)


def test_same_key_from_curl_and_python(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    a = _curl_post(ctx, s, env)
    _, reqs = exchange(s, lambda: ctx.run(
        [PYTHON, "-c", PY_HTTPCLIENT, s.host, s.port, PATH, BODY], env=env))
    b = reqs[0]
    assert a.raw != b.raw, "the two clients should send different heads"
    want = expected_key("POST", s.authority, PATH, BODY)
    assert (_key_of(a), _key_of(b)) == (want, want), (
        "curl sent %r, python sent %r, expected %r both"
        % (_key_of(a), _key_of(b), want))


def test_same_key_from_libcurl_and_curl(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    a = _curl_post(ctx, s, env)
    _, reqs = exchange(s, lambda: ctx.run([client("curl_post"), s.url(PATH),
                                           BODY], env=env))
    assert _key_of(a) == _key_of(reqs[0]) == expected_key(
        "POST", s.authority, PATH, BODY)


def test_key_differs_by_body_and_path(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    cases = [(PATH, BODY), (PATH, b"amount=2001&currency=usd"),
             ("/v1/refunds", BODY), (PATH + "?expand=customer", BODY)]
    keys = []
    for path, body in cases:
        k = _key_of(_curl_post(ctx, s, env, body, path))
        want = expected_key("POST", s.authority, path, body)
        assert k == want, "%s %r: key %r, expected %r" % (path, body, k, want)
        keys.append(k)
    assert len(set(keys)) == len(keys), "keys not distinct: %r" % keys


def test_key_differs_by_method(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, methods="POST,PUT")
    post = _curl_post(ctx, s, env)
    _, reqs = exchange(s, lambda: ctx.curl("-X", "PUT", "-d", BODY,
                                           s.url(PATH), env=env))
    assert _key_of(post) == expected_key("POST", s.authority, PATH, BODY)
    assert _key_of(reqs[0]) == expected_key("PUT", s.authority, PATH, BODY)
    assert _key_of(post) != _key_of(reqs[0])


def test_scope_changes_key(ctx):
    s = ctx.recording_server()
    _, ctl = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH)))
    got = _curl_post(ctx, s, ctx.shim_env(s.authority, scope="task-42"))
    assert_tagged(got.raw, ctl[0].raw, "POST", s.authority, PATH, BODY,
                  scope="task-42")
    assert _key_of(got) != expected_key("POST", s.authority, PATH, BODY)


def test_secret_changes_key(ctx):
    s = ctx.recording_server()
    _, ctl = exchange(s, lambda: ctx.curl("-d", BODY, s.url(PATH)))
    env = ctx.shim_env(s.authority, secret="another secret")
    got = _curl_post(ctx, s, env)
    assert_tagged(got.raw, ctl[0].raw, "POST", s.authority, PATH, BODY,
                  secret="another secret")


def test_generated_secret_shared_by_processes(ctx):
    # Without RETRYSAFE_SECRET the shim keeps one secret per user (in the
    # state directory): two processes still agree on the key.
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    del env["RETRYSAFE_SECRET"]
    a, b = _curl_post(ctx, s, env), _curl_post(ctx, s, env)
    assert _key_of(a) == _key_of(b), "%r != %r" % (_key_of(a), _key_of(b))
    assert _key_of(a) != expected_key("POST", s.authority, PATH, BODY), (
        "key made with the test secret although none was set")


def _raw(ctx, s, data, env, n=1):
    f = ctx.write(data)
    out, reqs = exchange(s, lambda: ctx.run(
        [client("raw_send"), "-n", n, s.host, s.port, f], env=env).stdout, n)
    return out, reqs


def test_authority_normalised(ctx):
    # Host "LOCALHOST:80" and "localhost" name the same authority; matching
    # uses the Host header's host and port (80 when absent).
    s = ctx.recording_server()
    env = ctx.shim_env("localhost")
    want = expected_key("POST", "localhost", PATH, BODY)
    for host in (b"LocalHost:80", b"localhost", b"LOCALHOST"):
        req = post_request(host, PATH, BODY)
        _, reqs = _raw(ctx, s, req, env)
        assert_bytes(insert_header(req, "Idempotency-Key", want), reqs[0].raw,
                     "Host %s:" % host.decode())


def test_authority_keeps_other_port(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env("Example.TEST:8080")
    req = post_request(b"EXAMPLE.test:8080", PATH, BODY)
    _, reqs = _raw(ctx, s, req, env)
    assert_tagged(reqs[0].raw, req, "POST", "example.test:8080", PATH, BODY)


def test_proxy_absolute_form(ctx):
    # Through an HTTP proxy curl writes "POST http://host/path" (absolute
    # form); the authority is the target's, the path has no scheme or host.
    s = ctx.recording_server()
    target = "http://api.example.test/v1/charges?x=1"
    run = lambda env: ctx.curl("-x", s.url(""), "-d", BODY, target, env=env)
    _, ctl = exchange(s, lambda: run(ctx.env))
    assert ctl[0].target == target.encode(), ctl[0].raw
    _, got = exchange(s, lambda: run(ctx.shim_env("api.example.test")))
    assert_tagged(got[0].raw, ctl[0].raw, "POST", "api.example.test",
                  "/v1/charges?x=1", BODY)
