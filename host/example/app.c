/*
** host/example/app.c: an application that embeds lasync, the example of
** docs/embedding.md. It is a small key-value agent with a loop of its own:
**
**   - a TCP server on 127.0.0.1 (its feed) storing the `key=value` lines
**     it receives into the application's state;
**   - a TCP client of its own that sends the feed (standing in for a peer);
**   - a heartbeat uv_timer counting ticks into the state;
**
** and it gives Lua one native awaitable, app.query(key [, delay]), answered
** from the state after a delay measured by a uv_timer of the application's.
** Once the feed is in, it runs the user script (app.lua) as a task; a done
** callback checks what the script returned and stops the application's
** handles; the application's own uv_run then returns, it frees the host,
** runs its loop once more for the close callbacks, and closes it.
**
**   build/example/app host/example/app.lua      exit status 0 when all is well
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "lasync.h"

#define MAX_ENTRIES 16
#define QUERY_DELAY_MS 5
#define FEED "temperature=21.5\nhumidity=40\nstatus=ok\n"

typedef struct Entry {
  char key[32], value[32];
} Entry;

typedef struct App {
  uv_loop_t loop;
  uv_tcp_t server, client;
  uv_connect_t connect;
  uv_write_t write;
  uv_timer_t heartbeat;
  lasync_Host *H;
  const char *script;
  Entry state[MAX_ENTRIES];
  int nstate;
  long ticks;
  int inflight, max_inflight, answered, cancelled;
  int status;                     /* the exit status */
} App;

/* One connection to the feed server, with the line being read. */
typedef struct Conn {
  uv_tcp_t tcp;
  App *app;
  char line[64];
  size_t len;
  char buf[256];
} Conn;

/* ------------------------------------------------ the application state */

static Entry *state_find(App *app, const char *key) {
  int i;
  for (i = 0; i < app->nstate; i++)
    if (strcmp(app->state[i].key, key) == 0) return &app->state[i];
  return NULL;
}

static void state_set(App *app, const char *key, const char *value) {
  Entry *e = state_find(app, key);
  if (e == NULL) {
    if (app->nstate == MAX_ENTRIES) return;
    e = &app->state[app->nstate++];
    snprintf(e->key, sizeof e->key, "%s", key);
  }
  snprintf(e->value, sizeof e->value, "%s", value);
}

static void heartbeat_cb(uv_timer_t *h) {
  App *app = (App *)h->data;
  char n[24];
  snprintf(n, sizeof n, "%ld", ++app->ticks);
  state_set(app, "ticks", n);
}

/* -------------------------------------------- the native awaitable query */

/* One app.query in flight. It owns a uv_timer of the application's loop;
** the Query is freed in the timer's close callback, after the task was
** woken (answer) or after the wait was cancelled (query_cancel). */
typedef struct Query {
  lasync_Wait wait;
  uv_timer_t timer;
  App *app;
  char key[32];
} Query;

static void query_close_cb(uv_handle_t *h) {
  free(h->data);
}

static void query_end(Query *q) {
  q->app->inflight--;
  uv_close((uv_handle_t *)&q->timer, query_close_cb);
}

/* The application's timer fired: answer from the state. */
static void query_answer(uv_timer_t *h) {
  Query *q = (Query *)h->data;
  lua_State *L = lasync_state(q->app->H);
  Entry *e = state_find(q->app, q->key);
  if (e) {
    lua_pushstring(L, e->value);
    lasync_wake_values(L, &q->wait, 1);
  }
  else {
    lua_pushfstring(L, "app.query: no key '%s'", q->key);
    lasync_wake_error(L, &q->wait);
  }
  q->app->answered++;
  query_end(q);
}

/* The waiting task was cancelled (t:cancel(), a timeout, shutdown): stop
** the timer, so no answer comes. The wait is already over. */
static void query_cancel(lasync_Wait *w) {
  Query *q = (Query *)w->data;
  uv_timer_stop(&q->timer);
  q->app->cancelled++;
  query_end(q);
}

