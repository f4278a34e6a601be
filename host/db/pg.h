/*
** pg.h: what the PostgreSQL files share (host/db/pg*.c): the connection
** driven by the loop (pg.c), the statements sent on it (pg_query.c), the
** conversions between PostgreSQL's text format and Lua values and the
** PgError (pg_types.c). Not installed.
*/
#ifndef LASYNC_PG_H
#define LASYNC_PG_H

#include <libpq-fe.h>
#include "lasync.h"
#include "module.h"
#include "io/io.h"

#define PG_CONN_MT "lasync.PgConnection"
#define PG_ERROR_MT "lasync.PgError"

enum { PG_CONNECTING, PG_READY, PG_BROKEN, PG_CLOSED, PG_COPY };
enum { REQ_ROWS, REQ_COUNT, REQ_PREPARE };
/* A result of this many rows or more is built with the collector stopped
** and freed off the loop thread (pg.c, pg_types.c). */
#define PG_MANY_ROWS 1000

/* One statement sent in the pipeline: its Sync follows it, so an error
** ends only this statement's implicit transaction, not its neighbours'.
** Its results come in order: results, NULL, then PGRES_PIPELINE_SYNC. A
** request outlives a cancelled wait (w.task NULL): its results must
** still be read and are then dropped. malloc'd; freed when it is done or
** the connection ends. */
typedef struct PgReq {
  lasync_Wait wait;
  struct PgReq *next;
  int kind;                   /* REQ_*: what the caller gets */
  int synced;                 /* its results are over; the Sync is due */
  PGresult *res;              /* the error, or else the last result */
} PgReq;

/* The Lua object (full userdata). The poll handle is allocated apart
** and freed by its close callback, so it may outlive the object. */
typedef struct PgConn {
  PGconn *pg;                 /* NULL once closed or broken */
  uv_poll_t *poll;            /* on PQsocket, NULL when none */
  int fd, events;
  int state;                  /* PG_* */
  int cfgref;                 /* the module's config table (null, codecs) */
  lasync_Host *H;
  lasync_Wait connect;        /* the task in pg.connect */
  PgReq *head, *tail;         /* sent, in the order results come */
  int pending;                /* how many: the pool's load measure */
  lasync_Wait notify;         /* a task waiting for a notification */
  lasync_Wait drain;          /* a task waiting for pending to reach 0 */
  lasync_Wait copy;           /* the task in a COPY (PG_COPY), on I/O */
  PGresult *copyres;          /* the COPY's error, or else its last result */
  PGnotify *nhead, *ntail;    /* notifications not yet taken */
  char *error;                /* why it broke (libpq's message) */
  char *fatal;                /* a FATAL the server sent while idle (it is
                                 closing the session), seen by the notice
                                 receiver; the connection then ends */
  char where[128];            /* "host:port" or the socket dir, for errors */
  unsigned cancels;           /* cancel requests sent */
  char discarded[6];          /* SQLSTATE of the last error dropped with a
                                 cancelled request ("" if none) */
} PgConn;

/* pg.c */
PgConn *lasync__pg_check(lua_State *L, int idx);   /* open and ready */
void lasync__pg_after_send(PgConn *c);              /* flush, poll for write */
int lasync__pg_wait_req(lua_State *L, PgConn *c, PgReq *q, int kind, const char *what);
int lasync__pg_send_failed(lua_State *L, PgConn *c, PgReq *q);
int lasync__pg_ioerror(lua_State *L, PgConn *c, const char *msg);
void lasync__pg_req_cancel(lasync_Wait *w);
int lasync__pg_watch(PgConn *c, int events);        /* poll libpq's socket */
void lasync__pg_end(PgConn *c, int state, const char *why);
void lasync__pg_push_gone(lua_State *L, PgConn *c); /* the error once not usable */
extern const char *const lasync__pg_states[];

/* pg_copy.c */
void lasync__pg_copy_io(PgConn *c, int events);     /* poll events in PG_COPY */
int lasync__pg_copy_methods(lua_State *L);          /* adds them to the top table */

/* pg_query.c: adds query, exec... to the table on the top of the stack. */
int lasync__pg_query_methods(lua_State *L);

/* pg_types.c */
/* Pushes what a finished request gives its caller, converted with the
** config table at index cfg; raises on a conversion error (run it
** protected). */
void lasync__pg_push_result(lua_State *L, PGresult *res, int kind, int cfg);
/* Frees a result; a large one on a thread of the loop's pool. */
void lasync__pg_clear_result(uv_loop_t *loop, PGresult *res);
/* Pushes the PgError of an error result. */
void lasync__pg_push_error(lua_State *L, const PGresult *res);
/* Encodes the Lua values at [first, first + n) as parameters; their text
** stays on L's stack above them until the statement is sent. Tables go
** through the config's encode function. Raises a clear argument error for
** what cannot be a parameter. */
typedef struct PgParams {
  int n;
  const char **values;
  int *lengths, *formats;
  Oid *types;
} PgParams;
void lasync__pg_params(lua_State *L, int first, int n, int cfg, PgParams *p);
int lasync__open_pg_types(lua_State *L);

#endif
