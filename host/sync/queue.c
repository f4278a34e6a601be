/*
** queue.c: the async.queue module: async.queue([maxsize]),
** async.lifo_queue([maxsize]), async.priority_queue([maxsize] [, less])
** and their errors QueueFull, QueueEmpty and QueueClosed.
**
** Hand-off is direct, so nothing is ever "woken to go and look": a put that
** finds getters waiting gives its item to the first of them (as the value
** its get returns), and a get that frees a slot of a full queue moves the
** first blocked putter's item into the queue and wakes the putter with its
** put done. A waiter that is cancelled leaves its list at once (its cancel
** function), so it never takes an item or a slot; one that was handed an
** item and is cancelled before it runs still returns the item (the core
** keeps that cancellation pending until its next wait). Either way no item
** is lost or duplicated.
**
** A blocked putter's item stays on its own stack (index 2 of its put call,
** in the thread that called put) until a get moves it; the wait's `data`
** points at that thread. A getter's `data` tells get from iter apart.
**
** The items live in a table (user value 1; for small bounded queues, in
** the user values themselves, see INLINE_MAX): a ring for the FIFO queue,
** a stack for LIFO, a binary heap for priority, where slot i is the item at
** 2i-1 and its put sequence number at 2i so that equal priorities come out
** in the order they were put. User value 2 is the priority `less` function.
*/
#include <lauxlib.h>
#include "sync/sync.h"

static const char QUEUE_MT[] = "lasync.Queue";  /* its address tags a Queue */
#define FULL_MT "lasync.QueueFull"
#define EMPTY_MT "lasync.QueueEmpty"
#define CLOSED_MT "lasync.QueueClosed"
#define RING_MIN 16
/* A bounded FIFO or LIFO queue of up to INLINE_MAX items keeps them in
** its own user values (slot s in s + 2), not in a table: a third fewer
** API calls per item. */
#define INLINE_MAX 256
#define SLOT_UV(s) ((int)(s) + 2)

enum { Q_FIFO, Q_LIFO, Q_PRIO };
static const char *const kind_names[] = {"Queue", "LifoQueue", "PriorityQueue"};

typedef struct Queue {
  const char *tag;                /* QUEUE_MT */
  lasync_WaitList getters, putters, joiners;
  lua_Integer maxsize;            /* 0: unbounded */
  lua_Integer size;               /* items in the table */
  lua_Integer head, cap;          /* FIFO: first slot (0-based) and slots */
  lua_Integer inline_cap;         /* slots in user values, or 0: in a table */
  lua_Integer unfinished;         /* put and not yet task_done */
  lua_Integer seq;                /* priority: puts so far, to break ties */
  unsigned version;               /* priority: bumped by every change */
  unsigned char kind, closed;
  unsigned char busy;             /* priority: a comparison is running */
} Queue;

/* lasync_waitlist_empty, inlined for the hot paths. */
#define LIST_EMPTY(l) ((l)->next == (l))

static const char iter_mark = 0;  /* `data` of a getter waiting in iter */
#define ITER_MARK ((void *)&iter_mark)

/* The methods know their queue by the tag in the struct (the fast type
** check, lasync__checkudata): the by-name lookup of luaL_checkudata was a
** third of the cost of a hand-off. */
static Queue *queue_check(lua_State *L, int i) {
  return (Queue *)lasync__checkudata(L, i, QUEUE_MT, sizeof(Queue));
}

/* Pushes an error of class mt (a "lasync.<Kind>" name): {kind, message}. */
static void queue_push_error(lua_State *L, const char *mt, const char *msg) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, mt + sizeof "lasync." - 1);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, mt);
}

static int queue_error(lua_State *L, const char *mt, const char *msg) {
  queue_push_error(L, mt, msg);
  return lua_error(L);
}

/* Cancel function of every wait here: leave the list, take nothing. */
static void queue_unlist(lasync_Wait *w) {
  lasync_waitlist_remove(w);
}

