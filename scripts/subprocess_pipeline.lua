-- subprocess_pipeline.lua: child processes as async streams.
--   1. a shell-style pipeline, generator | sort | uniq -c | sort -rn, where
--      the children's pipes are handed from one to the next and a Lua task
--      feeds the first while another reads the last, all at once;
--   2. several commands run at the same time with process.run, one of them
--      past its deadline (it is killed and reaped);
-- and every result is checked against what Lua computes itself.
local async = require "async"
local process = async.process

-------------------------------------------------------- 1. a pipeline

local words = {"apple", "pear", "fig", "plum", "kiwi", "apple", "fig", "apple"}
local N = 20000
local expected = {}
for i = 1, N do
  local w = words[(i * 7) % #words + 1]
  expected[w] = (expected[w] or 0) + 1
end

local sort1 = process.spawn{"sort", stdin = "pipe", stdout = "pipe"}
local uniq = process.spawn{"uniq", "-c", stdin = sort1.stdout, stdout = "pipe"}
local sort2 = process.spawn{"sort", "-rn", stdin = uniq.stdout, stdout = "pipe"}
sort1.stdout:close()                     -- each child has its own copy now
uniq.stdout:close()

local feeder = async.spawn(function()    -- 20,000 lines into the first child
  for i = 1, N do
    sort1.stdin:write(words[(i * 7) % #words + 1], "\n")  -- waits if sort lags
  end
  sort1.stdin:close()                    -- end of input: sort can finish
end)

local counts, order = {}, {}
for line in sort2.stdout:lines() do      -- read as the last child writes
  local n, w = line:match("^%s*(%d+) (%S+)$")
  counts[w] = tonumber(n)
  order[#order + 1] = w
end
feeder:await()
for _, p in ipairs{sort1, uniq, sort2} do
  local code, sig = p:wait()
  assert(code == 0 and sig == nil, tostring(p))
  p:close()
end
for w, n in pairs(expected) do assert(counts[w] == n, w .. ": counted by the pipeline") end
for i = 2, #order do assert(counts[order[i - 1]] >= counts[order[i]], "sorted by count") end
print(("1. pipeline: %d lines -> %d distinct words, most frequent %q (%d)")
      :format(N, #order, order[1], counts[order[1]]))

------------------------------------------- 2. commands side by side

local t0 = async.time()
local results, errors = async.settle(
  function() return process.run("sh", "-c", "sleep 0.1; echo slow") end,
  function() return process.run{"tr", "a-z", "A-Z", input = "shout\n"} end,
  function() return process.run{"sh", "-c", "echo oops >&2; exit 4"} end,
  function() return process.run{"sleep", "10", timeout = 0.2} end)
local elapsed = async.time() - t0

assert(results[1].stdout == "slow\n")
assert(results[2].stdout == "SHOUT\n")
assert(results[3].code == 4 and results[3].stderr == "oops\n")
assert(async.is_timeout(errors[4]), "the sleeper was stopped at its deadline")
assert(elapsed < 5, "the four ran at the same time")
print(("2. four commands at once in %.0f ms: %q, %q, exit %d, and %s")
      :format(elapsed * 1000, results[1].stdout:sub(1, -2), results[2].stdout:sub(1, -2),
              results[3].code, tostring(errors[4])))
