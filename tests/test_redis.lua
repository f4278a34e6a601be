-- tests/test_redis.lua: async.redis against a real redis-server started
-- here (tests/redissupport.lua): reply conversions, errors, automatic
-- pipelining under many tasks, pipelines and transactions, blocking
-- commands on the pool, cancellation, pub/sub, and a server restarted in
-- the middle (clear errors, reconnect, subscriptions restored).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local rs = require "redissupport"
local redis = async.redis

local no_connections = rs.no_connections

TestRedisClient = support.suite({}, 20)

function TestRedisClient:test_reply_types()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  lu.assertEquals(c:call("SET", "s", "hello\0world"), "OK")
  lu.assertEquals(c:get("s"), "hello\0world")             -- binary-safe bulk
  lu.assertEquals(c:incr("n"), 1)                          -- integer
  lu.assertEquals(math.type(c:incrby("n", 41)), "integer")
  lu.assertNil(c:get("missing"))                           -- nil
  lu.assertEquals(c:set("f", 1.5), "OK")                   -- numbers as arguments
  lu.assertEquals(c:get("f"), "1.5")
  c:rpush("l", "a", "b", "c")
  lu.assertEquals(c:lrange("l", 0, -1), {"a", "b", "c"})   -- array
  lu.assertEquals(c:mget("s", "missing", "n"), {"hello\0world", false, "42"})  -- nil inside: false
  lu.assertEquals(c:call("PING"), "PONG")                  -- status
  c:hset("h", "k", "v")
  lu.assertEquals(c:hgetall("h"), {"k", "v"})
  lu.assertEquals(c:lrange("nothing", 0, -1), {})
  -- nested arrays
  c:call("XADD", "st", "1-1", "f", "v")
  local r = c:call("XRANGE", "st", "-", "+")
  lu.assertEquals(r, {{"1-1", {"f", "v"}}})
end

function TestRedisClient:test_errors()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect{host = "127.0.0.1", port = srv.port}
  c:set("k", "v")
  local ok, e = pcall(c.lpush, c, "k", "x")
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "RedisError")
  lu.assertEquals(e.code, "WRONGTYPE")
  lu.assertStrContains(tostring(e), "RedisError: WRONGTYPE Operation against a key")
  lu.assertTrue(redis.is_error(e))
  ok, e = pcall(c.call, c, "NOSUCHCOMMAND")
  lu.assertEquals(e.code, "ERR")
  lu.assertStrContains(e.message, "unknown command")
  -- the connection goes on after an error
  lu.assertEquals(c:get("k"), "v")
  -- misuse is an argument error, nothing sent
  ok, e = pcall(c.call, c, "SET", {}, 1)
  lu.assertStrContains(e, "string or number expected, got table")
  ok, e = pcall(c.call, c, nil)
  lu.assertStrContains(e, "command name expected")
  ok, e = pcall(c.call, c, "SUBSCRIBE", "x")
  lu.assertStrContains(e, "client:subscriber()")
  ok, e = pcall(c.call, c, "MULTI")
  lu.assertStrContains(e, "client:transaction")
  ok, e = pcall(redis.connect, "http://x")
  lu.assertStrContains(e, "bad URL")
  ok, e = pcall(redis.connect, {port = "x"})
  lu.assertStrContains(e, "option port must be a number")
  ok, e = pcall(redis.connect, 42)
  lu.assertStrContains(e, "URL or options table expected")
end

function TestRedisClient:test_connect_refused_and_url_forms()
  local srv <close> = rs.start(lu)
  local port = srv.port
  srv:stop()
  local ok, e = pcall(redis.connect, ("redis://127.0.0.1:%d"):format(port))
  lu.assertFalse(ok)
  lu.assertEquals(e.code, "ECONNREFUSED")
  lu.assertEquals(e.op, "redis.connect")
  srv:start()
  local c1 <close> = redis.connect(("redis://localhost:%d/3"):format(port))  -- name, db
  c1:set("where", "db3")
  local c2 <close> = redis.connect("unix://" .. srv.dir .. "/redis.sock?db=3")
  lu.assertEquals(c2:get("where"), "db3")
  local c3 <close> = redis.connect{path = srv.dir .. "/redis.sock"}
  lu.assertNil(c3:get("where"))
  lu.assertEquals(redis.parse_url("redis://u:p%40ss@h:1/2?timeout=3"),
                  {username = "u", password = "p@ss", host = "h", port = "1", db = "2", timeout = "3"})
  ok, e = pcall(redis.connect, "unix://" .. srv.dir .. "/nope.sock")
  lu.assertEquals(e.code, "ENOENT")
