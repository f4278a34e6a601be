-- tests/test_jobs.lua: async.jobs against a real redis-server started here:
-- push and await, priorities, delay, dedup, retries with backoff, the
-- dead-letter stream, graceful shutdown, reclaim after the visibility
-- timeout, and three worker processes (scripts/jobs/worker.lua) of which
-- one is killed with SIGKILL in the middle of its jobs: every job
-- completes, none is lost.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local rs = require "redissupport"
local jobs = async.jobs

local function queue(c, name, o)
  o = o or {}
  o.redis, o.name = c, name
  o.retry_delay = o.retry_delay or 0.001
  return jobs.queue(o)
end

TestJobs = support.suite({}, 30)

function TestJobs:test_push_await_priorities_delay_dedup()
  local srv <close> = rs.start(lu)
  local c <close> = async.redis.connect(srv:url())
  local q = queue(c, "basic")
  local order = {}
  -- pushed before any worker runs: the worker takes high before low
  local low = q:push("note", {v = "low"}, {priority = "low"})
  local high = q:push("note", {v = "high"}, {priority = "high"})
  local w <close> = jobs.worker{queue = q, concurrency = 1, poll = 0.05, handlers = {
    note = function(args) order[#order + 1] = args.v; return args.v end,
    add = function(args, job) return {sum = args[1] + args[2], attempt = job.attempt} end,
  }}
  lu.assertEquals(low:await(5), "low")
  lu.assertEquals(high:await(5), "high")
  lu.assertEquals(order, {"high", "low"})
  lu.assertEquals(q:push("add", {2, 3}):await(5), {sum = 5, attempt = 1})
  -- delayed: in P:delayed until due, then run
  local d = q:push("note", {v = "later"}, {delay = 0.05})
  lu.assertEquals(d:await(5), "later")
  -- dedup: the second push returns the first job
  local a = q:push("add", {1, 1}, {dedup = "once"})
  local b = q:push("add", {1, 1}, {dedup = "once"})
  lu.assertTrue(a.new)
  lu.assertFalse(b.new)
  lu.assertEquals(a.id, b.id)
  lu.assertEquals(b:await(5).sum, 2)
  lu.assertEquals(a:status(), "finished")
  -- awaited by several tasks at once
  local j = q:push("note", {v = "shared"})
  local t1, t2 = async.spawn(j.await, j, 5), async.spawn(j.await, j, 5)
  lu.assertEquals(t1:await(), "shared")
  lu.assertEquals(t2:await(), "shared")
  lu.assertEquals(w.counts.done, 6)
  local counts = q:counts()
  lu.assertEquals(counts, {queued = 0, delayed = 0, dead = 0})
  -- misuse
  lu.assertErrorMsgContains("unknown priority", q.push, q, "note", {}, {priority = "urgent"})
  lu.assertErrorMsgContains("job kind expected", q.push, q, 42)
  lu.assertErrorMsgContains("option delay must be a number", q.push, q, "x", {}, {delay = "soon"})
  lu.assertErrorMsgContains("option name", jobs.queue, {redis = c})
  lu.assertErrorMsgContains("option redis", jobs.queue, {name = "x"})
  lu.assertErrorMsgContains("handlers", jobs.worker, {queue = q, handlers = {x = 1}})
  lu.assertErrorMsgContains("concurrency", jobs.worker, {queue = q, handlers = {}, concurrency = 0})
  lu.assertErrorMsgContains("option queue", jobs.worker, {queue = {}, handlers = {}})
  w:stop()
  q:destroy()
end

function TestJobs:test_retries_and_dead_letter()
  local srv <close> = rs.start(lu)
  local c <close> = async.redis.connect(srv:url())
  local q = queue(c, "retry", {max_attempts = 3})
  local attempts = {}
  local w <close> = jobs.worker{queue = q, concurrency = 4, poll = 0.05, quiet = true, handlers = {
    flaky = function(args, job)
      attempts[#attempts + 1] = job.attempt
      if job.attempt < args.ok_at then error("not yet " .. job.attempt, 0) end
      return job.attempt
    end,
  }}
  lu.assertEquals(q:push("flaky", {ok_at = 3}):await(5), 3)   -- failed twice, then done
  lu.assertEquals(attempts, {1, 2, 3})
  local ok, e = pcall(function() return q:push("flaky", {ok_at = 9}):await(5) end)
  lu.assertFalse(ok)
  lu.assertEquals(e.kind, "JobError")
  lu.assertEquals(e.message, "not yet 3")
  lu.assertEquals(e.attempts, 3)
  lu.assertTrue(e.dead)
  local dead = q:dead_letters()
  lu.assertEquals(#dead, 1)
  lu.assertEquals(dead[1].kind, "flaky")
  lu.assertEquals(dead[1].args.ok_at, 9)
  lu.assertEquals(dead[1].attempts, 3)
  -- per-job max_attempts, and a kind no worker handles
  ok, e = pcall(function() return q:push("flaky", {ok_at = 9}, {max_attempts = 1}):await(5) end)
  lu.assertEquals(e.attempts, 1)
  ok, e = pcall(function() return q:push("nobody", {}, {max_attempts = 1}):await(5) end)
  lu.assertStrContains(e.message, 'no handler for job kind "nobody"')
  lu.assertEquals(w.counts.retried, 2 + 2)
  lu.assertEquals(w.counts.dead, 3)
  lu.assertEquals(q:counts().dead, 3)
  -- await's timeout
  local slow = q:push("flaky", {ok_at = 1}, {delay = 60})
  ok, e = pcall(slow.await, slow, 0.01)
  lu.assertTrue(async.is_timeout(e))
  w:stop()
  q:destroy()
end

function TestJobs:test_graceful_shutdown_and_reclaim()
  local srv <close> = rs.start(lu)
  local c <close> = async.redis.connect(srv:url())
  local q = queue(c, "shutdown", {visibility = 0.2})
  local started, release = async.event(), async.event()
  local w1 = jobs.worker{queue = q, concurrency = 2, poll = 0.05, handlers = {
    quick = function() started:set(); release:wait(); return "quick" end,
    stuck = function() async.future():await() end,       -- never ends by itself
  }}
  local quick = q:push("quick", {})
  local stuck = q:push("stuck", {})
  started:wait()
  while w1.nrunning < 2 do async.sleep(0.01) end
  local stopping = async.spawn(w1.stop, w1, 0.2)           -- quick may finish, stuck is cut off
  async.sleep(0)
  release:set()
  stopping:await()
  lu.assertEquals(quick:await(5), "quick")
  lu.assertEquals(w1.counts.done, 1)
  lu.assertEquals(q:counts().queued, 1)                    -- stuck stays pending
  -- a second worker reclaims it once the visibility timeout has passed
  local w2 <close> = jobs.worker{queue = q, concurrency = 2, poll = 0.05, handlers = {
    stuck = function(_, job) return job.attempt end,
  }}
  lu.assertEquals(stuck:await(10), 2)                      -- the lost run counts as an attempt
  lu.assertEquals(w2.counts.reclaimed, 1)
  w2:stop()
  q:destroy()
end

function TestJobs:test_server_restarted_under_a_worker()
  local srv <close> = rs.start(lu)
  local c <close> = async.redis.connect{url = srv:url(), reconnect_delay = 0.01}
  local q = queue(c, "restart")
  local w <close> = jobs.worker{queue = q, poll = 0.05, quiet = true,
                                handlers = {echo = function(a) return a.v end}}
  lu.assertEquals(q:push("echo", {v = 1}):await(5), 1)
  srv:stop(true)                                           -- its data is gone with it
  srv:start()
  local ok, job
  for _ = 1, 100 do                                        -- the push may meet the loss
    ok, job = pcall(q.push, q, "echo", {v = 2})
    if ok then break end
    lu.assertEquals(job.kind, "IOError")
  end
  lu.assertTrue(ok)
  lu.assertEquals(job:await(10), 2)                        -- scripts and group made again
  w:stop()
  q:destroy()
end

function TestJobs:test_three_worker_processes_one_killed()
  local srv <close> = rs.start(lu)
  local c <close> = async.redis.connect(srv:url())
  local qname = "procs"
  local q = queue(c, qname, {visibility = 0.5})
  local function worker(mode)
    local p = async.process.spawn{support.LASYNC, "scripts/jobs/worker.lua", srv:url(), qname,
                                  "4", "0.5", mode, stdout = "pipe", stdin = "ignore"}
    local name = p.stdout:read_line():match("^ready (%S+)")
    lu.assertNotNil(name)
    return p, name
  end
  local victim, vname = worker("hang")                     -- takes jobs and never finishes them
  local N = 60
  local handles = {}
  for i = 1, N do handles[i] = q:push("square", {n = i}) end
  -- wait until the victim holds jobs, then kill it in the middle of them
  local victim_jobs = {}
  while #victim_jobs < 4 do
    local item = c:blpop("jobs:started", 5)
    lu.assertNotNil(item, "the victim never started a job")
    local id, who = item[2]:match("^(%S+) (%S+)$")
    lu.assertEquals(who, vname)
    victim_jobs[#victim_jobs + 1] = id
  end
  victim:kill("SIGKILL")
  lu.assertEquals(select(2, victim:wait()), "SIGKILL")
  victim:close()
  local p2, n2 = worker("normal")
  local p3, n3 = worker("normal")
  local by, results = {}, {}
  for i = 1, N do
    local r = handles[i]:await(20)
    lu.assertEquals(r.square, i * i)
    results[handles[i].id] = r
    by[r.worker] = (by[r.worker] or 0) + 1
  end
  lu.assertEquals((by[n2] or 0) + (by[n3] or 0), N)        -- every job, by the survivors
  for _, id in ipairs(victim_jobs) do
    lu.assertEquals(results[id].attempt, 2)                -- reclaimed: its second attempt
  end
  local reclaimed = 0
  for _, p in ipairs{p2, p3} do
    p:kill("SIGTERM")
    local line
    repeat line = p.stdout:read_line() until not line or line:match("^counts")
    lu.assertNotNil(line)
    reclaimed = reclaimed + tonumber(line:match("reclaimed=(%d+)"))
    lu.assertEquals(p:wait(), 0)
    p:close()
  end
  lu.assertEquals(reclaimed, #victim_jobs)
  lu.assertEquals(q:counts(), {queued = 0, delayed = 0, dead = 0})   -- none lost, none dead
  q:destroy()
end

support.run(...)
