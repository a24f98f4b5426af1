"""Test certificates for the TLS servers, made with the openssl command.

A self-signed CA and a server certificate it signs, for "localhost" and
127.0.0.1 (subjectAltName DNS:localhost, IP:127.0.0.1). They are generated
once per run of the suite: into the runner's temp directory (the parent of
every test's own directory), under a lock so tests running side by side
make one set between them, and reused by every later test of the run.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile

from harness import Skip

CA_SUBJECT = "/CN=retrysafe test CA"
SERVER_NAME = "localhost"
SERVER_IP = "127.0.0.1"
DAYS = "2"

_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:%s, IP:%s
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
""" % (SERVER_NAME, SERVER_IP)


class Certs:
    """Paths of one generated set: ca (the CA certificate clients trust),
    cert and key (the server's), chain (server certificate then CA)."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.cert = os.path.join(directory, "server.pem")
        self.key = os.path.join(directory, "server.key")
        self.chain = os.path.join(directory, "chain.pem")

    def complete(self):
        return all(os.path.exists(p)
                   for p in (self.ca, self.cert, self.key, self.chain))

    def client_env(self, env):
        """env plus the variables that make python (ssl, requests) and
        OpenSSL's default verify paths trust the test CA."""
        env = dict(env)
        env.update(SSL_CERT_FILE=self.ca, REQUESTS_CA_BUNDLE=self.ca,
                   CURL_CA_BUNDLE=self.ca)
        return env


def _openssl(args, cwd):
    exe = shutil.which("openssl")
    if exe is None:
        raise Skip("openssl command not installed (needed to make test "
                   "certificates)")
    p = subprocess.run([exe] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s"
                             % (" ".join(args[:2]),
                                p.stdout.decode(errors="replace")[-800:]))


def generate(directory):
    """Writes a CA and a server certificate into directory (must exist)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    _openssl(["req", "-x509"] + ec +
             ["-keyout", "ca.key", "-out", "ca.pem", "-days", DAYS,
              "-subj", CA_SUBJECT,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    _openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr",
                             "-subj", "/CN=" + SERVER_NAME], directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(_SERVER_EXT)
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
              "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
              "-days", DAYS, "-sha256", "-extfile", "server.ext"], directory)
    with open(os.path.join(directory, "chain.pem"), "wb") as out:
        for fn in ("server.pem", "ca.pem"):
            with open(os.path.join(directory, fn), "rb") as f:
                out.write(f.read())


def for_run(test_tmp):
    """The run's certificates, generating them on first use. test_tmp is a
    test's own temp directory; the set lives in its parent (the runner's
    directory for this run, removed when the run ends)."""
    parent = os.path.dirname(os.path.abspath(test_tmp))
    final = os.path.join(parent, "tls-certs")
    certs = Certs(final)
    if certs.complete():
        return certs
    with open(os.path.join(parent, ".tls-certs.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not certs.complete():
            work = tempfile.mkdtemp(prefix=".tls-certs-", dir=parent)
            generate(work)
            os.rename(work, final)
    return certs