/* ------------------------------------------------------- FIFO and LIFO */

/* Re-lays the ring at tb in a table twice as large, oldest first. */
static void ring_grow(lua_State *L, Queue *q, int tb) {
  lua_Integer i, cap = q->cap ? q->cap * 2 : RING_MIN;
  lua_createtable(L, (int)cap, 0);
  for (i = 0; i < q->size; i++) {
    lua_rawgeti(L, tb, ((q->head + i) & (q->cap - 1)) + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 1);
  lua_replace(L, tb);
  q->head = 0;
  q->cap = cap;
}

/* -------------------------------------------------------- priority heap */

/* (less or nil, a, b): whether a comes first, by less or by `<`. */
static int heap_cmp(lua_State *L) {
  if (lua_isnil(L, 1)) lua_pushboolean(L, lua_compare(L, 2, 3, LUA_OPLT));
  else lua_call(L, 2, 1);
  return 1;
}

/* A comparison runs Lua code (less, or an __lt metamethod), which may use
** the queue itself: while it runs the queue is busy, and any change to it
** raises (queue_busy) instead of recursing into the heap being sifted. */
static void queue_busy(lua_State *L, Queue *q) {
  if (q->busy) luaL_error(L, "priority_queue: the less function changed the queue");
}

/* Whether the item at a comes before the one at b (stack indices),
** by less(a, b), else (equal) by sequence number. */
static int heap_before(lua_State *L, int a, lua_Integer sa, int b, lua_Integer sb) {
  Queue *q = (Queue *)lua_touserdata(L, 1);
  int i, st, r;
  for (i = 0; i < 2; i++) {
    int x = i ? b : a, y = i ? a : b;
    if (lua_getiuservalue(L, 1, 2) == LUA_TNIL && lua_type(L, x) == lua_type(L, y) &&
        (lua_type(L, x) == LUA_TNUMBER || lua_type(L, x) == LUA_TSTRING)) {
      lua_pop(L, 1);                     /* `<` of numbers or strings runs no code */
      if (lua_compare(L, x, y, LUA_OPLT)) return !i;
      continue;
    }
    lua_pushcfunction(L, heap_cmp);
    lua_insert(L, -2);
    lua_pushvalue(L, x);
    lua_pushvalue(L, y);
    q->busy++;
    st = lua_pcall(L, 3, 1, 0);
    q->busy--;
    if (st != LUA_OK) lua_error(L);
    r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (r) return !i;
  }
  return sa < sb;
}

/* Pushes the item of heap slot i; returns its sequence number. */
static lua_Integer heap_get(lua_State *L, int tb, lua_Integer i) {
  lua_Integer s;
  lua_rawgeti(L, tb, 2 * i);
  s = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, tb, 2 * i - 1);
  return s;
}

static void heap_set(lua_State *L, int tb, lua_Integer i, int item, lua_Integer s) {
  lua_pushvalue(L, item);
  lua_rawseti(L, tb, 2 * i - 1);
  lua_pushinteger(L, s);
  lua_rawseti(L, tb, 2 * i);
}

static void heap_move(lua_State *L, int tb, lua_Integer to, lua_Integer from) {
  lua_rawgeti(L, tb, 2 * from - 1);
  lua_rawseti(L, tb, 2 * to - 1);
  lua_rawgeti(L, tb, 2 * from);
  lua_rawseti(L, tb, 2 * to);
}

/* The less function may run any code, even code that changes this queue;
** the heap is changed only after all comparisons, and not at all if the
** queue changed meanwhile, so an error in less leaves it as it was. */
static void heap_check_version(lua_State *L, Queue *q, unsigned v) {
  if (q->version != v) luaL_error(L, "priority_queue: the less function changed the queue");
}

