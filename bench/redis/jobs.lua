-- bench/redis/jobs.lua PORT [N] [WORKERS]: jobs/s through async.jobs with
-- WORKERS worker processes (jobs_worker.lua, concurrency 50 each) started
-- first; the clock runs from the first push until every job is done.
local port, n, nw = tonumber(arg[1]), tonumber(arg[2] or "10000"), tonumber(arg[3] or "2")
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local url = ("redis://127.0.0.1:%d"):format(port)
local r <close> = async.redis.connect(url)
local q = async.jobs.queue{redis = r, name = "bench"}
q:destroy()
local procs = {}
for i = 1, nw do
  procs[i] = async.process.spawn{arg[-1], here .. "/jobs_worker.lua", url, stdout = "pipe"}
  assert(procs[i].stdout:read_line() == "ready")
end
local t0 = async.time()
async.scope(function(s)
  for k = 1, 100 do
    s:spawn(function() for i = k, n, 100 do q:push("echo", {n = i}) end end)
  end
end)
local tpush = async.time() - t0
while true do
  local c = q:counts()
  if c.queued == 0 and c.delayed == 0 then break end
  async.sleep(0.005)
end
local t = async.time() - t0
local done = 0
for _, p in ipairs(procs) do
  p:kill("SIGTERM")
  local line = p.stdout:read_line()
  done = done + tonumber(line:match("done=(%d+)"))
  p:wait(); p:close()
end
assert(done == n, ("done %d of %d"):format(done, n))
q:destroy()
print(("ok t=%.4f push_s=%.4f jobs_per_s=%.0f"):format(t, tpush, n / t))
