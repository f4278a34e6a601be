-- lock_counter.lua: a read-modify-write with a wait in the middle loses updates
-- unless a lock protects it. asyncio: asyncio.Lock with `async with lock:`.
local async = require "async"

-- Tasks switch only at waits, so `counter = counter + 1` alone is safe. The
-- bug needs a wait between the read and the write, as when the value comes
-- from and goes back to a database: every task reads the same old value.
local TASKS, ROUNDS = 10, 5

local function run(increment)
  local tasks = {}
  for i = 1, TASKS do
    tasks[i] = async.spawn(function()
      for _ = 1, ROUNDS do increment() end
    end)
  end
  async.gather(tasks)
end

local counter = 0
local function unsafe_increment()
  local value = counter                  -- read
  async.sleep(0)                         -- e.g. a round trip to the database
  counter = value + 1                    -- write: may overwrite another task's update
end
run(unsafe_increment)
print(("without a lock: %d (expected %d): %d updates lost")
      :format(counter, TASKS * ROUNDS, TASKS * ROUNDS - counter))
assert(counter < TASKS * ROUNDS, "the race loses updates")

-- With the lock, the read, the wait and the write form one critical section.
-- `<close>` releases the lock when the block is left, even by an error.
local lock = async.lock()
counter = 0
local function safe_increment()
  local _ <close> = lock:acquire()
  local value = counter
  async.sleep(0)
  counter = value + 1
end
run(safe_increment)
print(("with a lock:    %d (expected %d)"):format(counter, TASKS * ROUNDS))
assert(counter == TASKS * ROUNDS)
assert(not lock:locked())

-- The lock is handed over in FIFO order and only its holder may release it.
lock:acquire()
local ok, err = pcall(async.gather, function() lock:release() end)
print("release by another task: " .. tostring(err))
assert(not ok and lock:locked())
lock:release()
print("lock_counter: ok")
