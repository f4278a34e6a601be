-- close_managers.lua: async context managers are to-be-closed variables.
-- asyncio: `async with Resource() as r:` (__aenter__/__aexit__) and
-- @asynccontextmanager. In lasync, acquiring is a function that may wait,
-- and releasing is the value's __close, which may wait too (Lua 5.4.4+).
local async = require "async"

local open_now, opened, closed = 0, 0, 0

local Connection = {}
Connection.__index = Connection

local function connect(dsn)
  async.sleep(0.01)                      -- the handshake (__aenter__)
  open_now, opened = open_now + 1, opened + 1
  print("  open   " .. dsn)
  return setmetatable({dsn = dsn}, Connection)
end

function Connection:query(sql)
  async.sleep(0.01)
  return {rows = 10, sql = sql}
end

-- __close runs on return, on error and on cancellation alike; `err` is the
-- error on its way out (nil on a normal exit). It may wait: closing a
-- connection is I/O too.
function Connection:__close(err)
  async.sleep(0.01)                      -- the goodbye (__aexit__)
  open_now, closed = open_now - 1, closed + 1
  print(("  closed %s (%s)"):format(self.dsn, err == nil and "normal exit" or tostring(err)))
end

local function query_database(dsn, fail)
  local conn <close> = connect(dsn)
  local result = conn:query("SELECT * FROM items")
  if fail then error("bad row in result", 0) end
  async.sleep(fail == false and 5 or 0)  -- false: a slow query, to cancel
  return result.rows
end

print("on return:")
assert(query_database("db://one") == 10)

print("on error:")
local ok, err = pcall(query_database, "db://two", true)
assert(not ok and err == "bad row in result")

print("on cancellation:")
local task = async.spawn(query_database, "db://three", false)
async.sleep(0.05)                        -- it is inside the slow query now
task:cancel("client went away")
ok, err = pcall(task.await, task)
assert(not ok and async.is_cancelled(err) and task:cancelled())

print("on timeout:")
ok, err = pcall(async.timeout, 0.05, query_database, "db://four", false)
assert(async.is_timeout(err))

-- @asynccontextmanager's counterpart: a small helper that turns a function
-- into a to-be-closed value, for cleanup written next to the setup.
local function defer(fn)
  return setmetatable({}, {__close = function(_, e) fn(e) end})
end

local function with_temp_table(name)
  print("  create " .. name)
  async.sleep(0.01)
  local _ <close> = defer(function()
    async.sleep(0.01)
    print("  drop   " .. name)
    closed = closed + 1
  end)
  return "used " .. name
end
print("deferred cleanup:")
assert(with_temp_table("tmp_report") == "used tmp_report")

-- Several variables close in reverse order, each one even if an earlier
-- close failed or the body was cancelled.
print("nested:")
local order = {}
local function layered()
  local a <close> = defer(function() order[#order + 1] = "a" end)
  local b <close> = connect("db://five")
  local c <close> = defer(function() async.sleep(0.01) order[#order + 1] = "c" end)
  return "ok"
end
assert(layered() == "ok")
assert(table.concat(order) == "ca")

print(("opened %d connections, all closed: %s"):format(opened, tostring(open_now == 0)))
assert(open_now == 0 and opened == 5 and closed == 6)
print("close_managers: ok")
