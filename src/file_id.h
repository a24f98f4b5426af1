/* file_id.h - which file a shared mapping came from, so that a process can
 * tell when the file at its path is no longer the one it maps. */
#ifndef RETRYSAFE_FILE_ID_H
#define RETRYSAFE_FILE_ID_H

#include <sys/types.h>

struct file_id {
    dev_t dev;
    ino_t ino;       /* 0: none */
};

#endif
