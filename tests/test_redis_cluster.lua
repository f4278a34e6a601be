-- tests/test_redis_cluster.lua: async.redis on a real Redis Cluster of
-- three masters started here (tests/redissupport.lua): keys spread over
-- the nodes, hash tags, CROSSSLOT refused before sending, a slot migrated
-- by hand (ASK while it moves, MOVED after), pipelines and transactions,
-- blocking commands, pub/sub, a jobs queue with a worker, a killed node,
-- and misuse.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local rs = require "redissupport"
local redis = async.redis

local no_connections = rs.no_connections

-- A plain client on node i of the cluster (for what the test does by hand).
local function direct(cl, i)
  return redis.connect{host = "127.0.0.1", port = cl.nodes[i].port}
end

-- Which node (1..n) of the cluster serves slot s, by asking node 1.
local function owner(cl, s)
  local c <close> = direct(cl, 1)
  for _, r in ipairs(c:call("CLUSTER", "SLOTS")) do
    if s >= r[1] and s <= r[2] then
      for i, n in ipairs(cl.nodes) do if n.port == r[3][2] then return i end end
    end
  end
end

TestRedisCluster = support.suite({}, 60)

function TestRedisCluster:test_keys_spread_over_the_nodes_and_read_back()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = {cl.seeds[2]}}     -- one seed is enough
  lu.assertStrContains(tostring(c), "RedisCluster<127.0.0.1:")
  lu.assertStrContains(tostring(c), "3 masters")
  local tasks = {}
  for t = 1, 50 do
    tasks[t] = async.spawn(function()
      for i = t, 1000, 50 do c:set("key:" .. i, "v" .. i) end
    end)
  end
  async.gather(table.unpack(tasks))
  local total = 0
  for i = 1, 3 do
    local d <close> = direct(cl, i)
    local n = d:dbsize()
    lu.assertTrue(n > 200, "node " .. i .. " holds " .. n .. " keys")
    total = total + n
  end
  lu.assertEquals(total, 1000)
  for t = 1, 50 do
    tasks[t] = async.spawn(function()
      for i = t, 1000, 50 do lu.assertEquals(c:get("key:" .. i), "v" .. i) end
    end)
  end
  async.gather(table.unpack(tasks))
  -- the slot computed here is the server's (CRC16 and hash tags)
  local d <close> = direct(cl, 1)
  local keys = require "async.internal.redis_keys"
  for _, k in ipairs{"", "a", "key:1", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap",
                     "foo{bar}{zap}", "{", "}{", "\0\255x", "123456789"} do
    lu.assertEquals(keys.slot(k), d:call("CLUSTER", "KEYSLOT", k), k)
  end
  lu.assertEquals(keys.crc16("123456789", 1, 9), 0x31C3)      -- the XMODEM check value
  c:close()
  lu.assertStrContains(tostring(c), "closed")
  local ok, e = pcall(c.get, c, "key:1")
  lu.assertFalse(ok)
  lu.assertEquals(e.code, "ECLOSED")
  d:close()
  no_connections()
end

