-- tests/test_pg_pool.lua: async.pg's pool, transactions and LISTEN/NOTIFY
-- against a real server the file starts (tests/pgserver.lua): limits
-- counted by the server (pg_stat_activity), fair queueing, broken
-- connections replaced, draining close, commit/rollback/savepoints on
-- error and cancellation, notifications in order, and the server killed
-- (pg_ctl stop -m immediate) in the middle of work, then restarted.
-- Without a server binary every test is reported skipped, with the reason.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local pgserver = require "pgserver"
local pg = async.pg

local srv, why = pgserver.start()

local function url(app) return srv.url .. "&application_name=" .. app end

-- Connections the server has for application `app`.
local function backends(watch, app)
  return watch:query_value("select count(*)::int from pg_stat_activity where application_name = $1", app)
end

-- What needs no server: it runs (and counts) even where none is installed.
TestPgPoolOffline = support.suite({}, 20)

function TestPgPoolOffline:test_no_server_is_a_clear_error_and_leaves_no_count()
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  local pool <close> = pg.pool{conninfo = ("host=127.0.0.1 port=%d"):format(port), max = 2}
  for _ = 1, 3 do
    local ok, e = pcall(pool.query, pool, "select 1")
    lu.assertFalse(ok)
    lu.assertEquals(e.code, "ECONNREFUSED")
    ok, e = pcall(pool.acquire, pool)
    lu.assertEquals(e.code, "ECONNREFUSED")
  end
  lu.assertEquals(pool:stats().size, 0)
  lu.assertEquals(pool:stats().leased, 0)
end

TestPgPool = support.suite({}, 30)

function TestPgPool:setUp() if not srv then lu.skip(why) end end

function TestPgPool:test_limit_never_exceeded_counted_by_the_server()
  local app = "limit_test"
  local pool <close> = pg.pool{conninfo = url(app), max = 4}
  local watch <close> = pg.connect(srv.url)
  local peak, inside, running = 0, 0, true
  local monitor = async.spawn(function()
    while running do
      peak = math.max(peak, backends(watch, app))
      async.sleep(0.005)
    end
  end)
  local jobs = {}
  for i = 1, 40 do
    jobs[i] = function()
      local c <close> = pool:acquire()
      inside = inside + 1
      lu.assertTrue(inside <= 4)
      local v = c:query_value("select $1::int from pg_sleep(0.01)", i)
      inside = inside - 1
      return v
    end
  end
  local r = async.gather(jobs)
  running = false
  monitor:await()
  for i = 1, 40 do lu.assertEquals(r[i], i) end
  lu.assertTrue(peak >= 1 and peak <= 4, "server saw " .. peak .. " connections")
  lu.assertTrue(pool:stats().size <= 4)
  lu.assertEquals(pool:stats().leased, 0)
end

function TestPgPool:test_single_statements_share_connections_in_pipelines()
  local app = "shared_test"
  local pool <close> = pg.pool{conninfo = url(app), max = 3}
  local watch <close> = pg.connect(srv.url)
  do                                      -- three connections open and idle
    local a, b, c = pool:acquire(), pool:acquire(), pool:acquire()
    a:release(); b:release(); c:release()
  end
  local held
  local tasks = {}
  for i = 1, 150 do
    tasks[i] = async.spawn(function()
      if i == 75 then held = pool:acquire() end  -- a lease in the middle
      return pool:query_value("select $1::int", i)
    end)
  end
  -- All 150 ran once (each sent its statement) before this task resumes.
  async.sleep(0)
  local peak_pending = 0
  for _, e in ipairs(pool.idle) do
    peak_pending = math.max(peak_pending, e.conn:pending())
  end
  local r = async.gather(tasks)
  for i = 1, 150 do lu.assertEquals(r[i], i) end
  lu.assertTrue(peak_pending > 1, "statements were pipelined on a shared connection")
  lu.assertTrue(backends(watch, app) <= 3)
  lu.assertTrue(pool:stats().size <= 3)
  lu.assertEquals(held:query_value("select 1"), 1)
  held:release()
  lu.assertEquals(pool:stats().leased, 0)