/* Adds the item at index v (sift up). */
static void heap_push(lua_State *L, Queue *q, int tb, int v) {
  lua_Integer i = q->size + 1, j;
  unsigned ver = q->version;
  while (i > 1) {
    lua_Integer ps = heap_get(L, tb, i / 2);
    int before = heap_before(L, v, q->seq, lua_gettop(L), ps);
    lua_pop(L, 1);
    if (!before) break;
    i /= 2;
  }
  heap_check_version(L, q, ver);
  for (j = q->size + 1; j > i; j /= 2) heap_move(L, tb, j, j / 2);
  heap_set(L, tb, i, v, q->seq++);
  q->version++;
}

/* Removes the first item and pushes it (sift down of the last one). */
static void heap_pop(lua_State *L, Queue *q, int tb) {
  lua_Integer n = q->size - 1, i = 1, ls, m, k;
  unsigned ver = q->version;
  int top;
  heap_get(L, tb, 1);                    /* the result */
  ls = heap_get(L, tb, q->size);         /* the last item, to re-place */
  top = lua_gettop(L);
  for (;;) {
    lua_Integer c = 2 * i, cs;
    if (c > n) break;
    cs = heap_get(L, tb, c);
    if (c + 1 <= n) {
      lua_Integer rs = heap_get(L, tb, c + 1);
      if (heap_before(L, top + 2, rs, top + 1, cs)) { c++; cs = rs; lua_replace(L, top + 1); }
      else lua_pop(L, 1);
    }
    if (!heap_before(L, top + 1, cs, top, ls)) { lua_pop(L, 1); break; }
    lua_pop(L, 1);
    i = c;
  }
  heap_check_version(L, q, ver);
  for (m = 0; (i >> m) > 1; m++) {}      /* depth of i */
  for (k = m; k > 0; k--) heap_move(L, tb, i >> k, i >> (k - 1));
  if (n > 0) heap_set(L, tb, i, top, ls);
  lua_pushnil(L);
  lua_rawseti(L, tb, 2 * q->size - 1);
  lua_pushnil(L);
  lua_rawseti(L, tb, 2 * q->size);
  lua_pop(L, 1);                         /* the last item */
  q->version++;
}

/* ------------------------------------------------------------ the store */

/* Adds the item at index v to the store. Only a priority queue's
** comparisons may raise, and then nothing has changed. The queue is at 1. */
static void store_push(lua_State *L, Queue *q, int v) {
  lua_Integer slot = q->size;            /* 0-based */
  int tb;
  queue_busy(L, q);
  if (q->inline_cap) {                   /* FIFO ring or LIFO stack */
    if (q->kind == Q_FIFO && (slot += q->head) >= q->inline_cap) slot -= q->inline_cap;
    lua_pushvalue(L, v);
    lua_setiuservalue(L, 1, SLOT_UV(slot + 1));
    q->size++;
    return;
  }
  lua_getiuservalue(L, 1, 1);
  tb = lua_gettop(L);
  if (q->kind == Q_FIFO) {
    if (q->size == q->cap) ring_grow(L, q, tb);
    lua_pushvalue(L, v);
    lua_rawseti(L, tb, ((q->head + q->size) & (q->cap - 1)) + 1);
  }
  else if (q->kind == Q_LIFO) {
    lua_pushvalue(L, v);
    lua_rawseti(L, tb, q->size + 1);
  }
  else heap_push(L, q, tb, v);
  lua_settop(L, tb - 1);
  q->size++;
}

