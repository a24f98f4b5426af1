"""mitm_key_addon.py - the alternative to the shim, for `make bench`: a
mitmproxy addon that adds an Idempotency-Key to every request it forwards,
an HMAC-SHA256 of the method, host, path and body, as the shim derives its
keys from the request (without the shim's journal, window or guard).

usage: mitmdump --mode reverse:http://HOST:PORT -s mitm_key_addon.py
The key's secret is RETRYSAFE_SECRET, as for the shim.
"""
import hashlib
import hmac
import os

SECRET = os.environ.get("RETRYSAFE_SECRET", "bench-secret").encode()


class IdempotencyKey:
    def request(self, flow):
        req = flow.request
        mac = hmac.new(SECRET, digestmod=hashlib.sha256)
        for part in (req.method.encode(), req.host_header.encode() if req.host_header else b"",
                     req.path.encode()):
            # Each part ends with a NUL so that no two requests' parts run
            # together into the same bytes.
            mac.update(part + b"\0")
        mac.update(req.raw_content or b"")
        req.headers["Idempotency-Key"] = mac.hexdigest()[:32]


addons = [IdempotencyKey()]
