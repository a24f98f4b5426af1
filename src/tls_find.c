/* tls_find.c - finding the real TLS library among the loaded objects. */
#include "tls_find.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* dl_iterate_phdr holds the loader's lock while it calls us: calling
 * dlopen from there can deadlock against a thread that is loading a
 * library. So the names are collected first and opened afterwards. */
#define TLS_FIND_MAX 512

struct names {
    char *name[TLS_FIND_MAX];
    int n;
};

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct names *names = arg;
    if (info->dlpi_name && info->dlpi_name[0] && names->n < TLS_FIND_MAX)
        names->name[names->n++] = strdup(info->dlpi_name);
    return 0;
}

void *tls_find_library(const char *symbol)
{
    Dl_info self;
    void *own_base = dladdr((void *)tls_find_library, &self) ? self.dli_fbase : NULL;
    struct names names = { .n = 0 };
    dl_iterate_phdr(collect, &names);
    void *found = NULL;
    for (int i = 0; i < names.n; i++) {
        void *handle = !found && names.name[i]
                           ? dlopen(names.name[i], RTLD_LAZY | RTLD_NOLOAD) : NULL;
        void *fn = handle ? dlsym(handle, symbol) : NULL;
        Dl_info where;
        /* The handle is kept, so the object found stays loaded. */
        if (fn && dladdr(fn, &where) && where.dli_fbase != own_base)
            found = handle;
        else if (handle)
            dlclose(handle);
        free(names.name[i]);
    }
    return found;
}