end

function TestRedisClient:test_auth()
  local srv <close> = rs.start(lu)
  local admin <close> = redis.connect(srv:url())
  admin:call("CONFIG", "SET", "requirepass", "s3cret")
  local ok, e = pcall(redis.connect, srv:url())           -- connects; the first command fails
  if ok then
    ok, e = pcall(e.get, e, "x")
  end
  local c <close> = redis.connect(("redis://:s3cret@127.0.0.1:%d"):format(srv.port))
  lu.assertEquals(c:call("PING"), "PONG")
  ok, e = pcall(redis.connect, ("redis://:wrong@127.0.0.1:%d"):format(srv.port))
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "RedisError")
  c:call("CONFIG", "SET", "requirepass", "")
end

function TestRedisClient:test_pipelining_order_under_1000_tasks()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  local tasks = {}
  for i = 1, 1000 do
    tasks[i] = async.spawn(function()
      c:set("k" .. i, i)
      local n = c:incr("counter")
      lu.assertEquals(c:get("k" .. i), tostring(i))
      return n
    end)
  end
  local res = async.gather(tasks)
  local seen = {}
  for i = 1, 1000 do seen[res[i]] = true end
  for i = 1, 1000 do lu.assertTrue(seen[i]) end            -- each INCR once
  lu.assertEquals(c:get("counter"), "1000")
  -- one task's commands come back in the order sent
  local order = {}
  for i = 1, 100 do order[i] = async.spawn(c.incr, c, "seq") end
  for i = 1, 100 do lu.assertEquals(order[i]:await(), i) end
  lu.assertEquals(c:info("clients"):match("connected_clients:(%d+)"), "1")  -- one connection
end

function TestRedisClient:test_pipeline_and_transaction()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  local res = c:pipeline(function(p)
    p:set("a", 1)
    p:incr("a")
    p:lpush("a", "x")                                      -- an error in place
    p:call("GET", "a")
  end)
  lu.assertEquals(res[1], "OK")
  lu.assertEquals(res[2], 2)
  lu.assertTrue(redis.is_error(res[3]))
  lu.assertEquals(res[3].code, "WRONGTYPE")
  lu.assertEquals(res[4], "2")
  lu.assertEquals(c:pipeline(function() end), {})
  res = c:transaction(function(tx)
    tx:incr("a")
    tx:incr("a")
  end)
  lu.assertEquals(res, {3, 4})
  local ok, e = pcall(c.transaction, c, function(tx) tx:incr("a"); tx:call("NOSUCH") end)
  lu.assertEquals(e.code, "EXECABORT")
  lu.assertStrContains(e.message, "command 2")
  lu.assertEquals(c:get("a"), "4")                         -- nothing of it ran
  ok, e = pcall(c.pipeline, c, function(p) p:blpop("x", 0) end)
  lu.assertStrContains(e, "not allowed in a pipeline")
  -- optimistic locking on a dedicated connection
  local r = c:dedicated(function(d)
    d:watch("a")
    local v = tonumber(d:get("a"))
    c:set("a", 100)                                        -- another client changes it
    return d:transaction(function(tx) tx:set("a", v + 1) end)
  end)
  lu.assertNil(r)                                          -- EXEC aborted
  lu.assertEquals(c:get("a"), "100")
end

function TestRedisClient:test_blocking_commands_use_the_pool()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  local got = async.spawn(function() return c:blpop("jobs", 0) end)
  async.sleep(0)
  lu.assertEquals(c:call("PING"), "PONG")                  -- the shared connection flows
  c:rpush("jobs", "j1")
  lu.assertEquals(got:await(), {"jobs", "j1"})
  -- XREADGROUP BLOCK too
  c:call("XGROUP", "CREATE", "st", "g", "$", "MKSTREAM")
  local rd = async.spawn(function()
    return c:call("XREADGROUP", "GROUP", "g", "w", "BLOCK", 0, "STREAMS", "st", ">")
  end)
  async.sleep(0)
  c:call("XADD", "st", "*", "k", "v")
  lu.assertEquals(rd:await()[1][1], "st")
  -- a cancelled blocking command closes its connection (its reply is owed)
  local t = async.spawn(function() return c:blpop("never", 0) end)
  async.sleep(0)
  lu.assertEquals(c:llen("never"), 0)
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertErrorMsgContains("timed out", function()
    async.timeout(0.05, c.blpop, c, "never", 0)
  end)
  c:rpush("never", "x")                                    -- nobody took it
  lu.assertEquals(c:lpop("never"), "x")