function TestRedisCluster:test_hash_tags_crossslot_pipeline_transaction()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect("redis+cluster://" .. table.concat(cl.seeds, ","))
  -- keys with one tag go together: multi-key commands work
  lu.assertEquals(c:mset("{u1}:name", "ann", "{u1}:age", 7), "OK")
  lu.assertEquals(c:mget("{u1}:name", "{u1}:age"), {"ann", "7"})
  lu.assertEquals(c:call("EVAL", "return redis.call('GET', KEYS[1]) .. #KEYS", 2, "{u1}:name", "{u1}:age"),
                  "ann2")
  -- different slots: refused here, nothing sent
  local ok, e = pcall(c.mset, c, "a", 1, "b", 2)
  lu.assertFalse(ok)
  lu.assertEquals(e.code, "CROSSSLOT")
  lu.assertStrContains(e.message, 'keys "a" and "b" are in different hash slots')
  lu.assertNil(c:get("a"))
  ok, e = pcall(c.call, c, "EVAL", "return 1", 2, "a", "b")
  lu.assertEquals(e.code, "CROSSSLOT")
  ok, e = pcall(c.pipeline, c, function(p) p:set("a", 1); p:set("b", 1) end)
  lu.assertEquals(e.code, "CROSSSLOT")
  lu.assertStrContains(e.message, "commands 1 and 2")
  ok, e = pcall(c.transaction, c, function(p) p:set("a", 1); p:set("b", 1) end)
  lu.assertEquals(e.code, "CROSSSLOT")
  lu.assertNil(c:get("a"))
  -- one slot: pipelines and transactions run on its node; keyless commands go along
  local r = c:pipeline(function(p) p:set("{u2}a", 1); p:incr("{u2}a"); p:call("PING"); p:get("{u2}a") end)
  lu.assertEquals(r, {"OK", 2, "PONG", "2"})
  r = c:transaction(function(t) t:incr("{u2}a"); t:rpush("{u2}l", "x", "y") end)
  lu.assertEquals(r, {3, 2})
  lu.assertEquals(c:pipeline(function() end), {})
  -- subcommands and keyword-found keys route by their key too
  lu.assertEquals(c:call("XGROUP", "CREATE", "{u3}s", "g", "0", "MKSTREAM"), "OK")
  c:call("XADD", "{u3}s", "*", "f", "v")
  r = c:call("XREADGROUP", "GROUP", "g", "me", "COUNT", 1, "STREAMS", "{u3}s", ">")
  lu.assertEquals(r[1][1], "{u3}s")
  lu.assertEquals(c:call("OBJECT", "ENCODING", "{u2}a"), "int")
  -- SORT's keys are not all in its key specs: the server tells them (COMMAND GETKEYS)
  c:rpush("{s}l", 3, 1, 2)
  lu.assertEquals(c:sort("{s}l"), {"1", "2", "3"})
  lu.assertEquals(c:sort("{s}l", "STORE", "{s}sorted"), 3)
  lu.assertEquals(c:lrange("{s}sorted", 0, -1), {"1", "2", "3"})
  ok, e = pcall(c.sort, c, "{s}l", "STORE", "elsewhere")
  lu.assertEquals(e.code, "CROSSSLOT")
  c:close()
  no_connections()
end

-- Moves slot s from node src to node dst by hand, the way redis-cli
-- --cluster reshard does; between importing/migrating and `finish`, the
-- keys already moved are served by dst after ASKING.
local function start_migration(cl, s, src, dst)
  local a <close> = direct(cl, src)
  local b <close> = direct(cl, dst)
  local src_id, dst_id = a:call("CLUSTER", "MYID"), b:call("CLUSTER", "MYID")
  b:call("CLUSTER", "SETSLOT", s, "IMPORTING", src_id)
  a:call("CLUSTER", "SETSLOT", s, "MIGRATING", dst_id)
  return function(...)
    local x <close> = direct(cl, src)
    local y <close> = direct(cl, dst)
    local ks = {...}
    if #ks > 0 then
      x:call("MIGRATE", "127.0.0.1", cl.nodes[dst].port, "", 0, 5000, "KEYS", ...)
    end
    y:call("CLUSTER", "SETSLOT", s, "NODE", dst_id)
    x:call("CLUSTER", "SETSLOT", s, "NODE", dst_id)
    for i = 1, #cl.nodes do
      if i ~= src and i ~= dst then
        local z <close> = direct(cl, i)
        z:call("CLUSTER", "SETSLOT", s, "NODE", dst_id)
      end
    end
  end
end

