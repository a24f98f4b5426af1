"""The motivating case. A server that honours idempotency keys takes 2 s to
perform an operation; the client gives up after 1 s and retries. Without the
shim every retry performs the operation again; with it the retries carry the
first attempt's key and the operation happens once."""

from harness import PYTHON, expected_key, timeout

BODY = "amount=2000&currency=usd"
PATH = "/v1/charges"


def _impatient_curl(ctx, server, env):
    # 3 attempts, 1 s each, 1 s apart: about 5 s.
    return ctx.run(["curl", "-q", "-sS", "--max-time", "1", "--retry", "2",
                    "--retry-all-errors", "--retry-delay", "1", "-d", BODY,
                    server.url(PATH)], env=env, timeout=15, check=False)


@timeout(25)
def test_retry_without_shim_repeats_side_effect(ctx):
    k = ctx.key_server(delay=2.0)
    p = _impatient_curl(ctx, k, ctx.env)
    k.wait_idle(10)
    assert p.returncode != 0, "curl succeeded although every attempt " \
        "should time out"
    assert len(k.requests) == 3, "expected 3 attempts, server saw %r" % (
        k.requests,)
    assert k.count == 3, "server performed the operation %d times" % k.count


@timeout(25)
def test_retry_with_shim_performs_once(ctx):
    k = ctx.key_server(delay=2.0)
    p = _impatient_curl(ctx, k, ctx.shim_env(k.authority))
    k.wait_idle(10)
    want = expected_key("POST", k.authority, PATH, BODY).decode()
    keys = [r["key"] for r in k.requests]
    assert len(keys) >= 2, "expected a retry, server saw %r" % keys
    assert keys == [want] * len(keys), "keys %r, expected %r" % (keys, want)
    assert k.count == 1, "server performed the operation %d times" % k.count
    assert p.returncode == 0, "curl never got the answer: %r" % p.stderr
    assert b'"charge": 1' in p.stdout, p.stdout


PY_RETRY = r"""
import http.client, sys, time
port, path, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
for attempt in range(4):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("POST", path, body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        print(c.getresponse().read().decode())
        break
    except OSError as e:
        print("attempt %d: %s" % (attempt + 1, e), file=sys.stderr)
        time.sleep(0.5)
else:
    sys.exit(1)
"""


@timeout(25)
def test_retry_python_loop_with_shim_performs_once(ctx):
    k = ctx.key_server(delay=2.0)
    p = ctx.run([PYTHON, "-c", PY_RETRY, k.port, PATH, BODY],
                env=ctx.shim_env(k.authority), timeout=15, check=False)
    k.wait_idle(10)
    assert len(k.requests) >= 2, "no retry happened: %r" % k.requests
    assert k.count == 1, "server performed the operation %d times" % k.count
    assert p.returncode == 0 and b'"charge": 1' in p.stdout, (p.stdout,
                                                              p.stderr)


@timeout(20)
def test_restarted_process_performs_once(ctx):
    # An orchestrator restarts a client that timed out: a new process
    # sends the same request.
    k = ctx.key_server(delay=1.5)
    env = ctx.shim_env(k.authority)
    first = ctx.run(["curl", "-q", "-sS", "--max-time", "0.5", "-d", BODY,
                     k.url(PATH)], env=env, check=False)
    assert first.returncode != 0, "first attempt should time out"
    second = ctx.run(["curl", "-q", "-sS", "--max-time", "8", "-d", BODY,
                      k.url(PATH)], env=env)
    k.wait_idle(10)
    assert k.count == 1, "server performed the operation %d times" % k.count
    assert b'"charge": 1' in second.stdout, second.stdout


@timeout(20)
def test_different_requests_each_performed(ctx):
    k = ctx.key_server()
    env = ctx.shim_env(k.authority)
    for amount in (100, 200, 100):
        ctx.run(["curl", "-q", "-sS", "-d", "amount=%d" % amount,
                 k.url(PATH)], env=env)
    k.wait_idle(5)
    assert k.count == 2, "expected 2 operations (100 twice), got %d" % k.count
    assert [r["replayed"] for r in k.requests] == [False, False, True]
