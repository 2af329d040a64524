#ifndef SWITCHYARD_MALLOC_H
#define SWITCHYARD_MALLOC_H

/* The malloc arena limit that was set when the executable was loaded: 1, or 0 when
   MALLOC_ARENA_MAX in the environment decides (see arenas.c). */
int switchyard_malloc_arena_limit(void);

#endif
