-- redis_cluster.lua: async.redis on a Redis Cluster: one client for three
-- masters, tasks whose keys land on different nodes, keys kept together
-- by a {hash tag} for a transaction, a refused cross-slot command, and a
-- job queue with a worker on the cluster.
--
--   lasync scripts/redis_cluster.lua [host:port,host:port,...]
--
-- Without seeds it starts three redis-servers of its own (cluster mode,
-- a temporary directory, free ports), gives each a third of the slots,
-- joins them, and stops them at the end.
local async = require "async"

local function free_port()
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  return port
end

local function start_cluster()
  if not async.process.run("sh", "-c", "command -v redis-server").ok then return nil end
  local dir = async.process.run("mktemp", "-d").stdout:gsub("%s+$", "")
  local procs, ports, buses, drains = {}, {}, {}, {}
  for i = 1, 3 do
    ports[i], buses[i] = free_port(), free_port()
    local p = async.process.spawn{"redis-server", "--port", tostring(ports[i]), "--bind", "127.0.0.1",
      "--dir", dir, "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
      "--cluster-config-file", ("%s/nodes%d.conf"):format(dir, i),
      "--cluster-port", tostring(buses[i]), stdout = "pipe", stdin = "ignore"}
    repeat
      local line = assert(p.stdout:read_line(), "redis-server did not start")
    until line:find("Ready to accept connections", 1, true)
    local out = p.stdout
    procs[i], drains[i] = p, async.spawn(function() while out:read() do end end)
  end
  -- a third of the 16384 slots each, then node 1 meets the others
  local first = async.redis.connect{host = "127.0.0.1", port = ports[1]}
  for i = 1, 3 do
    local c <close> = async.redis.connect{host = "127.0.0.1", port = ports[i]}
    c:call("CLUSTER", "ADDSLOTSRANGE", (i - 1) * 5462, math.min(i * 5462 - 1, 16383))
    if i > 1 then first:call("CLUSTER", "MEET", "127.0.0.1", ports[i], buses[i]) end
  end
  first:close()
  -- up once every node says so (a fresh master waits about 2 s before it does)
  async.timeout(30, function()
    for i = 1, 3 do
      local c <close> = async.redis.connect{host = "127.0.0.1", port = ports[i]}
      while not c:call("CLUSTER", "INFO"):find("cluster_state:ok", 1, true) do async.sleep(0.05) end
    end
  end)
  local seeds = {}
  for i = 1, 3 do seeds[i] = "127.0.0.1:" .. ports[i] end
  return seeds, function()
    for i = 1, 3 do procs[i]:kill("SIGTERM"); procs[i]:wait(); drains[i]:await(); procs[i]:close() end
    async.process.run("rm", "-rf", dir)
  end
end

local seeds, stop
if arg[1] then
  seeds = {}
  for s in arg[1]:gmatch("[^,]+") do seeds[#seeds + 1] = s end
else
  seeds, stop = start_cluster()
  if not seeds then print("SKIPPED: redis-server is not installed (make deps)") return end
end
local _ <close> = setmetatable({}, {__close = function() if stop then stop() end end})

local rc <close> = async.redis.connect{cluster = seeds}
print(rc)

-- 300 tasks, each on its own key: the keys spread over the masters, each
-- master's commands pipelined on its own connection.
async.scope(function(s)
  for i = 1, 300 do s:spawn(function() rc:set("visits:" .. i, i) end) end
end)
local per_node = {}
for i, n in ipairs(rc:nodes()) do
  local keys = n:dbsize()
  per_node[i] = keys
  assert(keys > 50, "a master holds few keys")
end
print("keys per master:", table.concat(per_node, " "))
assert(rc:get("visits:42") == "42")

-- One {hash tag}: the keys share a slot, so a transaction may hold them.
rc:mset("{acct}:alice", 100, "{acct}:bob", 0)
local res = rc:transaction(function(tx)
  tx:decrby("{acct}:alice", 30)
  tx:incrby("{acct}:bob", 30)
end)
assert(res[1] == 70 and res[2] == 30)

-- Keys of different slots in one command are refused before sending.
local ok, e = pcall(rc.mget, rc, "visits:1", "visits:2")
assert(not ok and e.code == "CROSSSLOT")
print("refused:", e.message)

-- A job queue on the cluster: all its keys carry {thumbs}, one node.
local q = async.jobs.queue{redis = rc, name = "thumbs"}
local w <close> = async.jobs.worker{queue = q, concurrency = 4, poll = 0.05, handlers = {
  resize = function(args) return args.w * args.h end,
}}
local jobs = {}
for i = 1, 10 do jobs[i] = q:push("resize", {w = i, h = 10}) end
for i = 1, 10 do assert(jobs[i]:await(10) == i * 10) end
print("jobs done:", #jobs)
w:stop()
q:destroy()
for _, n in ipairs(rc:nodes()) do n:call("FLUSHALL") end
