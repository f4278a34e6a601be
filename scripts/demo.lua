-- demo.lua: what `make demo` runs. Thousands of tasks at once on one
-- thread: Lua coroutines scheduled on a libuv loop, every wait a timer.
local async = require "async"
math.randomseed(20240601)                -- the same run every time

local function ms(sec) return ("%4.0f ms"):format(sec * 1000) end

-------------------------------------------------- 1. 10,000 sleeping tasks

local N = 10000
print(("1. %d tasks, each sleeping a random 10-200 ms"):format(N))
local delays, total_delay = {}, 0
for i = 1, N do
  delays[i] = 0.01 + math.random() * 0.19
  total_delay = total_delay + delays[i]
end

local start, awake = async.time(), 0
local tasks = {}
for i = 1, N do
  tasks[i] = async.spawn(function()
    async.sleep(delays[i])               -- simulated I/O
    awake = awake + 1
    return i * i
  end)
end
-- A progress reporter is just one more task.
local reporter = async.spawn(function()
  while true do
    async.sleep(0.04)
    print(("   %s: %5d done, %5d sleeping at the same time"):format(
      ms(async.time() - start), awake, N - awake))
  end
end)
local squares = async.gather(tasks)      -- results in spawn order
reporter:cancel()
local elapsed1 = async.time() - start

assert(squares.n == N and awake == N, "every task ran")
for i = 1, N do assert(squares[i] == i * i, "result " .. i) end
print(("   all %d done in %s; their sleeps add up to %.0f s"):format(N, ms(elapsed1), total_delay))

------------------------------ 2. a crawl of 200 pages, 16 fetches at a time

local PAGES, LIMIT = 200, 16
print(("2. crawling %d pages, at most %d at a time"):format(PAGES, LIMIT))
local site = {}                          -- the simulated web site
for i = 1, PAGES do
  site[i] = {url = ("https://example.com/page/%d"):format(i),
             latency = 0.005 + math.random() * 0.02,
             size = 1000 + (i * 7919) % 9000}
end

local in_flight, busy, peak, fetched = {}, 0, 0, 0
local function fetch(page)
  in_flight[page.url], busy = true, busy + 1
  peak = math.max(peak, busy)
  async.sleep(page.latency)              -- the round trip
  in_flight[page.url], busy = nil, busy - 1
  fetched = fetched + 1
  return {url = page.url, bytes = page.size}
end

local results, next_page = {}, 1
local crawl_start = async.time()
-- The scope holds LIMIT workers; each takes the next page when it is free.
-- The scope ends when every worker has ended, and a failure in one would
-- cancel the others.
async.scope(function(group)
  for w = 1, LIMIT do
    group:spawn(function()
      while next_page <= PAGES do
        local i = next_page
        next_page = next_page + 1
        results[i] = fetch(site[i])
        if fetched % 40 == 0 and fetched < PAGES then
          local pages = {}
          for url in pairs(in_flight) do pages[#pages + 1] = tonumber(url:match("%d+$")) end
          table.sort(pages)
          print(("   %s: %3d/%d fetched, %2d in flight: pages %s"):format(
            ms(async.time() - crawl_start), fetched, PAGES, #pages, table.concat(pages, " ")))
        end
      end
    end)
  end
end)
local elapsed2 = async.time() - crawl_start

local bytes, latency = 0, 0
for i = 1, PAGES do
  assert(results[i] and results[i].url == site[i].url, "page " .. i .. " fetched")
  bytes, latency = bytes + results[i].bytes, latency + site[i].latency
end
local expected = 0
for i = 1, PAGES do expected = expected + 1000 + (i * 7919) % 9000 end
assert(fetched == PAGES and bytes == expected, "every page exactly once")
assert(peak == LIMIT, "the limit was reached and kept")
print(("   %d pages, %d bytes in %s (%.2f s of round trips, %d at a time)"):format(
  PAGES, bytes, ms(elapsed2), latency, peak))

print(("demo: ok - %d tasks and a %d-page crawl in %s"):format(
  N + LIMIT + 1, PAGES, ms(async.time() - start)))
