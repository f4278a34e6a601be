-- producer_consumer.lua: several producers and consumers joined by a bounded queue.
-- asyncio: asyncio.Queue(maxsize), put/get, task_done/join, then shutting the workers down.
local async = require "async"

-- Three producers each emit a batch of orders; the queue holds at most 5, so a
-- producer that gets ahead waits in put until a consumer makes room
-- (backpressure). Four consumers take orders as they come and "process" them.
local PRODUCERS, CONSUMERS, ORDERS = 3, 4, 20
local q = async.queue(5)

local function producer(p)
  for n = 1, ORDERS do
    q:put({id = p * 100 + n, amount = n})  -- waits while the queue is full
    if n % 4 == 0 then async.sleep(0.001) end
  end
  print(("producer %d: %d orders queued"):format(p, ORDERS))
end

-- A consumer loops until the queue is closed and drained; task_done tells
-- join that one item is fully handled (not merely taken).
local processed, total, by_consumer = {}, 0, {}
local function consumer(c)
  by_consumer[c] = 0
  for order in q:iter() do
    async.sleep(0.001 * (order.id % 3))    -- some orders take longer
    assert(not processed[order.id], "an order was processed twice")
    processed[order.id] = true
    total = total + order.amount
    by_consumer[c] = by_consumer[c] + 1
    q:task_done()
  end
  return by_consumer[c]
end

local consumers, producers = {}, {}
for c = 1, CONSUMERS do consumers[c] = async.spawn(consumer, c) end
for p = 1, PRODUCERS do producers[p] = async.spawn(producer, p) end

async.gather(producers)                    -- everything is queued...
q:join()                                   -- ...and every order is handled
print(("all %d orders handled, total amount %d"):format(PRODUCERS * ORDERS, total))
assert(q:empty() and q:unfinished() == 0)

-- Shut the consumers down: close() ends their `for ... in q:iter()` loops
-- once the queue is drained (here it already is). Later puts fail.
q:close()
local counts = async.gather(consumers)
local n = 0
for c = 1, CONSUMERS do
  print(("consumer %d handled %d orders"):format(c, counts[c]))
  assert(counts[c] > 0, "every consumer got work")
  n = n + counts[c]
end
assert(n == PRODUCERS * ORDERS)
assert(total == PRODUCERS * ORDERS * (ORDERS + 1) // 2)
local ok, err = pcall(q.put, q, {id = 0})
assert(not ok and getmetatable(err) == async.QueueClosed)
print("put after close: " .. tostring(err))

-- get_nowait/put_nowait never wait: they raise QueueEmpty/QueueFull instead.
local small = async.queue(1)
small:put_nowait("only")
ok, err = pcall(small.put_nowait, small, "one more")
assert(not ok and getmetatable(err) == async.QueueFull)
assert(small:get_nowait() == "only")
ok, err = pcall(small.get_nowait, small)
assert(not ok and getmetatable(err) == async.QueueEmpty)
print("producer_consumer: ok")