/* app.query(key [, delay]): the value of key after `delay` seconds (by
** default a few ms); an error when there is no such key. */
static int l_query(lua_State *L) {
  App *app = (App *)lua_touserdata(L, lua_upvalueindex(1));
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  lua_Number delay = luaL_optnumber(L, 2, QUERY_DELAY_MS / 1000.0);
  Query *q;
  luaL_argcheck(L, len < sizeof q->key, 1, "key too long");
  luaL_argcheck(L, delay >= 0 && delay < 1e6, 2, "delay out of range");
  lasync_checktask(L, "app.query");      /* errors before anything starts */
  if ((q = (Query *)calloc(1, sizeof *q)) == NULL) return luaL_error(L, "app.query: out of memory");
  memcpy(q->key, key, len + 1);
  q->app = app;
  q->wait.data = q;
  q->timer.data = q;
  uv_timer_init(&app->loop, &q->timer);
  uv_timer_start(&q->timer, query_answer, (uint64_t)(delay * 1000), 0);
  if (++app->inflight > app->max_inflight) app->max_inflight = app->inflight;
  return lasync_wait(L, &q->wait, query_cancel, NULL, 0);
}

/* app.stats(): the counters the script checks itself against. */
static int l_stats(lua_State *L) {
  App *app = (App *)lua_touserdata(L, lua_upvalueindex(1));
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, app->inflight);
  lua_setfield(L, -2, "inflight");
  lua_pushinteger(L, app->max_inflight);
  lua_setfield(L, -2, "max_inflight");
  lua_pushinteger(L, app->answered);
  lua_setfield(L, -2, "answered");
  lua_pushinteger(L, app->cancelled);
  lua_setfield(L, -2, "cancelled");
  return 1;
}

/* Makes the `app` module: a global, and require "app" finds it too. */
static void app_open(App *app) {
  static const luaL_Reg funcs[] = {
    {"query", l_query}, {"stats", l_stats}, {NULL, NULL}
  };
  lua_State *L = lasync_state(app->H);
  luaL_newlibtable(L, funcs);
  lua_pushlightuserdata(L, app);
  luaL_setfuncs(L, funcs, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "app");
  lua_pop(L, 1);
  lua_setglobal(L, "app");
}

/* ------------------------------------------------------ script and stop */

static void app_stop(App *app) {
  uv_close((uv_handle_t *)&app->server, NULL);
  uv_close((uv_handle_t *)&app->heartbeat, NULL);
}

static int check_field(lua_State *L, const char *k, const char *want) {
  const char *got;
  lua_getfield(L, -1, k);
  got = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (got && strcmp(got, want) == 0) return 1;
  fprintf(stderr, "app: the script returned %s = %s, expected %s\n", k, got ? got : "nil", want);
  return 0;
}

/* The script's task is done (from the loop): check its result, stop. */
static void script_done(lua_State *L, lasync_Task *t, void *ud) {
  App *app = (App *)ud;
  int ok = 0;
  if (lasync_task_status(t) == LASYNC_DONE && lasync_task_results(L, t) == 1 && lua_istable(L, -1)) {
    ok = check_field(L, "temperature", "21.5") & check_field(L, "humidity", "40") &
         check_field(L, "status", "ok");
    lua_getfield(L, -1, "ticks");
    if (ok) printf("app: the script read temperature=21.5 humidity=40 status=ok, ticks=%s; "
                   "%d queries at once at most, %d answered, %d cancelled\n",
                   lua_tostring(L, -1), app->max_inflight, app->answered, app->cancelled);
  }
  else if (lasync_task_status(t) == LASYNC_FAILED) {
    lasync_task_traceback(L, 1);         /* the Task object is at 1 */
    fprintf(stderr, "app: the script failed: %s\n", lua_tostring(L, -1));
  }
  else fprintf(stderr, "app: the script did not return a table\n");
  app->status = ok ? 0 : 1;
  app_stop(app);
}