end

function TestRedisClient:test_cancel_keeps_the_pipeline_in_order()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  c:call("DEBUG", "SLEEP", 0)
  local slow = async.spawn(function() return c:call("DEBUG", "SLEEP", 0.05) end)
  local after = async.spawn(function() return c:incr("x") end)
  async.sleep(0)
  slow:cancel()                                            -- its reply is read and dropped
  lu.assertEquals(after:await(), 1)
  lu.assertEquals(c:incr("x"), 2)
  -- the client's timeout option
  local t <close> = redis.connect{url = srv:url(), timeout = 0.02}
  local ok, e = pcall(t.call, t, "DEBUG", "SLEEP", 0.2)
  lu.assertTrue(async.is_timeout(e))
  lu.assertEquals(c:incr("x"), 3)                          -- after the server's sleep
  lu.assertEquals(t:incr("x"), 4)
end

function TestRedisClient:test_closed_client()
  local srv <close> = rs.start(lu)
  local c = redis.connect(srv:url())
  local inflight = async.spawn(function() return c:call("DEBUG", "SLEEP", 0.05) end)
  async.sleep(0)
  c:close()
  local ok, e = pcall(inflight.await, inflight)
  lu.assertEquals(e.code, "ECLOSED")
  ok, e = pcall(c.get, c, "x")
  lu.assertEquals(e.code, "ECLOSED")
  c:close()                                                -- idempotent
  lu.assertStrContains(tostring(c), "closed")
  no_connections()
end

function TestRedisClient:test_no_descriptor_left()
  local io_ = require "iosupport"
  local srv <close> = rs.start(lu)
  local a, b = io_.pair()                                  -- libuv's reserve descriptor first
  a:close(); b:close()
  local before = io_.fds()
  for _ = 1, 3 do
    local c = redis.connect(srv:url())
    local sub = c:subscriber()
    sub:subscribe("x")
    local blocked = async.spawn(function() return c:blpop("nothing", 0) end)
    c:set("k", "v")
    local inflight = async.spawn(function() return c:call("DEBUG", "SLEEP", 0.01) end)
    async.sleep(0)
    blocked:cancel()
    pcall(blocked.await, blocked)
    c:close()                                             -- the subscriber with it
    pcall(inflight.await, inflight)
  end
  no_connections()
  lu.assertEquals(io_.fds(), before)
end

function TestRedisClient:test_native_misuse()
  local core = require "async.core.redis"
  lu.assertErrorMsgContains("RedisConn expected", core.Conn.__index.call, {}, "GET")
  lu.assertErrorMsgContains("port out of range", core.open, "127.0.0.1", 70000)
  lu.assertErrorMsgContains("number expected", core.open, "127.0.0.1", "x")
  lu.assertErrorMsgContains("No such file or directory (ENOENT)", core.open, "/nonexistent/sock")
  local srv <close> = rs.start(lu)
  local conn = core.open("127.0.0.1", srv.port)
  lu.assertErrorMsgContains("not connected yet", conn.call, conn, "PING")
  lu.assertErrorMsgContains("a list expected", conn.pipeline, conn, {{"PING"}, 5})
  lu.assertErrorMsgContains("command 1 is empty", conn.pipeline, conn, {{}})
  conn:ready()
  lu.assertEquals(conn:status(), "open")
  lu.assertErrorMsgContains("SUBSCRIBE or (P)UNSUBSCRIBE expected", conn.subscribe, conn, "PING")
  conn:subscribe("SUBSCRIBE", "ch")
  lu.assertErrorMsgContains("the connection is subscribed", conn.call, conn, "PING")
  lu.assertEquals(conn:next_message(), {"subscribe", "ch", 1})
  conn:close()
  lu.assertErrorMsgContains("closed", conn.call, conn, "PING")
  lu.assertErrorMsgContains("closed", conn.pipeline, conn, {{"PING"}})
  lu.assertEquals(conn:status(), "closed")
  no_connections()
end

TestRedisReconnect = support.suite({}, 30)