end

function TestPgPool:test_waiters_are_served_in_arrival_order()
  local pool <close> = pg.pool{conninfo = srv.url, max = 1}
  local order, log = support.log()
  local first = pool:acquire()
  local tasks = {}
  for i = 1, 5 do
    tasks[i] = async.spawn(function()
      local c <close> = pool:acquire()
      log(i)
      c:query("select 1")
    end)
  end
  async.sleep(0)
  first:release()
  first:release()                             -- twice is harmless
  for _, t in ipairs(tasks) do t:await() end
  lu.assertEquals(order, {1, 2, 3, 4, 5})
  lu.assertErrorMsgContains("released", first.query, first, "select 1")
end

function TestPgPool:test_acquire_timeout_and_cancel_keep_the_count()
  local pool <close> = pg.pool{conninfo = srv.url, max = 1, timeout = 0.05}
  local held = pool:acquire()
  local ok, e = pcall(pool.acquire, pool)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(e))
  local t = async.spawn(pool.acquire, pool)
  async.sleep(0)
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
  held:release()
  local c <close> = pool:acquire()
  lu.assertEquals(c:query_value("select 1"), 1)
  lu.assertEquals(pool:stats().size, 1)
end

function TestPgPool:test_broken_connection_is_replaced()
  local pool <close> = pg.pool{conninfo = srv.url, max = 2}
  local watch <close> = pg.connect(srv.url)
  local pid
  do
    local c <close> = pool:acquire()
    pid = c:info().pid
  end
  local idle = pool.idle[1].conn
  watch:query("select pg_terminate_backend($1)", pid)
  io_.eventually(function() return idle:status() == "broken" end, "the client saw the session end")
  lu.assertErrorMsgContains("terminating connection", idle.query, idle, "select 1")
  local c <close> = pool:acquire()
  lu.assertEquals(c:query_value("select 7"), 7)
  lu.assertNotEquals(c:info().pid, pid)
  lu.assertEquals(pool:stats().size, 1)
end

function TestPgPool:test_close_drains_leased_connections()
  local pool = pg.pool{conninfo = srv.url, max = 2}
  local c = pool:acquire()
  local closing = async.spawn(pool.close, pool)
  async.sleep(0)
  lu.assertFalse(closing:done())
  lu.assertErrorMsgContains("closed", pool.acquire, pool)
  lu.assertEquals(c:query_value("select 3"), 3)    -- still usable until given back
  c:release()
  closing:await()
  lu.assertEquals(pool:stats().size, 0)
end

function TestPgPool:test_close_lets_shared_statements_finish()
  local pool = pg.pool{conninfo = srv.url, max = 1}
  pool:acquire():release()                  -- one connection open and idle
  local t = async.spawn(function() return pool:query_value("select 8 from pg_sleep(0.02)") end)
  async.sleep(0)
  lu.assertEquals(pool.idle[1].conn:pending(), 1)
  pool:close()
  lu.assertEquals(t:await(), 8)
  lu.assertEquals(pool:stats().size, 0)
  lu.assertErrorMsgContains("closed", pool.query, pool, "select 1")
end

function TestPgPool:test_idle_timeout_and_min()
  local pool <close> = pg.pool{conninfo = srv.url, max = 3, min = 1, idle_timeout = 0}
  pool.filler:await()
  lu.assertEquals(pool:stats().size, 1)
  local a, b = pool:acquire(), pool:acquire()
  a:release()
  b:release()
  lu.assertEquals(pool:stats().size, 1)          -- pruned down to min
  lu.assertEquals(pool:query_value("select 5"), 5)
end

function TestPgPool:test_max_lifetime()
  local pool <close> = pg.pool{conninfo = srv.url, max = 1, max_lifetime = 0}
  local p1, p2
  do local c <close> = pool:acquire(); p1 = c:info().pid end
  do local c <close> = pool:acquire(); p2 = c:info().pid end
  lu.assertNotEquals(p1, p2)
end

TestPgTx = support.suite({}, 30)

