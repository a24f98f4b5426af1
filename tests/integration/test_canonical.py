"""Robust fingerprints (issue 5, part 1): a JSON or form body counts in its
canonical form, so a tool call the model regenerated with other key order,
spacing or number spelling is the same request and gets the same key;
RETRYSAFE_IGNORE_FIELDS leaves fields out; a body that does not parse
counts by its bytes; `retrysafe key --content-type` predicts all of it."""

import os

from harness import (canonical_body, exchange, expected_key, header_values,
                     require_tool)

PATH = "/v1/tools/send_email"


def _post(ctx, s, body, content_type, env):
    _, reqs = exchange(s, lambda: ctx.curl(
        "-H", "Content-Type: " + content_type, "--data-binary", body,
        s.url(PATH), env=env))
    vals = header_values(reqs[0].raw, "Idempotency-Key")
    assert len(vals) == 1, reqs[0].raw
    return vals[0]


def test_regenerated_json_same_key(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    a = b'{"to":"a@example.com","subject":"Hi","amount":1.50,"tags":["x","y"]}'
    b = (b'{ "amount" : 15e-1,\n  "tags": ["x", "y"],\n  "subject": "\\u0048i",'
         b' "to": "a@example.com" }')
    ka = _post(ctx, s, a, "application/json", env)
    kb = _post(ctx, s, b, "application/json; charset=utf-8", env)
    assert ka == kb, (ka, kb)
    assert ka == expected_key("POST", s.authority, PATH, a,
                              content_type="application/json")
    # The canonical form, as the harness computes it independently.
    assert canonical_body("application/json", a) == (
        b'{"amount":15e-1,"subject":"Hi","tags":["x","y"],"to":"a@example.com"}')


def test_different_json_different_key(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    ka = _post(ctx, s, b'{"amount":1,"to":"a"}', "application/json", env)
    kb = _post(ctx, s, b'{"amount":2,"to":"a"}', "application/json", env)
    kc = _post(ctx, s, b'{"tags":["y","x"]}', "application/json", env)
    kd = _post(ctx, s, b'{"tags":["x","y"]}', "application/json", env)
    assert ka != kb and kc != kd, "never a false duplicate"


def test_reordered_form_same_key(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    ka = _post(ctx, s, b"currency=usd&amount=2000&note=a+b",
               "application/x-www-form-urlencoded", env)
    kb = _post(ctx, s, b"amount=2000&note=a%20b&currency=usd",
               "application/x-www-form-urlencoded", env)
    assert ka == kb


def test_ignored_fields_left_out(ctx):
    s = ctx.recording_server()
    env = dict(ctx.shim_env(s.authority),
               RETRYSAFE_IGNORE_FIELDS="timestamp,meta.nonce")
    ka = _post(ctx, s, b'{"to":"a","timestamp":1,"meta":{"nonce":"n1","v":1}}',
               "application/json", env)
    kb = _post(ctx, s, b'{"to":"a","timestamp":2,"meta":{"nonce":"n2","v":1}}',
               "application/json", env)
    kc = _post(ctx, s, b'{"to":"a","timestamp":2,"meta":{"nonce":"n2","v":2}}',
               "application/json", env)
    assert ka == kb and kb != kc, (ka, kb, kc)


def test_unparsable_body_counts_by_its_bytes(ctx):
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    bad = b'{"a":1,}'
    k = _post(ctx, s, bad, "application/json", env)
    assert k == expected_key("POST", s.authority, PATH, bad)   # raw bytes


def test_key_command_predicts_canonical_keys(ctx):
    tool = require_tool()
    s = ctx.recording_server()
    env = ctx.shim_env(s.authority)
    body = b'{"b": [1.0, true], "a": null}'
    sent = _post(ctx, s, body, "application/json", env)
    path = os.path.join(ctx.tmp, "body.json")
    with open(path, "wb") as f:
        f.write(b'{"a": null,\n "b": [1, true]}')   # regenerated
    p = ctx.run([tool, "key", "--content-type", "application/json", "POST",
                 s.url(PATH), path], env=env)
    assert p.stdout.strip() == sent, (p.stdout, sent)
    raw = ctx.run([tool, "key", "POST", s.url(PATH), path], env=env)
    assert raw.stdout.strip() != sent, "without --content-type the body is raw bytes"