/* Removes the next item from the store and pushes it; the queue is at 1. */
static void store_pop(lua_State *L, Queue *q) {
  lua_Integer slot;                      /* 1-based */
  queue_busy(L, q);
  if (q->kind == Q_PRIO) {
    lua_getiuservalue(L, 1, 1);
    heap_pop(L, q, lua_gettop(L));       /* may raise: nothing changed yet */
    lua_remove(L, -2);
    q->size--;
    return;
  }
  if (q->kind == Q_LIFO) slot = q->size;
  else {
    slot = q->head + 1;
    if (q->inline_cap) q->head = slot == q->inline_cap ? 0 : slot;
    else q->head = slot & (q->cap - 1);
  }
  q->size--;
  if (q->inline_cap) {
    lua_getiuservalue(L, 1, SLOT_UV(slot));
    lua_pushnil(L);
    lua_setiuservalue(L, 1, SLOT_UV(slot));
    return;
  }
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, slot);
  lua_pushnil(L);
  lua_rawseti(L, -3, slot);
  lua_remove(L, -2);
}

/* lua_pcall-able store_push for the priority queue: (queue, item). */
static int store_push_protected(lua_State *L) {
  store_push(L, (Queue *)lua_touserdata(L, 1), 2);
  return 0;
}

static int queue_isfull(Queue *q) {
  return q->maxsize > 0 && q->size >= q->maxsize;
}

/* Moves blocked putters' items into the store while there is room; each
** putter wakes with its put done, or raising the error its item caused (a
** priority queue's less failed on it). The queue is at 1. */
static void queue_refill(lua_State *L, Queue *q) {
  lasync_Wait *w;
  while (!queue_isfull(q) && (w = lasync_waitlist_pop(&q->putters)) != NULL) {
    lua_State *from = (lua_State *)w->data;
    int st = LUA_OK;
    if (q->kind != Q_PRIO) {
      lua_pushvalue(from, 2);
      lua_xmove(from, L, 1);
      store_push(L, q, lua_gettop(L));
      lua_pop(L, 1);
    }
    else {
      lua_pushcfunction(L, store_push_protected);
      lua_pushvalue(L, 1);
      lua_pushvalue(from, 2);
      lua_xmove(from, L, 1);
      st = lua_pcall(L, 2, 0, 0);
    }
    if (st == LUA_OK) {
      q->unfinished++;
      lasync_wake(w);
    }
    else lasync_wake_error(L, w);
  }
}

/* Gives the item at 2 to the first getter, or stores it if there is room;
** returns 0 when the queue is full. The queue is at 1. */
static int queue_offer(lua_State *L, Queue *q) {
  lasync_Wait *w;
  while (!LIST_EMPTY(&q->getters) && (w = lasync_waitlist_pop(&q->getters)) != NULL) {
    lua_pushvalue(L, 2);
    if (lasync_wake_values(L, w, 1)) {
      q->unfinished++;
      return 1;
    }
  }
  if (queue_isfull(q)) return 0;
  store_push(L, q, 2);
  q->unfinished++;
  return 1;
}

/* Pushes the next item (the queue at 1 is not empty); lets putters in. */
static void queue_take(lua_State *L, Queue *q) {
  store_pop(L, q);
  if (!LIST_EMPTY(&q->putters)) queue_refill(L, q);
}

/* ------------------------------------------------------- put and get */

static void queue_checkitem(lua_State *L, int i) {
  if (lua_isnoneornil(L, i)) luaL_argerror(L, i, "an item cannot be nil");
}

static int queue_put(lua_State *L) {
  Queue *q = queue_check(L, 1);
  lasync_Task *t;
  queue_checkitem(L, 2);
  if (q->closed) return queue_error(L, CLOSED_MT, "put: the queue is closed");
  if (queue_offer(L, q)) return 0;
  t = lasync_checktask(L, "put");
  lua_settop(L, 2);
  lasync_Wait *self = lasync_task_wait(t);
  self->data = L;                        /* the item stays at 2 of L */
  lasync_waitlist_push(&q->putters, self);
  self->what = "queue";
  return lasync_wait(L, self, queue_unlist, NULL, 0);
}

static int queue_put_nowait(lua_State *L) {
  Queue *q = queue_check(L, 1);
  queue_checkitem(L, 2);
  if (q->closed) return queue_error(L, CLOSED_MT, "put_nowait: the queue is closed");
  if (!queue_offer(L, q)) return queue_error(L, FULL_MT, "put_nowait: the queue is full");
  return 0;
}