function TestPgTx:setUp()
  if not srv then lu.skip(why) end
  self.c = pg.connect(srv.url)
  self.c:exec("create temp table acct (id int primary key, bal int)")
  self.c:exec("insert into acct values (1, 100), (2, 0)")
end

function TestPgTx:tearDown() if self.c then self.c:close() end end

local function bal(c, id) return c:query_value("select bal from acct where id = $1", id) end

function TestPgTx:test_commit()
  local c = self.c
  do
    local tx <close> = c:begin()
    tx:exec("update acct set bal = bal - 10 where id = 1")
    tx:exec("update acct set bal = bal + 10 where id = 2")
    tx:commit()
    lu.assertErrorMsgContains("already committed", tx.commit, tx)
  end
  lu.assertEquals(bal(c, 1), 90)
  lu.assertEquals(c:info().transaction, "idle")
end

function TestPgTx:test_error_rolls_back()
  local c = self.c
  local ok, e = pcall(function()
    local tx <close> = c:begin()
    tx:exec("update acct set bal = 0 where id = 1")
    error("changed my mind")
  end)
  lu.assertFalse(ok)
  lu.assertStrContains(e, "changed my mind")
  lu.assertEquals(bal(c, 1), 100)
  ok, e = pcall(function()
    local tx <close> = c:begin()
    tx:exec("update acct set bal = 0 where id = 1")
    tx:exec("insert into acct values (1, 1)")   -- duplicate: a PgError
    tx:commit()
  end)
  lu.assertEquals(e.sqlstate, "23505")
  lu.assertEquals(bal(c, 1), 100)
end

function TestPgTx:test_commit_of_a_failed_transaction_raises()
  local c = self.c
  local tx <close> = c:begin()
  tx:exec("update acct set bal = 0 where id = 1")
  lu.assertFalse(pcall(tx.exec, tx, "select 1 / 0"))  -- caught: the tx is aborted
  lu.assertErrorMsgContains("rolled back", tx.commit, tx)
  lu.assertEquals(bal(c, 1), 100)
  lu.assertEquals(c:info().transaction, "idle")
end

function TestPgTx:test_cancel_rolls_back()
  local c = self.c
  local inside = async.event()
  local t = async.spawn(function()
    local tx <close> = c:begin()
    tx:exec("update acct set bal = 0 where id = 1")
    inside:set()
    tx:query("select pg_sleep(10)")
    tx:commit()
  end)
  inside:wait()
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
  lu.assertEquals(async.wait_for(5, bal, c, 1), 100)
  lu.assertEquals(c:info().transaction, "idle")
end

function TestPgTx:test_savepoints()
  local c = self.c
  local tx <close> = c:begin()
  tx:exec("update acct set bal = 1 where id = 1")
  do
    local inner <close> = tx:begin()
    inner:exec("update acct set bal = 2 where id = 1")
    -- no commit: rolled back to the savepoint
  end
  lu.assertEquals(bal(c, 1), 1)
  do
    local inner <close> = tx:begin()
    inner:exec("update acct set bal = 3 where id = 2")
    inner:commit()
  end
  tx:commit()
  lu.assertEquals(bal(c, 1), 1)
  lu.assertEquals(bal(c, 2), 3)
end

function TestPgTx:test_mode_and_pool_transaction()
  local c = self.c
  do
    local tx <close> = c:begin("READ ONLY")
    local e = select(2, pcall(tx.exec, tx, "create table ro_x (v int)"))
    lu.assertEquals(e.sqlstate, "25006")
  end
  lu.assertErrorMsgContains("transaction mode", c.begin, c, "; drop table acct")
  local pool <close> = pg.pool{conninfo = srv.url, max = 1}
  pool:exec("create table if not exists pooltx (v int)")
  do
    local tx <close> = pool:begin()
    tx:exec("insert into pooltx values (1)")
    tx:commit()
  end
  do
    local tx <close> = pool:begin()
    tx:exec("insert into pooltx values (2)")
  end
  lu.assertEquals(pool:query_value("select count(*)::int from pooltx"), 1)
  lu.assertEquals(pool:stats().leased, 0)
  pool:exec("drop table pooltx")
