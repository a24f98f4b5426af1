/* tls_find.h - the loaded library that really defines a TLS function, for
 * hooks whose RTLD_NEXT lookup finds nothing (a library loaded RTLD_LOCAL,
 * as python's _ssl loads libssl). */
#ifndef RETRYSAFE_TLS_FIND_H
#define RETRYSAFE_TLS_FIND_H

/* A dlopen(RTLD_NOLOAD) handle of the first loaded object, other than this
 * library, whose scope defines symbol; NULL when none. Never loads a new
 * copy of anything; the handle is kept so that object stays loaded. */
void *tls_find_library(const char *symbol);

#endif
