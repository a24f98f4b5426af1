/* gnutls_post.c - sends a file's bytes over TLS with GnuTLS called directly.
 *
 * usage: gnutls_post [options] HOST PORT SNI CAFILE REQUEST_FILE
 *
 *   -s N      write in pieces of at most N bytes (default: all)
 *   -n        non-blocking socket (handshake, sends and receives in a
 *             poll() loop)
 *   -z        after GNUTLS_E_AGAIN, retry with NULL and 0 (which GnuTLS
 *             documents as "write the same data as before") instead of the
 *             same buffer and size
 *   -b N      SO_SNDBUF of N bytes
 *   -k N      send the file N times on the one connection, reading one
 *             answer after each (default 1)
 *
 * Verifies the server against CAFILE for the name SNI. Prints every answer
 * (head and Content-Length body) to stdout, and to stderr one line
 * "sends=N again=N". Exits 0 when every answer arrived.
 *
 * Built by the HTTPS tests (test_https.py) with -lgnutls.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define TIMEOUT_MS 15000

static int opt_nonblock, opt_null_retry, opt_sndbuf, opt_times = 1;
static size_t opt_piece;
static long n_sends, n_again;

static void die(const char *what, int err)
{
    fprintf(stderr, "gnutls_post: %s%s%s\n", what, err ? ": " : "",
            err ? gnutls_strerror(err) : "");
    exit(2);
}

static void wait_for(gnutls_session_t s, int fd)
{
    /* direction 1: blocked writing */
    short ev = gnutls_record_get_direction(s) ? POLLOUT : POLLIN;
    struct pollfd p = {.fd = fd, .events = ev};
    int n;
    do {
        n = poll(&p, 1, TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        die("timed out waiting for the socket", 0);
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("getaddrinfo", 0);
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        die("socket", 0);
    if (opt_sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt_sndbuf, sizeof opt_sndbuf);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect", 0);
    freeaddrinfo(ai);
    if (opt_nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void send_all(gnutls_session_t s, int fd, const unsigned char *buf,
                     size_t len)
{
    size_t off = 0;
    int retrying = 0;
    while (off < len) {
        size_t n = len - off;
        if (opt_piece && n > opt_piece)
            n = opt_piece;
        ssize_t r;
        if (retrying && opt_null_retry)
            r = gnutls_record_send(s, NULL, 0);
        else
            r = gnutls_record_send(s, buf + off, n);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            n_again++;
            retrying = 1;
            wait_for(s, fd);
            continue;
        }
        if (r < 0)
            die("gnutls_record_send", (int)r);
        if ((size_t)r > n) {
            fprintf(stderr, "gnutls_post: gnutls_record_send(%s) at offset "
                    "%zu returned %zd, more than the %zu bytes given\n",
                    retrying && opt_null_retry ? "NULL, 0" : "buf, n", off,
                    r, n);
            exit(2);
        }
        n_sends++;
        retrying = 0;
        off += (size_t)r;
    }
}

static size_t recv_some(gnutls_session_t s, int fd, unsigned char *buf,
                        size_t cap)
{
    for (;;) {
        ssize_t r = gnutls_record_recv(s, buf, cap);
        if (r >= 0)
            return (size_t)r;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            wait_for(s, fd);
            continue;
        }
        die("gnutls_record_recv", (int)r);
    }
}

static void read_answer(gnutls_session_t s, int fd)
{
    static unsigned char buf[65536];
    size_t have = 0, need = 0;
    for (;;) {
        if (have == sizeof buf)
            die("answer too large", 0);
        size_t got = recv_some(s, fd, buf + have, sizeof buf - have);
        if (got == 0)
            die("connection closed before the whole answer", 0);
        have += got;
        unsigned char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end == NULL)
            continue;
        size_t head = (size_t)(end - buf) + 4;
        size_t length = 0;
        for (unsigned char *p = buf; p < end; p++) {
            if (strncasecmp((char *)p, "\r\nContent-Length:", 17) == 0) {
                length = strtoul((char *)p + 17, NULL, 10);
                break;
            }
        }
        need = head + length;
        if (have >= need)
            break;
    }
    if (have != need)
        die("more bytes than one answer", 0);
    fwrite(buf, 1, need, stdout);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open the request file", 0);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        die("cannot read the request file", 0);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "s:nzb:k:")) != -1) {
        switch (c) {
        case 's': opt_piece = strtoul(optarg, NULL, 10); break;
        case 'n': opt_nonblock = 1; break;
        case 'z': opt_null_retry = 1; break;
        case 'b': opt_sndbuf = atoi(optarg); break;
        case 'k': opt_times = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: gnutls_post [options] HOST PORT SNI "
                            "CAFILE REQUEST_FILE\n");
            return 2;
        }
    }
    if (argc - optind != 5) {
        fprintf(stderr, "usage: gnutls_post [options] HOST PORT SNI CAFILE "
                        "REQUEST_FILE\n");
        return 2;
    }
    const char *host = argv[optind], *port = argv[optind + 1];
    const char *sni = argv[optind + 2], *cafile = argv[optind + 3];
    size_t len;
    unsigned char *req = read_file(argv[optind + 4], &len);

    int rc;
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0)
        die("credentials", rc);
    if ((rc = gnutls_certificate_set_x509_trust_file(cred, cafile,
                                                     GNUTLS_X509_FMT_PEM)) <= 0)
        die("trust file", rc);
    if ((rc = gnutls_init(&s, GNUTLS_CLIENT)) < 0)
        die("gnutls_init", rc);
    if ((rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni, strlen(sni))) < 0)
        die("server name", rc);
    if ((rc = gnutls_set_default_priority(s)) < 0)
        die("priority", rc);
    if ((rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
        die("credentials_set", rc);
    gnutls_session_set_verify_cert(s, sni, 0);

    int fd = connect_to(host, port);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
    while ((rc = gnutls_handshake(s)) < 0) {
        if (gnutls_error_is_fatal(rc))
            die("handshake", rc);
        if (opt_nonblock)
            wait_for(s, fd);
    }
    for (int i = 0; i < opt_times; i++) {
        send_all(s, fd, req, len);
        read_answer(s, fd);
    }
    fflush(stdout);
    fprintf(stderr, "sends=%ld again=%ld\n", n_sends, n_again);
    gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    free(req);
    return 0;
}
