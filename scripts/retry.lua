-- retry.lua: retry a flaky call with exponential backoff and a deadline per try.
-- asyncio: a loop of `await asyncio.wait_for(call(), timeout)` with
-- `await asyncio.sleep(delay)` backoff, re-raising CancelledError.
local async = require "async"

-- retry(fn, opts, ...): calls fn(...) up to opts.attempts times, each try
-- under opts.timeout seconds, sleeping base, base*2, base*4 ... between
-- failed tries. Cancellation of the caller is never retried.
local function retry(fn, opts, ...)
  local delay = opts.base_delay
  for attempt = 1, opts.attempts do
    local res = table.pack(pcall(async.wait_for, opts.timeout, fn, ...))
    if res[1] then return table.unpack(res, 2, res.n) end
    local err = res[2]
    if async.is_cancelled(err) then error(err, 0) end   -- ours to obey, not to retry
    if attempt == opts.attempts then error(err, 0) end
    if opts.on_retry then opts.on_retry(attempt, err, delay) end
    async.sleep(delay)
    delay = math.min(delay * 2, opts.max_delay or math.huge)
  end
end

-- A service that hangs on the first call, fails on the second and
-- answers on the third.
local calls = 0
local function flaky_service(query)
  calls = calls + 1
  if calls == 1 then async.sleep(5) end              -- hangs: the timeout cuts it
  if calls == 2 then async.sleep(0.005) error("503 service unavailable", 0) end
  async.sleep(0.005)
  return "result for " .. query
end

local delays = {}
local result = retry(flaky_service, {
  attempts = 5, timeout = 0.03, base_delay = 0.01,
  on_retry = function(attempt, err, delay)
    delays[#delays + 1] = delay
    print(("attempt %d failed (%s); retrying in %g s"):format(attempt, tostring(err), delay))
  end,
}, "q=lua")
print(result)
assert(result == "result for q=lua" and calls == 3)
assert(#delays == 2 and delays[1] == 0.01 and delays[2] == 0.02)

-- When every attempt fails, the last error is raised.
calls = 0
local ok, err = pcall(retry, function() calls = calls + 1 error("still down", 0) end,
                      {attempts = 4, timeout = 0.05, base_delay = 0.001})
print(("gave up after %d attempts: %s"):format(calls, err))
assert(not ok and err == "still down" and calls == 4)

-- Cancelling the caller stops the retries at once, even during a backoff.
calls = 0
local task = async.spawn(retry, function() calls = calls + 1 error("down", 0) end,
                         {attempts = 100, timeout = 1, base_delay = 0.02})
async.sleep(0.03)
task:cancel()
ok, err = pcall(task.await, task)
print(("cancelled during backoff after %d attempts"):format(calls))
assert(task:cancelled() and calls >= 1 and calls < 100)
print("retry: ok")
