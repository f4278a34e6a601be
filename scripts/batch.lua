-- batch.lua: process 100 items, at most 10 at a time.
-- asyncio: the guide's batch_process (gather per slice of 10), and the
-- Semaphore(10) pattern, done here with a fixed pool of workers in a scope.
local async = require "async"

local items = {}
for i = 1, 100 do
  items[i] = {name = "item-" .. i, cost = ((i * 7) % 5 + 1) * 0.002}  -- uneven work
end

local running, peak = 0, 0
local function process_item(item)
  running = running + 1
  peak = math.max(peak, running)
  async.sleep(item.cost)
  running = running - 1
  return "processed " .. item.name
end

-- 1. Batches: gather 10 at a time. Simple, but each batch waits for its
-- slowest item before the next one starts.
local processed = {}
for first = 1, #items, 10 do
  local jobs = {}
  for i = first, math.min(first + 9, #items) do
    local item = items[i]
    jobs[#jobs + 1] = function() return process_item(item) end
  end
  local results = async.gather(jobs)
  table.move(results, 1, results.n, #processed + 1, processed)
  if first % 30 == 1 then
    print(("batch %d done (%d items so far)"):format(first // 10 + 1, #processed))
  end
end
print(("batches: %d processed, at most %d at a time"):format(#processed, peak))
assert(#processed == 100 and peak == 10)
for i = 1, 100 do assert(processed[i] == "processed item-" .. i) end

-- 2. A sliding window: 10 workers in a scope take the next item as soon as
-- they are free, so a slow item holds up one worker, not a whole batch.
-- Tasks share memory and switch only at waits, so `next_index` needs no lock.
running, peak = 0, 0
local results, next_index = {}, 1
local per_worker = {}
async.scope(function(group)
  for w = 1, 10 do
    per_worker[w] = 0
    group:spawn(function()
      while next_index <= #items do
        local i = next_index
        next_index = next_index + 1
        results[i] = process_item(items[i])
        per_worker[w] = per_worker[w] + 1
      end
    end)
  end
end)                                     -- returns once every worker has finished
print(("workers: %d processed, at most %d at a time, per worker: %s"):format(
  #results, peak, table.concat(per_worker, " ")))
assert(#results == 100 and peak == 10)
for i = 1, 100 do assert(results[i] == "processed item-" .. i) end
local sum = 0
for _, n in ipairs(per_worker) do sum = sum + n end
assert(sum == 100)
print("batch: ok")
