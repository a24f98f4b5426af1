/* tls_find.c - finding the real TLS library among the loaded objects. */
#include "tls_find.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>

struct search {
    const char *symbol;
    void *self;        /* our own load address: our hooks do not count */
    void *found;
};

static int visit(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct search *s = arg;
    if (!info->dlpi_name || !info->dlpi_name[0])
        return 0;
    void *handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle)
        return 0;
    void *fn = dlsym(handle, s->symbol);
    Dl_info where;
    if (fn && dladdr(fn, &where) && where.dli_fbase != s->self) {
        s->found = handle;
        return 1;
    }
    dlclose(handle);
    return 0;
}

void *tls_find_library(const char *symbol)
{
    struct search s = { symbol, NULL, NULL };
    Dl_info self;
    if (dladdr((void *)tls_find_library, &self))
        s.self = self.dli_fbase;
    dl_iterate_phdr(visit, &s);
    return s.found;
}
