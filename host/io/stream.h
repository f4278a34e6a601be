/*
** stream.h: the Stream's insides, shared by stream.c (object, reading,
** socket options) and stream_write.c (writing). Other modules use io.h.
*/
#ifndef LASYNC_STREAM_H
#define LASYNC_STREAM_H

#include "io/io.h"

/* What the waiting reader needs (rmode). */
enum { R_NONE, R_ANY, R_EXACT, R_UNTIL, R_ALL };
/* The read operations, for errors and continuations. */
enum { OP_READ, OP_LINE, OP_EXACT, OP_UNTIL, OP_ALL };

#define F_STARTED  1              /* a read was asked for: keep reading ahead */
#define F_READING  2              /* uv_read_start is in effect */
#define F_EOF      4              /* the peer ended its side */
#define F_SHUT     8              /* shutdown() was called: no more writes */
#define F_CLOSED   16             /* closed for Lua; may still be flushing */
#define F_UVCLOSED 32             /* handed to uv_close */

struct lasync_Stream {
  union {                         /* first, so a handle pointer is the stream */
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;
  lasync_Host *H;
  void *root;                     /* the host's list of streams, or NULL */
  lasync_Stream *next, *prev;     /* in that list */
  lasync_Stream **box;            /* slot in the Lua object, or NULL */
  char *desc;                     /* "127.0.0.1:80", for tostring and errors */
  /* input: the unread bytes are buf[off .. len) */
  char *buf;
  size_t off, len, cap;
  size_t rhigh;                   /* read ahead up to this many unread bytes */
  size_t rneed;                   /* R_EXACT: bytes; R_UNTIL: the limit */
  size_t scan;                    /* R_UNTIL: unread bytes searched already */
  const char *sep;                /* R_UNTIL: anchored on the reader's stack */
  size_t seplen;
  int rerr;                       /* read error, raised after the data before it */
  int rmode;                      /* R_NONE unless a task waits on rwait */
  lasync_Wait rwait;
  /* output */
  size_t wqueued;                 /* bytes handed to uv_write, not yet written */
  size_t whigh, wlow;             /* write() waits above whigh until below wlow */
  int werr;                       /* first write failure: every later write raises it */
  int shuterr;
  lasync_WaitList writers;        /* tasks waiting to queue data (their self waits) */
  lasync_WaitList drainers;       /* tasks waiting in drain() */
  lasync_Wait swait;              /* the task waiting in shutdown() */
  uv_shutdown_t *shutreq;         /* outstanding shutdown request, or NULL */
  int fd;                         /* STREAM_FILE: the descriptor */
  unsigned char kind, flags;
};

/* stream.c */
/* luaL_checkudata for streams, without its lookup by name. */
lasync_Stream **lasync__stream_box(lua_State *L, int idx);
void lasync__stream_uvclose(lasync_Stream *s);
void lasync__stream_wake_all(lasync_Stream *s);
void lasync__stream_pump(lasync_Stream *s);
int lasync__stream_closed_error(lua_State *L, const char *op);

extern const char *const lasync__stream_kinds[];  /* "tcp", ... by kind */

/* stream_info.c */
/* Adds peer, address, kind, set_nodelay, set_keepalive to the method
** table on the stack's top. */
void lasync__stream_info_methods(lua_State *L);

/* stream_write.c */
/* When output is queued, starts flushing it (then FIN) and returns 1: the
** shutdown callback closes the handle. Returns 0 when it can close now. */
int lasync__stream_linger(lasync_Stream *s);
/* Adds the writing methods to the method table on the stack's top. */
void lasync__stream_write_methods(lua_State *L);

#endif
