-- redis_pubsub.lua: async.redis in one script: a shared client that many
-- tasks use at once (their commands are pipelined on one connection), a
-- transaction, a blocking pop that does not stall the others, and pub/sub
-- between a publisher task and two subscribers (one by pattern).
--
--   lasync scripts/redis_pubsub.lua [redis-url]
--
-- Without a URL it starts a redis-server of its own in a temporary
-- directory on a free port and stops it at the end.
local async = require "async"

local function start_redis()
  if not async.process.run("sh", "-c", "command -v redis-server").ok then return nil end
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  local dir = async.process.run("mktemp", "-d").stdout:gsub("%s+$", "")
  local p = async.process.spawn{"redis-server", "--port", tostring(port), "--bind", "127.0.0.1",
    "--dir", dir, "--save", "", "--appendonly", "no", stdout = "pipe", stdin = "ignore"}
  repeat
    local line = assert(p.stdout:read_line(), "redis-server did not start")
  until line:find("Ready to accept connections", 1, true)
  local drain = async.spawn(function() while p.stdout:read() do end end)
  return ("redis://127.0.0.1:%d"):format(port), function()
    p:kill("SIGTERM"); p:wait(); drain:await(); p:close()
    async.process.run("rm", "-rf", dir)
  end
end

local url, stop = arg[1], nil
if not url then
  url, stop = start_redis()
  if not url then print("SKIPPED: redis-server is not installed (make deps)") return end
end
local _ <close> = setmetatable({}, {__close = function() if stop then stop() end end})

local r <close> = async.redis.connect(url)

-- 500 tasks counting page views at once: one connection, a few writes.
local pages = {"/", "/docs", "/blog"}
async.scope(function(s)
  for i = 1, 500 do s:spawn(function() r:hincrby("views", pages[i % 3 + 1], 1) end) end
end)
local views = r:hgetall("views")
print("views:", table.concat(views, " "))

-- A transfer that is all or nothing.
r:mset("alice", 100, "bob", 0)
local res = r:transaction(function(tx)
  tx:decrby("alice", 30)
  tx:incrby("bob", 30)
end)
assert(res[1] == 70 and res[2] == 30)

-- A blocking pop waits on a pool connection; the shared one keeps going.
local popped = async.spawn(function() return r:blpop("inbox", 5) end)
assert(r:call("PING") == "PONG")
r:rpush("inbox", "hello")
assert(popped:await()[2] == "hello")

-- Pub/sub: two subscribers, one on a channel, one on a pattern.
local news <close> = r:subscriber()
news:subscribe("news")
local all <close> = r:subscriber()
all:psubscribe("*")
for i = 1, 3 do r:publish("news", "headline " .. i) end
r:publish("weather", "sunny")
for i = 1, 3 do assert(news:next(5).data == "headline " .. i) end
local seen = {}
for _ = 1, 4 do
  local m = all:next(5)
  seen[#seen + 1] = m.channel .. ": " .. m.data
end
print("pattern subscriber saw: " .. table.concat(seen, ", "))
assert(seen[4] == "weather: sunny")
r:del("views", "alice", "bob")
print("ok")
