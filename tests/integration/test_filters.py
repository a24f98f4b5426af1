"""What gets tagged and with which header: enabled hosts (host, host:port,
*.suffix, *, lists, per-host header names), methods, RETRYSAFE_HEADER, and
requests that already carry a key. Everything not tagged arrives unchanged."""

from harness import (assert_bytes, assert_tagged, control_and_shim, exchange)

BODY = b"amount=2000&currency=usd"
PATH = "/v1/charges"


def _curl(ctx, *args):
    return lambda env: ctx.curl(*args, env=env).stdout


def _untouched(ctx, s, run, env, n=1):
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env, n)
    assert out0 == out1, "client saw %r under the shim, %r without" % (
        out1, out0)
    for c, g in zip(ctl, got):
        assert_bytes(c.raw, g.raw)


def _tagged(ctx, s, run, env, method="POST", authority=None, path=PATH,
            body=BODY, header="Idempotency-Key"):
    ctl, got, out0, out1 = control_and_shim(ctx, s, run, env)
    assert out0 == out1, "client saw %r under the shim, %r without" % (
        out1, out0)
    return assert_tagged(got[0].raw, ctl[0].raw, method,
                         authority or s.authority, path, body, header=header)


def test_get_untouched(ctx):
    s = ctx.recording_server()
    _untouched(ctx, s, _curl(ctx, s.url(PATH + "?limit=3")),
               ctx.shim_env(s.authority))


def test_post_to_other_port_untouched(ctx):
    s = ctx.recording_server()
    other = ctx.recording_server()
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
               ctx.shim_env(other.authority))


def test_post_to_other_host_untouched(ctx):
    s = ctx.recording_server()
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
               ctx.shim_env("api.example.test,127.0.0.2,*.0.0.1:1"))


def test_no_hosts_nothing_tagged(ctx):
    s = ctx.recording_server()
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), ctx.shim_env())


def test_empty_hosts_nothing_tagged(ctx):
    s = ctx.recording_server()
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), ctx.shim_env(""))


def test_host_without_port_matches_any_port(ctx):
    s = ctx.recording_server()
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
            ctx.shim_env("127.0.0.1"))


def test_host_in_list(ctx):
    s = ctx.recording_server()
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
            ctx.shim_env("api.example.test,%s,*.example.org" % s.authority))


def test_star_tags_every_host(ctx):
    s = ctx.recording_server()
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), ctx.shim_env("*"))


def test_suffix_host(ctx):
    # curl --resolve sends "Host: api.example.test:PORT" to 127.0.0.1.
    s = ctx.recording_server()
    env = ctx.shim_env("*.example.test")
    for name, tagged in (("api.example.test", True),
                         ("eu.api.example.test", True),
                         ("example.test.evil", False),
                         ("badexample.test", False)):
        url = "http://%s:%d%s" % (name, s.port, PATH)
        run = _curl(ctx, "--resolve", "%s:%d:127.0.0.1" % (name, s.port),
                    "-d", BODY, url)
        if tagged:
            _tagged(ctx, s, run, env, authority="%s:%d" % (name, s.port))
        else:
            _untouched(ctx, s, run, env)


def test_methods_put_tags_put_not_post(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, methods="PUT")
    _tagged(ctx, s, _curl(ctx, "-X", "PUT", "-d", BODY, s.url(PATH)), env,
            method="PUT")
    _untouched(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), env)


def test_methods_list(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, methods="POST,PATCH")
    _tagged(ctx, s, _curl(ctx, "-X", "PATCH", "-d", BODY, s.url(PATH)), env,
            method="PATCH")
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), env)
    _untouched(ctx, s, _curl(ctx, "-X", "PUT", "-d", BODY, s.url(PATH)), env)


def test_application_key_kept(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    for line in ("idempotency-key: mine", "Idempotency-Key: mine",
                 "IDEMPOTENCY-KEY:mine"):
        _untouched(ctx, s, _curl(ctx, "-H", line, "-d", BODY, s.url(PATH)),
                   env)


def test_application_key_kept_custom_header(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority, header="X-Idem-Key")
    _untouched(ctx, s, _curl(ctx, "-H", "x-idem-key: mine", "-d", BODY,
                             s.url(PATH)), env)


def test_per_host_header_name(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env("api.example.test=Other-Key,%s=X-Request-Id"
                       % s.authority)
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), env,
            header="X-Request-Id")
    # the application's own X-Request-Id stands
    _untouched(ctx, s, _curl(ctx, "-H", "x-request-id: mine", "-d", BODY,
                             s.url(PATH)), env)


def test_header_variable(ctx):
    s = ctx.recording_server()
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)),
            ctx.shim_env(s.authority, header="X-Idem-Key"),
            header="X-Idem-Key")


def test_per_host_header_beats_header_variable(ctx):
    s = ctx.recording_server()
    other = ctx.recording_server()
    env = ctx.shim_env("%s=X-Request-Id,%s" % (s.authority, other.authority),
                       header="X-Idem-Key")
    _tagged(ctx, s, _curl(ctx, "-d", BODY, s.url(PATH)), env,
            header="X-Request-Id")
    _tagged(ctx, other, _curl(ctx, "-d", BODY, other.url(PATH)), env,
            header="X-Idem-Key")


def test_post_without_body(ctx):
    s = ctx.recording_server()
    _tagged(ctx, s, _curl(ctx, "-X", "POST", s.url(PATH)),
            ctx.shim_env(s.authority), body=b"")


def test_two_servers_one_enabled(ctx):
    # One process talks to an enabled and a non-enabled host.
    s = ctx.recording_server()
    other = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    s.clear()
    other.clear()
    ctx.curl("-d", BODY, s.url(PATH), "--next", "-d", BODY, other.url(PATH),
             env=env)
    got = s.wait_requests(1)[0]
    plain = other.wait_requests(1)[0]
    assert len(got.header_values("Idempotency-Key")) == 1, got.raw
    assert plain.header_values("Idempotency-Key") == [], plain.raw
    _, ctl = exchange(other, lambda: ctx.curl("-d", BODY, other.url(PATH)))
    assert_bytes(ctl[0].raw, plain.raw)


def test_matching_uses_host_header(ctx):
    # The connection goes to 127.0.0.1:PORT either way; what counts is the
    # Host header (api.example.test:PORT here).
    s = ctx.recording_server()
    name = "api.example.test"
    run = _curl(ctx, "--resolve", "%s:%d:127.0.0.1" % (name, s.port), "-d",
                BODY, "http://%s:%d%s" % (name, s.port, PATH))
    _untouched(ctx, s, run, ctx.shim_env(s.authority))
    _tagged(ctx, s, run, ctx.shim_env("%s:%d" % (name, s.port)),
            authority="%s:%d" % (name, s.port))
    _untouched(ctx, s, run, ctx.shim_env("%s:80" % name))
