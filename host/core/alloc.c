/*
** alloc.c: the allocator of a host's Lua state.
**
** Lua tells its allocator the size of every block it frees, so small
** blocks need no header: each size (rounded up to 16 bytes, up to 1 KB)
** has a free list, and new blocks are cut from 256 KB slabs (mapped whole
** after the first, which saves a page fault per 4 KB). A parked
** task is made of such blocks (its thread, stack, three CallInfos, its
** Task object): malloc's 8-byte header and 16-byte rounding cost it 77
** bytes, about 5%, and malloc/free were a sixth of the instructions of a
** spawn. jemalloc, mimalloc and tcmalloc do worse than glibc here: their
** size classes round a 720-byte Lua stack up to 768 (docs/embedding.md has
** the figures). Larger blocks go to malloc.
**
** Freed small blocks stay on their list for reuse until the host is freed;
** a spike of tasks keeps its memory for the next one, as CPython's pymalloc
** does. Under AddressSanitizer, or with LASYNC_ALLOC=system in the
** environment (for valgrind), every block goes to malloc, so tools see each
** one.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <lauxlib.h>
#include "core/core.h"

#define SLAB_SIZE (256 * 1024)
#define SLAB_HEAD 16                    /* keeps blocks 16-byte aligned */

#if defined(__SANITIZE_ADDRESS__)
#define FORCE_SYSTEM 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORCE_SYSTEM 1
#endif
#endif
#ifndef FORCE_SYSTEM
#define FORCE_SYSTEM 0
#endif

static void *system_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud; (void)osize;
  if (nsize == 0) { free(ptr); return NULL; }
  return realloc(ptr, nsize);
}

static int pooled(size_t size) { return size <= LASYNC_POOL_MAX; }
static size_t class_of(size_t size) { return (size + 15) >> 4; }

static void *pool_get(lasync_Alloc *A, size_t size) {
  size_t c = class_of(size);
  void *p = A->free[c];
  if (p != NULL) {
    A->free[c] = *(void **)p;
    return p;
  }
  if (A->cur == NULL || (size_t)(A->end - A->cur) < c << 4) {
    /* After the first, slabs come in whole (MAP_POPULATE): one system call
    ** instead of a page fault per 4 KB (7% of a spawn of 200,000 tasks). A
    ** program that needs one slab, most, does not pay for it. */
    int populate = A->slabs != NULL ? MAP_POPULATE : 0;
    char *slab = (char *)mmap(NULL, SLAB_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | populate, -1, 0);
    if (slab == MAP_FAILED) return NULL;
    *(void **)slab = A->slabs;           /* the rest of the old slab is lost:
                                            at most 1 KB of 256 */
    A->slabs = slab;
    A->cur = slab + SLAB_HEAD;
    A->end = slab + SLAB_SIZE;
  }
  p = A->cur;
  A->cur += c << 4;
  return p;
}

static void pool_put(lasync_Alloc *A, void *p, size_t size) {
  size_t c = class_of(size);
  *(void **)p = A->free[c];
  A->free[c] = p;
}

void *lasync__alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lasync_Alloc *A = (lasync_Alloc *)ud;
  void *p;
  if (ptr == NULL) osize = 0;            /* then osize only tells the type */
  if (nsize == 0) {
    if (ptr == NULL) return NULL;
    if (!pooled(osize)) free(ptr);
    else if (!A->closing) pool_put(A, ptr, osize);
    return NULL;
  }
  if (ptr != NULL && !pooled(osize) && !pooled(nsize))
    return realloc(ptr, nsize);
  if (ptr != NULL && pooled(osize) && pooled(nsize) &&
      class_of(osize) == class_of(nsize))
    return ptr;
  p = pooled(nsize) ? pool_get(A, nsize) : malloc(nsize);
  if (p == NULL) return NULL;            /* Lua collects and tries again */
  if (ptr != NULL) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    lasync__alloc(A, ptr, osize, 0);
  }
  return p;
}

lua_Alloc lasync__alloc_init(lasync_Alloc *A) {
  const char *e = getenv("LASYNC_ALLOC");
  memset(A, 0, sizeof *A);
  if (FORCE_SYSTEM || (e != NULL && strcmp(e, "system") == 0)) return system_alloc;
  return lasync__alloc;
}

/* lua_close is about to free every object: small blocks need not go back
** to their lists (writing each list link touched every block once more,
** 10 ms at the end of a run of 200,000 tasks), the slabs go whole. */
void lasync__alloc_closing(lasync_Alloc *A) { A->closing = 1; }

void lasync__alloc_close(lasync_Alloc *A) {
  while (A->slabs != NULL) {
    void *next = *(void **)A->slabs;
    munmap(A->slabs, SLAB_SIZE);
    A->slabs = next;
  }
  memset(A, 0, sizeof *A);
}