end

TestPgNotify = support.suite({}, 30)

function TestPgNotify:setUp() if not srv then lu.skip(why) end end

function TestPgNotify:test_notifications_in_order_then_unlisten()
  local listener <close> = pg.connect(srv.url)
  local sender <close> = pg.connect(srv.url)
  local got = {}
  local ready = async.event()
  local t = async.spawn(function()
    local iter, a, b, closer = listener:notifications("jobs", "Other Chan")
    local _ <close> = closer
    ready:set()
    for n in iter, a, b do
      got[#got + 1] = n.channel .. ":" .. n.payload
      if n.payload == "stop" then break end
    end
  end)
  ready:wait()
  sender:exec("select pg_notify('ignored', 'x')")
  for i = 1, 3 do sender:exec("select pg_notify('jobs', $1)", "job" .. i) end
  sender:exec("notify \"Other Chan\", 'other'")
  sender:exec("select pg_notify('jobs', 'stop')")
  t:await()
  lu.assertEquals(got, {"jobs:job1", "jobs:job2", "jobs:job3", "Other Chan:other", "jobs:stop"})
  lu.assertEquals(#listener:query("select pg_listening_channels()"), 0)
  local n = got[1]
  lu.assertNotNil(n)
end

function TestPgNotify:test_next_notification_with_timeout()
  local c <close> = pg.connect(srv.url)
  c:exec("listen t1")
  local ok, e = pcall(c.next_notification, c, 0.01)
  lu.assertTrue(async.is_timeout(e))
  c:exec("notify t1, 'x'")                        -- to itself
  lu.assertEquals(c:next_notification(5).payload, "x")
  lu.assertErrorMsgContains("timeout", c.next_notification, c, -1)
  lu.assertFalse(ok)
end

function TestPgNotify:test_for_loop_form_and_cancel()
  local listener <close> = pg.connect(srv.url)
  local sender <close> = pg.connect(srv.url)
  local got = {}
  local t = async.spawn(function()
    for n in listener:notifications("q") do got[#got + 1] = n.payload end
  end)
  io_.eventually(function()
    return #listener:query("select pg_listening_channels()") == 1
  end, "listening")
  sender:exec("notify q, 'a'")
  io_.eventually(function() return #got == 1 end, "delivered")
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
  lu.assertEquals(got, {"a"})
  lu.assertErrorMsgContains("channel", listener.notifications, listener, "")
end

TestPgCopy = support.suite({}, 30)

function TestPgCopy:setUp()
  if not srv then lu.skip(why) end
  self.c = pg.connect(srv.url)
  self.c:exec("create temp table items (id int, name text)")
end

function TestPgCopy:tearDown() if self.c then self.c:close() end end

function TestPgCopy:test_copy_in_and_out_streamed()
  local c, n = self.c, 20000
  local i = 0
  local count = c:copy_in("copy items from stdin", function()
    i = i + 1
    if i <= n then return ("%d\tname %d with\\ttab\n"):format(i, i) end
  end)
  lu.assertEquals(count, n)
  lu.assertEquals(c:query_value("select count(*)::int from items"), n)
  lu.assertEquals(c:query_value("select name from items where id = 7"), "name 7 with\ttab")
  local k = 0
  for chunk in c:copy_out("copy (select * from items order by id) to stdout") do
    k = k + 1
    if k == 1 then lu.assertEquals(chunk, "1\tname 1 with\\ttab\n") end
  end
  lu.assertEquals(k, n)
  lu.assertEquals(c:status(), "ok")
  lu.assertEquals(c:copy_in("copy items from stdin", {"-1\t\\N\n"}), 1)
  lu.assertIs(c:query_value("select name from items where id = -1"), pg.null)
end

function TestPgCopy:test_bad_data_and_failing_source()
  local c = self.c
  local ok, e = pcall(c.copy_in, c, "copy items from stdin", {"1\tok\n", "x\ty\n"})
  lu.assertFalse(ok)
  lu.assertEquals(e.sqlstate, "22P02")
  ok, e = pcall(c.copy_in, c, "copy items from stdin", coroutine.wrap(function()
    coroutine.yield("5\tfive\n")
    error({"source broke"})
  end))
  lu.assertFalse(ok)
  lu.assertEquals(e, {"source broke"})
  lu.assertEquals(c:query_value("select count(*)::int from items"), 0)   -- nothing kept
  ok, e = pcall(c.copy_in, c, "copy items from stdin", {1})
  lu.assertStrContains(e, "not a string")
  lu.assertErrorMsgContains("not a COPY", c.copy_in, c, "select 1", {})
  lu.assertErrorMsgContains("function or table", c.copy_in, c, "copy items from stdin", 5)
  lu.assertErrorMsgContains("no COPY in progress", c.copy_get, c)
  lu.assertEquals(c:query_value("select 3"), 3)
end

function TestPgCopy:test_copy_waits_for_the_pipeline_and_excludes_others()
  local c = self.c
  local before = async.spawn(function() return c:query_value("select 1 from pg_sleep(0.02)") end)
  async.sleep(0)
  local gate, asked, calls = async.event(), async.event(), 0
  local copying = async.spawn(function()
    return c:copy_in("copy items from stdin", function()
      calls = calls + 1
      if calls == 1 then
        asked:set()                       -- the server is in the COPY
        gate:wait()
        return "1\ta\n"
      end
    end)
  end)
  async.sleep(0)
  lu.assertEquals(before:await(), 1)
  asked:wait()
  lu.assertEquals(c:status(), "copy")
  lu.assertErrorMsgContains("busy with a COPY", c.query, c, "select 1")
  gate:set()
  lu.assertEquals(copying:await(), 1)
  lu.assertEquals(c:query_value("select count(*)::int from items"), 1)
end

function TestPgCopy:test_leaving_or_cancelling_a_copy_ends_the_connection()
  local c = self.c
  c:copy_in("copy items from stdin", {"1\ta\n", "2\tb\n"})
  for _ in c:copy_out("copy items to stdout") do break end
  lu.assertEquals(c:status(), "closed")
  local d <close> = pg.connect(srv.url)
  local t = async.spawn(function()
    for _ in d:copy_out("copy (select pg_sleep(10)) to stdout") do end
  end)
  io_.eventually(function() return d:status() == "copy" end, "the COPY started")
  t:cancel()
  lu.assertFalse(pcall(t.await, t))
  lu.assertEquals(d:status(), "broken")
  lu.assertErrorMsgContains("COPY cancelled", d.query, d, "select 1")
end

-- Last (Z): the server dies mid-work and comes back.
TestPgZRestart = support.suite({}, 60)

function TestPgZRestart:setUp() if not srv then lu.skip(why) end end

function TestPgZRestart:test_server_killed_then_back()
  io_.pair()
  local before = io_.fds()
  local pool = pg.pool{conninfo = srv.url, max = 3}
  local watch = pg.connect(srv.url)
  local running = async.spawn(function() return pool:query("select pg_sleep(10)") end)
  io_.eventually(function()
    return watch:query_value("select count(*)::int from pg_stat_activity where query = 'select pg_sleep(10)' and state = 'active'") == 1
  end, "the statement runs")
  lu.assertTrue(srv:kill())
  local ok, e = pcall(running.await, running)
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertStrContains(tostring(e), "pg ")
  lu.assertEquals(watch:status(), "broken")
  lu.assertErrorMsgContains("IOError", function()
    local _, err = pcall(watch.query, watch, "select 1")
    error(getmetatable(err).__name, 0)
  end)
  ok, e = pcall(pool.query, pool, "select 1")        -- no server: a clear error
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertStrContains(e.message, "No such file")
  watch:close()
  lu.assertTrue(srv:restart())
  lu.assertEquals(pool:query_value("select 11"), 11)  -- recovered
  lu.assertTrue(pool:stats().size <= 3)
  pool:close()
  lu.assertEquals(io_.fds(), before)
end

local ok, err = pcall(support.run, ...)
if srv then srv:stop() end
if not ok then error(err, 0) end
