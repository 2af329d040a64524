#include "CSwitchyardMalloc.h"

#include <stdlib.h>
#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>
#endif

static int arena_limit = 0;

/* glibc gives threads their own malloc arenas (up to 8 per core), and memory freed into one
   arena is not reused by threads of another. Messages are allocated on source threads and freed
   on target threads, so with several arenas resident memory grows to several times the byte
   budget. One arena keeps it close to the budget (docs/architecture.md, docs/benchmarks.md).

   glibc fixes the number of arenas it allows the first time a second thread allocates, so the
   limit is set here, while the executable is loaded and only the main thread exists; set from
   Swift code it would come too late, after the runtime's threads have made their arenas. */
__attribute__((constructor)) static void switchyard_limit_malloc_arenas(void) {
#if defined(__linux__) && defined(__GLIBC__)
    if (getenv("MALLOC_ARENA_MAX") == NULL && mallopt(M_ARENA_MAX, 1) == 1) {
        arena_limit = 1;
    }
    if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL) {
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    }
#endif
}

int switchyard_malloc_arena_limit(void) {
    return arena_limit;
}