function TestRedisCluster:test_migrated_slot_ask_then_moved()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = cl.seeds}
  local keys = require "async.internal.redis_keys"
  local s = keys.slot("{m}")
  local src = owner(cl, s)
  local dst = src % 3 + 1
  c:set("{m}old", "before")
  local refreshes = c.refreshes
  local finish = start_migration(cl, s, src, dst)
  -- a key src has not got: src answers ASK, the client asks dst
  lu.assertEquals(c:set("{m}new", "moved-early"), "OK")
  lu.assertEquals(c:get("{m}new"), "moved-early")
  local r = c:pipeline(function(p) p:get("{m}old"); p:get("{m}new"); p:incr("{m}n") end)
  lu.assertEquals(r, {"before", "moved-early", 1})
  local ok, e = pcall(c.transaction, c, function(t) t:get("{m}new") end)
  lu.assertFalse(ok)
  lu.assertEquals(e.code, "TRYAGAIN")
  lu.assertStrContains(e.message, "being migrated")
  lu.assertEquals(c.refreshes, refreshes)              -- ASK leaves the slot map alone
  do
    local b <close> = direct(cl, dst)                  -- it is on dst indeed
    lu.assertEquals(b:dedicated(function(d) d:call("ASKING"); return d:get("{m}new") end),
                    "moved-early")
  end
  finish("{m}old")
  -- the client's map still says src: src answers MOVED, the client follows
  lu.assertEquals(c:get("{m}old"), "before")
  lu.assertEquals(c.refreshes, refreshes + 1)
  lu.assertEquals(c:get("{m}new"), "moved-early")
  lu.assertEquals(c.refreshes, refreshes + 1)          -- no MOVED again
  -- a pipeline and a transaction on a map gone stale again
  finish = start_migration(cl, s, dst, src)
  finish("{m}old", "{m}new", "{m}n")
  r = c:transaction(function(t) t:get("{m}old"); t:incr("{m}n") end)
  lu.assertEquals(r, {"before", 2})
  lu.assertEquals(c.refreshes, refreshes + 2)
  finish = start_migration(cl, s, src, dst)
  finish("{m}old", "{m}new", "{m}n")
  r = c:pipeline(function(p) p:get("{m}old"); p:incr("{m}n") end)
  lu.assertEquals(r, {"before", 3})
  c:close()
  no_connections()
end

function TestRedisCluster:test_blocking_and_pubsub()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = cl.seeds}
  local waiting = async.spawn(function() return c:blpop("{q}list", 0) end)
  local pushed = async.spawn(function()
    -- the shared connections keep flowing while BLPOP waits on a pool one
    for i = 1, 10 do c:set("other" .. i, i) end
    return c:rpush("{q}list", "job")
  end)
  lu.assertEquals(waiting:await(), {"{q}list", "job"})
  pushed:await()
  local sub <close> = c:subscriber()
  sub:subscribe("news")
  for i = 1, 3 do
    -- a PUBLISH to any node reaches the subscriber: classic pub/sub is broadcast
    local d <close> = direct(cl, i)
    d:publish("news", "from " .. i)
  end
  local got = {}
  for i = 1, 3 do got[i] = sub:next(10).data end
  table.sort(got)
  lu.assertEquals(got, {"from 1", "from 2", "from 3"})
  sub:close()
  c:close()
  no_connections()
end

function TestRedisCluster:test_jobs_queue_on_the_cluster()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = cl.seeds}
  local q = async.jobs.queue{redis = c, name = "clustered", retry_delay = 0.001}
  local w <close> = async.jobs.worker{queue = q, concurrency = 4, poll = 0.05, handlers = {
    double = function(args) return args.n * 2 end,
    flaky = function(args, job) if job.attempt < 2 then error("once") end return args.n end,
  }}
  local js = {}
  for i = 1, 20 do js[i] = q:push("double", {n = i}) end
  js[21] = q:push("flaky", {n = 7})
  js[22] = q:push("double", {n = 50}, {delay = 0.05, priority = "high"})
  for i = 1, 20 do lu.assertEquals(js[i]:await(20), 2 * i) end
  lu.assertEquals(js[21]:await(20), 7)
  lu.assertEquals(js[22]:await(20), 100)
  lu.assertEquals(js[1]:status(), "finished")
  lu.assertEquals(q:counts(), {queued = 0, delayed = 0, dead = 0})
  w:stop()
  q:destroy()
  local node = c:node(q.prefix)
  lu.assertEquals(node:call("KEYS", "*clustered*"), {})
  c:close()
  no_connections()
