-- scripts/jobs/worker.lua: a job queue worker process. Start it as many
-- times as you like, on as many machines as can reach Redis:
--
--   lasync scripts/jobs/worker.lua redis://host:6379 [queue] [concurrency] [visibility] [mode]
--
-- It runs the jobs of the queue (default "demo") until SIGTERM or SIGINT,
-- then finishes the running ones (up to 5 s) and prints its counts as
-- "counts <name> done=N failed=N retried=N dead=N reclaimed=N".
-- scripts/jobs_producer.lua starts several and feeds them.
-- mode "hang" makes every job hang (for the tests' killed worker).
local async = require "async"

local url = arg[1] or os.getenv("REDIS_URL") or "redis://127.0.0.1:6379"
local qname = arg[2] or "demo"
local concurrency = math.tointeger(tonumber(arg[3] or "50"))
local visibility = tonumber(arg[4] or "30")
local mode = arg[5] or "normal"

local client <close> = async.redis.connect(url)
local q = async.jobs.queue{redis = client, name = qname, visibility = visibility, retry_delay = 0.05}
local name = ("w%d"):format(async.signal.getpid())

local handlers = {
  -- A unit of "work": a little CPU and a little waiting, as real jobs have.
  square = function(args, job)
    if mode == "hang" then
      client:rpush("jobs:started", job.id .. " " .. name)
      async.future():await()            -- never returns: this worker gets killed
    end
    client:rpush("jobs:started", job.id .. " " .. name)
    if args.sleep then async.sleep(args.sleep) end
    return {n = args.n, square = args.n * args.n, worker = name, attempt = job.attempt}
  end,
}

local w = async.jobs.worker{queue = q, handlers = handlers, concurrency = concurrency,
                            name = name, poll = math.min(1, visibility / 3)}
local stopping = async.event()
local on_term = async.signal.on("SIGTERM", function() stopping:set() end)
local on_int = async.signal.on("SIGINT", function() stopping:set() end)
io.stdout:write("ready ", name, "\n")
io.stdout:flush()
stopping:wait()
on_term:remove()
on_int:remove()
w:stop(5)
local c = w.counts
io.stdout:write(("counts %s done=%d failed=%d retried=%d dead=%d reclaimed=%d\n"):format(
  name, c.done, c.failed, c.retried, c.dead, c.reclaimed))
io.stdout:flush()