/* get, and the iterator of iter (which ends instead of raising when the
** queue is closed and drained). A getter woken by close gets no value. */
static int queue_get_aux(lua_State *L, int iter) {
  Queue *q = queue_check(L, 1);
  lasync_Task *t;
  if (q->size > 0) {
    queue_take(L, q);
    return 1;
  }
  if (q->closed) {
    if (iter) return 0;
    return queue_error(L, CLOSED_MT, "get: the queue is closed");
  }
  t = lasync_checktask(L, iter ? "iter" : "get");
  lua_settop(L, 1);
  lasync_Wait *self = lasync_task_wait(t);
  self->data = iter ? ITER_MARK : NULL;
  lasync_waitlist_push(&q->getters, self);
  self->what = "queue";
  return lasync_wait(L, self, queue_unlist, NULL, 0);
}

static int queue_get(lua_State *L) { return queue_get_aux(L, 0); }
static int queue_next(lua_State *L) { return queue_get_aux(L, 1); }

static int queue_get_nowait(lua_State *L) {
  Queue *q = queue_check(L, 1);
  if (q->size > 0) {
    queue_take(L, q);
    return 1;
  }
  if (q->closed) return queue_error(L, CLOSED_MT, "get_nowait: the queue is closed");
  return queue_error(L, EMPTY_MT, "get_nowait: the queue is empty");
}

/* q:iter(): for item in q:iter() do ... end, until closed and drained. */
static int queue_iter(lua_State *L) {
  queue_check(L, 1);
  lua_pushcfunction(L, queue_next);
  lua_pushvalue(L, 1);
  return 2;
}

/* q:close(): later puts fail; gets take what is left, then fail (iter
** ends). Waiting getters (the queue is empty) and putters wake failing. */
static int queue_close(lua_State *L) {
  Queue *q = queue_check(L, 1);
  lasync_Wait *w;
  queue_busy(L, q);
  q->closed = 1;
  while ((w = lasync_waitlist_pop(&q->getters)) != NULL) {
    if (w->data == ITER_MARK) lasync_wake(w);
    else {
      queue_push_error(L, CLOSED_MT, "get: the queue was closed");
      lasync_wake_error(L, w);
    }
  }
  while ((w = lasync_waitlist_pop(&q->putters)) != NULL) {
    queue_push_error(L, CLOSED_MT, "put: the queue was closed");
    lasync_wake_error(L, w);
  }
  return 0;
}

/* -------------------------------------------------------- task_done, join */

static int queue_task_done(lua_State *L) {
  Queue *q = queue_check(L, 1);
  lasync_Wait *w;
  if (q->unfinished <= 0)
    return luaL_error(L, "task_done: called more times than items were put");
  if (--q->unfinished == 0)
    while ((w = lasync_waitlist_pop(&q->joiners)) != NULL) lasync_wake(w);
  return 0;
}

static int queue_join(lua_State *L) {
  Queue *q = queue_check(L, 1);
  lasync_Task *t;
  if (q->unfinished == 0) return 0;
  t = lasync_checktask(L, "join");
  lua_settop(L, 1);
  lasync_Wait *self = lasync_task_wait(t);
  lasync_waitlist_push(&q->joiners, self);
  self->what = "queue";
  return lasync_wait(L, self, queue_unlist, NULL, 0);
}

/* ----------------------------------------------------------- the rest */

static int queue_size(lua_State *L) {
  lua_pushinteger(L, queue_check(L, 1)->size);
  return 1;
}

static int queue_empty(lua_State *L) {
  lua_pushboolean(L, queue_check(L, 1)->size == 0);
  return 1;
}

static int queue_full(lua_State *L) {
  lua_pushboolean(L, queue_isfull(queue_check(L, 1)));
  return 1;
}