end

function TestRedisCluster:test_killed_node_gives_a_clear_error()
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = cl.seeds}
  local keys = require "async.internal.redis_keys"
  local victim = owner(cl, keys.slot("{dead}"))
  local alive = owner(cl, keys.slot("{live}"))
  if alive == victim then alive = owner(cl, keys.slot("{live2}")) end
  local live = alive == owner(cl, keys.slot("{live}")) and "{live}k" or "{live2}k"
  c:set("{dead}k", 1)
  c:set(live, 1)
  cl.nodes[victim]:stop(true)
  local addr = cl:addr(victim)
  for _ = 1, 2 do                 -- the connection lost, then the reconnect refused
    local ok, e = pcall(c.get, c, "{dead}k")
    lu.assertFalse(ok)
    lu.assertEquals(e.kind, "IOError")
    lu.assertEquals(e.node, addr)
    lu.assertStrContains(tostring(e), "cluster node " .. addr)
  end
  lu.assertEquals(c:incr(live), 2)                         -- the other nodes go on
  lu.assertEquals(c:call("PING"), "PONG")                  -- keyless: to a live node
  lu.assertEquals(c:call("ECHO", "x"), "x")
  c:close()
  no_connections()
end

function TestRedisCluster:test_misuse()
  local function err(f, ...)
    local ok, e = pcall(f, ...)
    lu.assertFalse(ok)
    return tostring(e)
  end
  lu.assertStrContains(err(redis.connect, {cluster = {}}), "option cluster must be a non-empty list")
  lu.assertStrContains(err(redis.connect, {cluster = "127.0.0.1:1"}), "option cluster must be")
  lu.assertStrContains(err(redis.connect, {cluster = {"nohost"}}), 'cluster[1] must be a "host:port"')
  lu.assertStrContains(err(redis.connect, {cluster = {"127.0.0.1:1"}, db = 2}), "only db 0")
  lu.assertStrContains(err(redis.connect, {cluster = {"127.0.0.1:1"}, timeout = "x"}),
                       "option timeout must be a number")
  lu.assertStrContains(err(redis.connect, "redis+cluster://"), "bad URL")
  -- nobody there: an IOError naming what was tried
  local ok, e = pcall(redis.connect, {cluster = {"127.0.0.1:1"}})
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "IOError")
  lu.assertStrContains(e.message, "no cluster node answered CLUSTER SLOTS (tried 127.0.0.1:1)")
  local cl <close> = rs.start_cluster(lu, 3)
  local c <close> = redis.connect{cluster = cl.seeds}
  local Cluster = require("async.internal.redis_cluster").Cluster
  lu.assertStrContains(err(Cluster.call, 5, "GET", "k"),
                       "bad self to 'call' (lasync.RedisCluster expected, got number)")
  lu.assertStrContains(err(c.get, nil, "k"), "bad self to 'call'")
  lu.assertStrContains(err(Cluster.pipeline, {}, function() end), "bad self to 'pipeline'")
  lu.assertStrContains(err(c.call, c, nil), "command name expected")
  lu.assertStrContains(err(c.call, c, "SET", {}, 1), "string or number expected")
  lu.assertStrContains(err(c.call, c, "SUBSCRIBE", "x"), "client:subscriber()")
  lu.assertStrContains(err(c.call, c, "MULTI"), "client:transaction")
  lu.assertStrContains(err(c.pipeline, c, 5), "function expected")
  lu.assertStrContains(err(c.transaction, c, nil), "function expected")
  lu.assertStrContains(err(c.node, c, nil), "key expected")
  lu.assertStrContains(err(c.dedicated, c, function() end), "cluster:node(key):dedicated")
  lu.assertStrContains(err(c.pipeline, c, function(p) p:call() end), "command name expected")
  -- the server's own errors come back as they are
  ok, e = pcall(c.call, c, "NOSUCHCOMMAND", "x")
  lu.assertEquals(e.code, "ERR")
  c:close()
  no_connections()
end

support.run(...)
