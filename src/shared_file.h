/* shared_file.h - what the files mapped shared beside the journal (the
 * seen filter, the claim table) have in common. */
#ifndef RETRYSAFE_SHARED_FILE_H
#define RETRYSAFE_SHARED_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

/* Which file a mapping came from, so that a process can tell when the
 * file at its path is no longer the one it maps. */
struct file_id {
    dev_t dev;
    ino_t ino;       /* 0: none */
};

/* Gives a new file its size with its blocks allocated where the
 * filesystem can: a page of a sparse file touched on a full disk would be
 * a SIGBUS in the host, not an error. Returns 0 or -1. */
static inline int shared_file_size(int fd, off_t size)
{
    int rc = posix_fallocate(fd, 0, size);
    if (rc == EOPNOTSUPP || rc == ENOSYS || rc == EINVAL)
        return ftruncate(fd, size);   /* not on this filesystem: sparse */
    return rc == 0 ? 0 : -1;
}

#endif
