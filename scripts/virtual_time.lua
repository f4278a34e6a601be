-- Virtual time: a retry loop with exponential backoff and a one-hour
-- deadline, run in milliseconds. On the virtual clock time stands still
-- while any task can run and jumps to the next deadline when all wait, so
-- the schedule is exact and the run deterministic. (This is what tests use:
-- async.testing.suite(T, {virtual_clock = true}).)
local testing = require "async.testing"

-- A flaky service: fails until the 6th call.
local calls = 0
local function flaky_fetch()
  calls = calls + 1
  async.sleep(0.5)                        -- the round trip
  if calls < 6 then error("503 Service Unavailable", 0) end
  return "payload"
end

local function with_retry(fn, attempts, base)
  local log, start = {}, async.time()
  for attempt = 1, attempts do
    local ok, res = pcall(fn)
    log[#log + 1] = ("t=%5.1f s  attempt %d: %s"):format(async.time() - start, attempt,
                                                       ok and "ok" or res)
    if ok then return res, log end
    async.sleep(base * 2 ^ (attempt - 1))  -- 1, 2, 4, 8, 16 s
  end
  error("gave up", 0)
end

local real0 = os.clock()
local result, log, elapsed = testing.with_virtual_clock(function()
  local start = async.time()
  local res, log = async.timeout(3600, with_retry, flaky_fetch, 10, 1)
  return res, log, async.time() - start
end)
for _, line in ipairs(log) do print(line) end
-- 6 round trips of 0.5 s and backoffs of 1+2+4+8+16 s: exactly 34 s
print(("virtual elapsed %.1f s in %.3f s of CPU"):format(elapsed, os.clock() - real0))
assert(result == "payload" and calls == 6, "the sixth attempt succeeds")
assert(elapsed == 34, "the schedule is exact: " .. elapsed)
