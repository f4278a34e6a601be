/*
** io.h: what the native I/O modules (stream, net, dns, fs, process,
** signal) share: the I/O error object and the stream type that TCP, unix
** pipes, subprocess pipes and stdio all use. Not installed.
*/
#ifndef LASYNC_IO_H
#define LASYNC_IO_H

#include <stddef.h>
#include "module.h"

/* ----------------------------------------------------------- errors */

#define LASYNC_IOERROR_MT "lasync.IOError"

/* Pushes an I/O error object: {kind="IOError", code=uv_err_name(err),
** message=uv_strerror(err), op=op, path or address=where} whose tostring
** reads "op where: message (CODE)". `where_key` is "path" or "address"
** (or NULL when `where` is NULL). */
void lasync__push_ioerror(lua_State *L, int err, const char *op,
                          const char *where_key, const char *where);
/* The same with a code and message of our own (e.g. "EOF", "ELIMIT"). */
void lasync__push_ioerror_msg(lua_State *L, const char *code, const char *msg,
                              const char *op, const char *where_key,
                              const char *where);
/* Pushes and raises lasync__push_ioerror's error. */
int lasync__ioerror(lua_State *L, int err, const char *op,
                    const char *where_key, const char *where);
/* Makes the metatable (once) and pushes it. */
void lasync__ioerror_class(lua_State *L);
/* The two errors of a closed object, one wording for every I/O type
** (`what`: "stream", "UDP socket", "listener", "process handle"). Misuse
** after close raises "<op>: attempt to use a closed <what>" (Lua's liolib
** says it so of files; no "<op>: " when op is NULL). A call whose object
** was closed while its task waited raises the IOError ECANCELED "the
** <what> was closed while waiting". Both return lua_error's result. */
int lasync__closed_error(lua_State *L, const char *op, const char *what);
int lasync__closed_waiting_error(lua_State *L, const char *op, const char *what);

/* Fills ss from the IP literal at iarg and the port at iarg + 1 (net.c,
** udp.c); raises a clear argument error for either. */
void lasync__addr_check(lua_State *L, int iarg, struct sockaddr_storage *ss);
/* Formats the socket address sa as "ip:port" ("[ip]:port" for IPv6) in
** buf (at least 64 bytes); returns buf. */
char *lasync__addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* Pushes the ip and port of sa; returns 2 (nil, nil for an unknown family). */
int lasync__addr_push(lua_State *L, const struct sockaddr *sa);

/* ----------------------------------------------------------- signals */

/* signal.c: the signal at arg: "SIGTERM", "TERM" or a number; raises a
** clear argument error otherwise. */
int lasync__checksignal(lua_State *L, int arg);
/* "SIGTERM" for SIGTERM; NULL for a signal without a name here. */
const char *lasync__signame(int signum);

/* ----------------------------------------------------------- streams */

#define LASYNC_STREAM_MT "lasync.Stream"

/* STREAM_FILE: stdio redirected to a regular file or a device, which
** cannot be polled: read and written synchronously, as C's stdio does. */
enum { STREAM_TCP, STREAM_PIPE, STREAM_TTY, STREAM_FILE };

/* Default limits, in bytes. */
#define LASYNC_READ_HIGH 65536    /* reading pauses with this much unread */
#define LASYNC_WRITE_HIGH 65536   /* write() waits with this much queued */
#define LASYNC_LINE_LIMIT 65536   /* read_line / read_until without a limit */

typedef struct lasync_Stream lasync_Stream;

/* Allocates a stream of `kind` whose uv handle the caller initializes at
** once (uv_tcp_init etc. on lasync__stream_handle(s)); it has no Lua
** object yet. Raises when out of memory. After a failed init, free it
** with lasync__stream_drop; once initialized, it is closed with
** lasync__stream_close and freed by libuv's close callback. */
lasync_Stream *lasync__stream_alloc(lua_State *L, int kind);
/* The same for libuv callbacks: never raises, NULL when out of memory.
** `root` comes from lasync__stream_root, taken earlier in Lua. */
void *lasync__stream_root(lua_State *L);
lasync_Stream *lasync__stream_new(lasync_Host *H, void *root, int kind);
uv_handle_t *lasync__stream_handle(lasync_Stream *s);
void lasync__stream_drop(lasync_Stream *s);

/* Pushes the Lua object of a stream that has none yet. If that fails (out
** of memory), the stream stays on the host's list, closed at exit. */
void lasync__stream_push(lua_State *L, lasync_Stream *s);

/* The open stream at idx; raises "stream is closed" otherwise. */
lasync_Stream *lasync__stream_check(lua_State *L, int idx);

/* Closes the stream for Lua: tasks waiting on it wake and raise an
** ECANCELED error, buffered input is dropped. With `abort` unset, queued
** output is still flushed (then FIN) before the handle closes; with it
** set, queued output is dropped (a TCP stream is reset). Idempotent. */
void lasync__stream_close(lasync_Stream *s, int abort);

/* Sets the stream's description for tostring and errors ("tcp
** 127.0.0.1:80"), copied. */
void lasync__stream_describe(lasync_Stream *s, const char *what);

/* A reader in C over a stream's buffer (the HTTP server's request loop):
** no string is made for what it reads. lasync__stream_test is the stream
** object at idx, or NULL for anything else (a TLS stream: read through
** Lua). lasync__stream_peek gives the unread bytes (*p, the count), or 0 at
** the end, after an error, or for a file: then read() says which. With
** nothing to give it waits: the task yields and continuation k is called
** with ctx when there is; k calls it again with first = 0. Raises for a
** closed stream or a second reader. lasync__stream_consume drops the
** first n unread bytes (*p is invalid after it). */
lasync_Stream **lasync__stream_test(lua_State *L, int idx);
size_t lasync__stream_peek(lua_State *L, int idx, int first, const char **p,
                           lua_KFunction k, lua_KContext ctx);
void lasync__stream_consume(lua_State *L, int idx, size_t n);
/* The writer beside it: writes the n pieces (to the kernel, what it does
** not take queued) and returns 1 when write(...) would do so without
** waiting. Otherwise it returns 0 and the caller calls write(), which
** waits (nothing was sent) or raises the error this call met and kept
** (what went before it is not sent again). */
int lasync__stream_writev(lua_State *L, int idx, const uv_buf_t *b, unsigned n);

/* The stream module (metatable, stdio). */
int lasync__open_stream(lua_State *L);

/* ------------------------------------------------- modules (host.c) */

/* stream.c, net.c, udp.c, dns.c, fs.c, process.c, signal.c: "async.stream",
** "async.core.net", "async.core.udp", "async.dns", "async.core.fs",
** "async.core.process", "async.core.signal" */
int lasync__luaopen_stream(lua_State *L);
int lasync__luaopen_net(lua_State *L);
int lasync__luaopen_udp(lua_State *L);
int lasync__luaopen_dns(lua_State *L);
int lasync__luaopen_fs(lua_State *L);
int lasync__luaopen_process(lua_State *L);
int lasync__luaopen_signal(lua_State *L);

#endif
