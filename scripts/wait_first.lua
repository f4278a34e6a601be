-- wait_first.lua: race several tasks, keep the first, cancel the rest.
-- asyncio: asyncio.wait(tasks, return_when=FIRST_COMPLETED), then
-- task.cancel() for the pending ones; wait(tasks, timeout=...).
local async = require "async"

-- Three mirrors of one file; whichever answers first wins.
local latency = {["eu.mirror"] = 0.05, ["us.mirror"] = 0.02, ["ap.mirror"] = 0.08}
local cleaned_up = {}
local function download(mirror)
  local ok, err = pcall(async.sleep, latency[mirror])
  if not ok then                         -- cancelled: close the half-open transfer
    cleaned_up[#cleaned_up + 1] = mirror
    error(err, 0)
  end
  return mirror
end

local tasks = {}
for _, mirror in ipairs{"eu.mirror", "us.mirror", "ap.mirror"} do
  tasks[#tasks + 1] = async.spawn(download, mirror)
end

-- wait never cancels anything and never raises for a task: it returns the
-- done and the pending ones (in list order). What to do with the pending
-- ones is the caller's choice.
local done, pending = async.wait(tasks, {return_when = "first"})
print(("first: %s; %d still pending"):format(done[1]:result(), #pending))
assert(#done == 1 and #pending == 2 and done[1]:result() == "us.mirror")
for _, task in ipairs(pending) do task:cancel("lost the race") end

-- Waiting again lets the losers finish their cleanup.
done, pending = async.wait(tasks)
assert(#done == 3 and #pending == 0)
table.sort(cleaned_up)
print("cleaned up: " .. table.concat(cleaned_up, ", "))
assert(table.concat(cleaned_up, ",") == "ap.mirror,eu.mirror")
assert(tasks[1]:cancelled() and tasks[3]:cancelled() and not tasks[2]:cancelled())

-- With a timeout, wait returns what finished by then; nothing is raised.
local jobs = {}
for i, delay in ipairs{0.01, 0.02, 5} do
  jobs[i] = async.spawn(function() async.sleep(delay) return i end)
end
done, pending = async.wait(jobs, {timeout = 0.05})
print(("after the timeout: %d done, %d pending"):format(#done, #pending))
assert(#done == 2 and #pending == 1 and pending[1] == jobs[3])
pending[1]:cancel()

-- return_when = "first_error": stop waiting at the first failure, e.g. to
-- abort a batch early, but keep whatever succeeded.
local checks = {
  async.spawn(function() async.sleep(0.01) return "disk ok" end),
  async.spawn(function() async.sleep(0.02) error("network unreachable", 0) end),
  async.spawn(function() async.sleep(5) return "never reported" end),
}
done, pending = async.wait(checks, {return_when = "first_error"})
local failure
for _, task in ipairs(done) do failure = failure or task:error() end
print(("first error: %s (%d done, %d pending)"):format(failure, #done, #pending))
assert(failure == "network unreachable" and #done == 2 and #pending == 1)
for _, task in ipairs(pending) do task:cancel() end
print("wait_first: ok")
