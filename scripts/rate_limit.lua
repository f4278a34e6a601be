-- rate_limit.lua: fetch many pages, at most 4 at a time, with a semaphore.
-- asyncio: asyncio.Semaphore(n) with `async with sem:` around each request.
local async = require "async"

-- A simulated fetch that records how many requests are in flight at once.
local in_flight, peak = 0, 0
local function fetch(url)
  in_flight = in_flight + 1
  peak = math.max(peak, in_flight)
  async.sleep(0.002 + 0.001 * (#url % 3))   -- the "network"
  in_flight = in_flight - 1
  return ("<html>%s</html>"):format(url)
end

-- All 20 fetches start at once; the semaphore lets 4 through and queues the
-- rest in order. `<close>` releases the permit however the block ends:
-- normally, by error, or by cancellation.
local limit = async.semaphore(4)
local function limited_fetch(url)
  local _ <close> = limit:acquire()
  return fetch(url)
end

local jobs = {}
for i = 1, 20 do
  local url = "https://example.com/page/" .. i
  jobs[i] = function() return limited_fetch(url) end
end
local pages = async.gather(jobs)
print(("fetched %d pages, at most %d at a time"):format(pages.n, peak))
assert(pages.n == 20 and pages[20] == "<html>https://example.com/page/20</html>")
assert(peak == 4, "the semaphore limited concurrency to 4")
assert(limit:value() == 4, "every permit came back")

-- A failing or cancelled request gives its permit back too.
local failed = pcall(async.gather, function()
  local _ <close> = limit:acquire()
  error("HTTP 500", 0)
end)
assert(not failed and limit:value() == 4)
local slow = async.spawn(function()
  local _ <close> = limit:acquire()
  async.sleep(10)
end)
async.sleep(0)
assert(limit:value() == 3)
slow:cancel()
pcall(slow.await, slow)
assert(limit:value() == 4, "the cancelled request released its permit")

-- A bounded semaphore catches a release without an acquire (a bug that would
-- silently raise the limit of a plain semaphore).
local bounded = async.bounded_semaphore(2)
local ok, err = pcall(bounded.release, bounded)
print("bounded semaphore: " .. tostring(err))
assert(not ok and bounded:value() == 2)
print("rate_limit: ok")
