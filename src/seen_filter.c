/* seen_filter.c - a Bloom filter of fingerprints, shared through a mapped
 * file. See seen_filter.h.
 *
 * 2 MiB of bits and 4 probes: one request in about 400 pays a needless
 * journal read once a million distinct fingerprints were seen, one in
 * 10^6 after 100 000. The fingerprint is already a keyed hash (64 bits of
 * HMAC-SHA256), so its two halves give the probes directly (double
 * hashing); nothing here is secret.
 */
#include "seen_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILTER_BYTES (2u << 20)
#define FILTER_BITS ((uint64_t)FILTER_BYTES * 8)
#define FILTER_PROBES 4

struct seen_filter {
    unsigned char *bits;       /* FILTER_BYTES, mapped shared */
};

/* The file must be ours in the way the journal is (journal_sqlite.c): a
 * regular file of this user that no one else may write, of our size. A
 * new one is sized here; another process racing to size it sizes it the
 * same. */
static int usable(int fd, int *created)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022))
        return 0;
    if (st.st_size == 0 && ftruncate(fd, FILTER_BYTES) == 0) {
        *created = 1;
        return 1;
    }
    return st.st_size == FILTER_BYTES;
}

struct seen_filter *seen_filter_open(const char *path, int *created)
{
    int e = errno;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    struct seen_filter *f = NULL;
    *created = 0;
    if (fd >= 0 && usable(fd, created)) {
        /* The mapping outlives the fd: no descriptor is kept. Only this
         * code sizes the file, never smaller: a mapping past its end
         * would fault. */
        void *p = mmap(NULL, FILTER_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED && (f = malloc(sizeof(*f))))
            f->bits = p;
        else if (p != MAP_FAILED)
            munmap(p, FILTER_BYTES);
    }
    if (fd >= 0)
        close(fd);
    errno = e;
    return f;
}

void seen_filter_close(struct seen_filter *f)
{
    if (!f)
        return;
    munmap(f->bits, FILTER_BYTES);
    free(f);
}

/* The fingerprint's 64 bits (its first 16 hex digits); 0 if it is not hex,
 * which still works, as one more fingerprint. */
static uint64_t bits_of(const char *fingerprint)
{
    uint64_t v = 0;
    for (int i = 0; i < 16 && fingerprint[i]; i++) {
        char c = fingerprint[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static uint64_t probe(uint64_t h, int i)
{
    uint64_t h1 = h & 0xffffffffu, h2 = (h >> 32) | 1;
    return (h1 + (uint64_t)i * h2) % FILTER_BITS;
}

void seen_filter_add(struct seen_filter *f, const char *fingerprint)
{
    if (!f || !fingerprint || !*fingerprint)
        return;
    uint64_t h = bits_of(fingerprint);
    for (int i = 0; i < FILTER_PROBES; i++) {
        uint64_t b = probe(h, i);
        __atomic_fetch_or(&f->bits[b / 8], (unsigned char)(1u << (b % 8)),
                          __ATOMIC_RELEASE);
    }
}

int seen_filter_maybe(const struct seen_filter *f, const char *fingerprint)
{
    if (!f || !fingerprint || !*fingerprint)
        return 1;
    uint64_t h = bits_of(fingerprint);
    for (int i = 0; i < FILTER_PROBES; i++) {
        uint64_t b = probe(h, i);
        if (!(__atomic_load_n(&f->bits[b / 8], __ATOMIC_ACQUIRE) & (1u << (b % 8))))
            return 0;
    }
    return 1;
}