function TestRedisReconnect:test_server_restarted_in_the_middle()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect{url = srv:url(), reconnect_delay = 0.01}
  c:set("k", "v")
  local inflight = async.spawn(function() return c:call("DEBUG", "SLEEP", 5) end)
  async.sleep(0.01)
  srv:stop(true)                                           -- SIGKILL: a crash
  local ok, e = pcall(inflight.await, inflight)
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertStrContains(tostring(e), "connection lost")
  lu.assertStrContains(tostring(e), "may or may not have run")
  srv:start()
  lu.assertNil(c:get("k"))                                 -- reconnected (a fresh server)
  lu.assertEquals(c.reconnects, 1)
  c:set("k", "again")
  lu.assertEquals(c:get("k"), "again")
  -- the server gone for good: the reconnect gives up with its error
  local c2 <close> = redis.connect{url = srv:url(), reconnect_attempts = 2, reconnect_delay = 0.001}
  c2:get("k")
  srv:stop()
  ok, e = pcall(c2.get, c2, "k")
  lu.assertEquals(e.code, "ECONNREFUSED")
  lu.assertEquals(c2.reconnects, 0)
  srv:start()
  lu.assertNil(c2:get("k"))                                -- the next command tries again
  lu.assertEquals(c2.reconnects, 1)
end

function TestRedisReconnect:test_idempotent_commands_are_sent_again()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect{url = srv:url(), reconnect_delay = 0.01, idempotent = {"get"}}
  c:set("k", "v")
  local slow = async.spawn(function() return c:call("DEBUG", "SLEEP", 5) end)
  local get = async.spawn(function() return c:get("k") end)     -- in flight behind it
  local incr = async.spawn(function() return c:incr("n") end)
  async.sleep(0.01)
  srv:stop(true)
  srv:start()
  local lost = {EOF = true, ECONNRESET = true}             -- FIN or RST, as the kernel sends
  lu.assertTrue(lost[select(2, pcall(slow.await, slow)).code])
  lu.assertTrue(lost[select(2, pcall(incr.await, incr)).code])  -- not declared: not repeated
  lu.assertNil(get:await())                                -- sent again, to the new server
  lu.assertErrorMsgContains("list of command names", redis.connect, {idempotent = "GET"})
end

TestRedisPubSub = support.suite({}, 30)

function TestRedisPubSub:test_subscribe_publish_patterns()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect(srv:url())
  local sub <close> = c:subscriber()
  sub:subscribe("news", "sport")
  sub:psubscribe("log.*")
  lu.assertEquals(c:publish("news", "hello"), 1)
  c:publish("log.error", "disk")
  c:publish("sport", "goal")
  c:publish("other", "nobody")
  local m = sub:next(5)
  lu.assertEquals(m, {kind = "message", channel = "news", data = "hello"})
  m = sub:next(5)
  lu.assertEquals(m, {kind = "pmessage", pattern = "log.*", channel = "log.error", data = "disk"})
  lu.assertEquals(sub:next(5).data, "goal")
  sub:unsubscribe("news")
  lu.assertEquals(c:publish("news", "gone"), 0)
  lu.assertTrue(async.is_timeout(select(2, pcall(sub.next, sub, 0.01))))
  -- many messages, in order, through the iterator
  local got = {}
  local reader = async.spawn(function()
    for msg in sub:messages(5) do
      got[#got + 1] = msg.data
      if #got == 100 then break end
    end
  end)
  for i = 1, 100 do c:publish("sport", tostring(i)) end
  reader:await()
  for i = 1, 100 do lu.assertEquals(got[i], tostring(i)) end
  lu.assertErrorMsgContains("string expected", sub.subscribe, sub, 1)
  -- close ends a waiting reader
  local waiting = async.spawn(function() return sub:next() end)
  async.sleep(0)
  sub:close()
  lu.assertNil(waiting:await())
  lu.assertNil(sub:next())
  lu.assertErrorMsgContains("closed", sub.subscribe, sub, "x")
end

function TestRedisPubSub:test_subscriptions_restored_after_restart()
  local srv <close> = rs.start(lu)
  local c <close> = redis.connect{url = srv:url(), reconnect_delay = 0.01}
  local sub <close> = c:subscriber{notify_reconnect = true}
  sub:subscribe("a")
  sub:psubscribe("p.*")
  srv:stop(true)
  srv:start()
  lu.assertEquals(sub:next(10), {kind = "reconnected"})   -- after the resubscription
  lu.assertTrue(sub.reconnects >= 1)
  c:publish("a", "1")
  c:publish("p.x", "2")
  lu.assertEquals(sub:next(5).data, "1")
  lu.assertEquals(sub:next(5).data, "2")
end

support.run(...)
