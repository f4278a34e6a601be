-- gather.lua: run many operations at once and collect their results in order.
-- asyncio: asyncio.gather(*coros), gather(return_exceptions=...) (see settle_errors.lua).
local async = require "async"

local function fetch_user(id)
  async.sleep(0.01 * (6 - id))           -- later ids answer first
  return {id = id, name = "User " .. id}
end

-- gather takes functions (each spawned as a task), tasks or futures, as
-- arguments or as one list. Results come in argument order, whatever the
-- order of completion, in a table with a field n.
local ids = {1, 2, 3, 4, 5}
local jobs = {}
for i, id in ipairs(ids) do
  jobs[i] = function() return fetch_user(id) end
end
local users = async.gather(jobs)
print(("fetched %d users"):format(users.n))
for i, user in ipairs(users) do
  print("  " .. user.name)
  assert(user.id == ids[i], "results are in argument order")
end
assert(users.n == #ids)

-- The simulated database of the guide: three queries for one page at once.
local db = {}
function db.fetch_one(sql) async.sleep(0.03) return {sql = sql, id = 1} end
function db.execute(sql) async.sleep(0.03) return {{id = 10}, {id = 11}} end

local r = async.gather(
  function() return db.fetch_one("SELECT * FROM users WHERE id = 1") end,
  function() return db.execute("SELECT * FROM orders WHERE user_id = 1") end,
  function() return db.fetch_one("SELECT * FROM profiles WHERE user_id = 1") end)
local user, orders, profile = table.unpack(r, 1, r.n)
print(("user %d with %d orders; profile query: %s"):format(user.id, #orders, profile.sql))
assert(#orders == 2 and profile.sql:find("profiles"))

-- Tasks already running can be gathered too, mixed with futures. gather
-- keeps only the first result of each: return a table for more.
local task = async.spawn(function() async.sleep(0.01) return "task", "second value dropped" end)
local future = async.future()
async.call_later(0.02, function() future:resolve("future") end)
local mixed = async.gather(task, future, function() return {1, 2, 3} end)
print("mixed:", mixed[1], mixed[2], #mixed[3])
assert(mixed[1] == "task" and mixed[2] == "future" and #mixed[3] == 3)

-- The first failure is raised at once and the others are cancelled: there
-- is no point finishing a page whose user lookup failed.
local sibling
local ok, err = pcall(async.gather,
  function() async.sleep(0.01) error("user service down", 0) end,
  function()
    sibling = async.current()
    async.sleep(1)                       -- cancelled long before this ends
  end)
print("gather raised:", err)
assert(not ok and err == "user service down")
async.sleep(0)                           -- the cancelled sibling ends now
assert(sibling:cancelled(), "the sibling was cancelled")
print("gather: ok")