static void feed_done(App *app) {
  lua_State *L = lasync_state(app->H);
  if (lasync_spawn_file(L, app->script, 0) == NULL) {
    fprintf(stderr, "app: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    app_stop(app);
    return;
  }
  lasync_task_on_done(L, -1, script_done, app);
  lua_pop(L, 1);                         /* the Task: the host keeps it alive */
}

/* --------------------------------------------------------- the TCP feed */

static void conn_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  Conn *c = (Conn *)h->data;
  (void)size;
  *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void conn_close_cb(uv_handle_t *h) {
  free(h->data);
}

/* Stores each complete `key=value` line. */
static void conn_feed(Conn *c, const char *p, size_t n) {
  for (; n > 0; p++, n--) {
    char *eq;
    if (*p != '\n') {
      if (c->len + 1 < sizeof c->line) c->line[c->len++] = *p;
      continue;
    }
    c->line[c->len] = '\0';
    c->len = 0;
    if ((eq = strchr(c->line, '=')) == NULL) continue;
    *eq = '\0';
    state_set(c->app, c->line, eq + 1);
  }
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  Conn *c = (Conn *)s->data;
  if (n > 0) conn_feed(c, buf->base, (size_t)n);
  else if (n < 0) {                      /* EOF: the feed is in */
    App *app = c->app;
    uv_close((uv_handle_t *)s, conn_close_cb);
    if (n != UV_EOF) fprintf(stderr, "app: feed: %s\n", uv_strerror((int)n));
    feed_done(app);
  }
}

static void server_conn(uv_stream_t *server, int status) {
  App *app = (App *)server->data;
  Conn *c;
  if (status < 0 || (c = (Conn *)calloc(1, sizeof *c)) == NULL) return;
  c->app = app;
  c->tcp.data = c;
  uv_tcp_init(&app->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0)
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
  else uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void client_written(uv_write_t *req, int status) {
  (void)status;
  uv_close((uv_handle_t *)req->handle, NULL);   /* the server sees EOF */
}

static void client_connected(uv_connect_t *req, int status) {
  App *app = (App *)req->data;
  uv_buf_t buf = uv_buf_init((char *)FEED, sizeof FEED - 1);
  if (status < 0) {
    fprintf(stderr, "app: connect: %s\n", uv_strerror(status));
    uv_close((uv_handle_t *)&app->client, NULL);
    app_stop(app);
    return;
  }
  uv_write(&app->write, (uv_stream_t *)&app->client, &buf, 1, client_written);
}

/* Listens on 127.0.0.1 (a port of the system's choosing) and connects. */
static int feed_start(App *app) {
  struct sockaddr_storage addr;
  int len = sizeof addr, rc;
  uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&addr);
  uv_tcp_init(&app->loop, &app->server);
  uv_tcp_init(&app->loop, &app->client);
  app->server.data = app->connect.data = app;
  if ((rc = uv_tcp_bind(&app->server, (struct sockaddr *)&addr, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&app->server, 8, server_conn)) < 0 ||
      (rc = uv_tcp_getsockname(&app->server, (struct sockaddr *)&addr, &len)) < 0 ||
      (rc = uv_tcp_connect(&app->connect, &app->client, (struct sockaddr *)&addr,
                           client_connected)) < 0) {
    fprintf(stderr, "app: feed: %s\n", uv_strerror(rc));
    return rc;
  }
  return 0;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
  App app;
  memset(&app, 0, sizeof app);
  app.script = argc > 1 ? argv[1] : "host/example/app.lua";
  app.status = 1;
  uv_loop_init(&app.loop);
  app.H = lasync_new(&app.loop);         /* the host lives on our loop */
  if (app.H == NULL) return 1;
  app_open(&app);
  uv_timer_init(&app.loop, &app.heartbeat);
  app.heartbeat.data = &app;
  uv_timer_start(&app.heartbeat, heartbeat_cb, 1, 1);
  if (feed_start(&app) != 0) {
    app_stop(&app);
    uv_close((uv_handle_t *)&app.client, NULL);
  }
  uv_run(&app.loop, UV_RUN_DEFAULT);     /* we drive; tasks run as it turns */
  lasync_free(app.H);                    /* no task left: does not run the loop */
  uv_run(&app.loop, UV_RUN_DEFAULT);     /* close callbacks, the host's too */
  if (uv_loop_close(&app.loop) != 0) {
    fprintf(stderr, "app: a handle was left open\n");
    return 1;
  }
  return app.status;
}
