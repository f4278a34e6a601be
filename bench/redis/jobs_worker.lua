-- bench/redis/jobs_worker.lua URL: a worker of jobs.lua's queue (a handler
-- that returns its argument); prints "ready", and its counts on SIGTERM.
local r <close> = async.redis.connect(arg[1])
local q = async.jobs.queue{redis = r, name = "bench"}
local w = async.jobs.worker{queue = q, concurrency = 50, handlers = {echo = function(a) return a.n end}}
local stop = async.event()
local h = async.signal.on("SIGTERM", function() stop:set() end)
print("ready"); io.stdout:flush()
stop:wait()
h:remove()
w:stop(5)
print(("done=%d"):format(w.counts.done)); io.stdout:flush()
