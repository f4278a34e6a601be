-- jobs_producer.lua: spreads jobs over several worker processes through
-- a Redis job queue (async.jobs), and prints the throughput and how many
-- jobs each worker ran.
--
--   lasync scripts/jobs_producer.lua [jobs] [workers] [redis-url]
--   lasync scripts/jobs_producer.lua 10000 3       the full run
--
-- Defaults: 2000 jobs (`make test` runs it without arguments, also under
-- the sanitizers), 3 workers, and a redis-server of its own started
-- in a temporary directory on a free port (stopped at the end). With a
-- URL, it uses that server; the workers (scripts/jobs/worker.lua) could
-- as well run on other machines: start them there with the same URL.
local async = require "async"

local N = math.tointeger(tonumber(arg[1] or "2000"))
local WORKERS = math.tointeger(tonumber(arg[2] or "3"))
local url = arg[3]
local LASYNC = arg[-1] or "lasync"
local here = arg[0]:match("^(.*)/[^/]*$") or "."

-- A redis-server of our own: temporary directory, free port.
local function start_redis()
  local which = async.process.run("sh", "-c", "command -v redis-server")
  if not which.ok then return nil end
  local l = require("async.core.net").tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  local dir = async.process.run("mktemp", "-d").stdout:gsub("%s+$", "")
  local p = async.process.spawn{"redis-server", "--port", tostring(port), "--bind", "127.0.0.1",
    "--dir", dir, "--save", "", "--appendonly", "no", stdout = "pipe", stdin = "ignore"}
  async.timeout(10, function()
    repeat
      local line = assert(p.stdout:read_line(), "redis-server did not start")
    until line:find("Ready to accept connections", 1, true)
  end)
  local drain = async.spawn(function() while p.stdout:read() do end end)
  return ("redis://127.0.0.1:%d"):format(port), function()
    p:kill("SIGTERM"); p:wait(); drain:await(); p:close()
    async.process.run("rm", "-rf", dir)
  end
end

-- SIGTERM (a supervisor, a test runner's timeout) cancels the script, so
-- the cleanup below stops the workers and the server (Ctrl-C does anyway).
local main = async.current()
local on_term = async.signal.on("SIGTERM", function() main:cancel("SIGTERM") end)

local stop_redis
if not url then
  url, stop_redis = start_redis()
  if not url then
    print("SKIPPED: redis-server is not installed (make deps)")
    return
  end
end
-- Stopped however the script ends (an error, Ctrl-C).
local _ <close> = setmetatable({}, {__close = function() if stop_redis then stop_redis() end end})
local client <close> = async.redis.connect(url)
local qname = "producer-demo-" .. async.signal.getpid()
local q = async.jobs.queue{redis = client, name = qname}

-- The workers: separate processes, each announcing itself when ready.
local procs = {}
local _ <close> = setmetatable({}, {__close = function()
  for _, p in ipairs(procs) do if not p:status() then p:kill("SIGKILL"); p:wait() end; p:close() end
end})
for i = 1, WORKERS do
  local p = async.process.spawn{LASYNC, here .. "/jobs/worker.lua", url, qname, "100", "30",
                                stdout = "pipe", stdin = "ignore"}
  procs[i] = p
  assert(p.stdout:read_line():match("^ready "), "worker did not start")
end

-- Push every job (100 tasks at a time, pipelined on one connection) and
-- wait for every result.
local t0 = async.time()
local results, per_worker = {}, {}
async.scope(function(s)
  for k = 1, 100 do
    s:spawn(function()
      for i = k, N, 100 do
        results[i] = q:push("square", {n = i}):await(60)
      end
    end)
  end
end)
local elapsed = async.time() - t0

for i = 1, N do
  local r = results[i]
  assert(r and r.n == i and r.square == i * i, "job " .. i .. " has a wrong result")
  per_worker[r.worker] = (per_worker[r.worker] or 0) + 1
end

-- Stop the workers (SIGTERM: they finish what runs) and read their counts.
local total = 0
for _, p in ipairs(procs) do
  p:kill("SIGTERM")
  local line
  repeat line = p.stdout:read_line() until not line or line:match("^counts ")
  assert(line, "a worker ended without its counts")
  p:wait()
  local name, done = line:match("^counts (%S+) done=(%d+)")
  total = total + tonumber(done)
  assert(tonumber(done) == (per_worker[name] or 0), "counts differ for " .. name)
end
assert(total == N, ("%d jobs done, %d pushed"):format(total, N))

print(("%d jobs through %d worker processes in %.2f s: %.0f jobs/s"):format(N, WORKERS, elapsed,
                                                                            N / elapsed))
local names = {}
for name in pairs(per_worker) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do print(("  worker %s: %d jobs"):format(name, per_worker[name])) end
q:destroy()
on_term:remove()