static int queue_maxsize(lua_State *L) {
  lua_pushinteger(L, queue_check(L, 1)->maxsize);
  return 1;
}

static int queue_closed(lua_State *L) {
  lua_pushboolean(L, queue_check(L, 1)->closed);
  return 1;
}

static int queue_unfinished(lua_State *L) {
  lua_pushinteger(L, queue_check(L, 1)->unfinished);
  return 1;
}

static int queue_tostring(lua_State *L) {
  Queue *q = queue_check(L, 1);
  const char *name = kind_names[q->kind];
  const char *closed = q->closed ? ", closed" : "";
  if (q->maxsize > 0)
    lua_pushfstring(L, "%s<%I/%I%s>", name, (LUAI_UACINT)q->size, (LUAI_UACINT)q->maxsize, closed);
  else
    lua_pushfstring(L, "%s<%I%s>", name, (LUAI_UACINT)q->size, closed);
  return 1;
}

/* Makes a queue of the kind, maxsize from the argument at i (nil: none). */
static Queue *queue_new(lua_State *L, int kind, int i) {
  lua_Integer maxsize = luaL_optinteger(L, i, 0);
  lua_Integer inl = kind != Q_PRIO && maxsize <= INLINE_MAX ? maxsize : 0;
  Queue *q;
  luaL_argcheck(L, maxsize >= 0, i, "maxsize must be 0 or more (0: unbounded)");
  q = (Queue *)lua_newuserdatauv(L, sizeof *q, SLOT_UV(inl));
  q->tag = QUEUE_MT;
  q->inline_cap = inl;
  lasync_waitlist_init(&q->getters);
  lasync_waitlist_init(&q->putters);
  lasync_waitlist_init(&q->joiners);
  q->maxsize = maxsize;
  q->size = q->head = q->cap = q->unfinished = q->seq = 0;
  q->version = 0;
  q->kind = (unsigned char)kind;
  q->closed = q->busy = 0;
  luaL_setmetatable(L, QUEUE_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return q;
}

static int l_queue(lua_State *L) {
  queue_new(L, Q_FIFO, 1);
  return 1;
}

static int l_lifo_queue(lua_State *L) {
  queue_new(L, Q_LIFO, 1);
  return 1;
}

/* priority_queue([maxsize] [, less]); priority_queue(less) also works. */
static int l_priority_queue(lua_State *L) {
  if (lua_isfunction(L, 1)) {
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_insert(L, 1);
  }
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  queue_new(L, Q_PRIO, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

static const luaL_Reg queue_methods[] = {
  {"put", queue_put}, {"get", queue_get}, {"put_nowait", queue_put_nowait},
  {"get_nowait", queue_get_nowait}, {"iter", queue_iter}, {"close", queue_close},
  {"task_done", queue_task_done}, {"join", queue_join}, {"size", queue_size},
  {"empty", queue_empty}, {"full", queue_full}, {"maxsize", queue_maxsize},
  {"closed", queue_closed}, {"unfinished", queue_unfinished}, {NULL, NULL}
};

static const luaL_Reg queue_funcs[] = {
  {"queue", l_queue}, {"lifo_queue", l_lifo_queue},
  {"priority_queue", l_priority_queue}, {NULL, NULL}
};

/* An error class, printing as the core's do, in field of the table below. */
static void queue_error_class(lua_State *L, const char *mt, const char *field) {
  lasync__error_class(L, mt);
  lua_setfield(L, -2, field);
}

int lasync__luaopen_queue(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", queue_tostring}, {NULL, NULL}};
  lasync__class(L, QUEUE_MT, meta, queue_methods);
  lua_pop(L, 1);
  luaL_newlib(L, queue_funcs);
  queue_error_class(L, FULL_MT, "QueueFull");
  queue_error_class(L, EMPTY_MT, "QueueEmpty");
  queue_error_class(L, CLOSED_MT, "QueueClosed");
  return 1;
}
