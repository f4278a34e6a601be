-- settle_errors.lua: handle failures of concurrent work without losing the rest.
-- asyncio: try/except around await, gather(..., return_exceptions=True).
local async = require "async"

local function risky_operation(item_id)
  async.sleep(0.01)
  if item_id % 3 == 0 then
    error(("item %d failed"):format(item_id), 0)   -- level 0: no position prefix
  end
  return {id = item_id, status = "success"}
end

-- try/except is pcall; errors cross from a task to its awaiter unchanged.
local ok, err = pcall(risky_operation, 3)
print("caught: " .. err)
assert(not ok and err == "item 3 failed")

local task = async.spawn(risky_operation, 6)
ok, err = pcall(task.await, task)
print("caught from a task: " .. err)
assert(not ok and err == "item 6 failed" and task:state() == "failed")

-- A wrapper that turns failure into nil, as safe_operation in the guide.
local function safe_operation(item_id)
  local ok2, res = pcall(risky_operation, item_id)
  if ok2 then return res end
  print("  error: " .. res)
  return nil
end
local safe = async.gather(function() return safe_operation(1) end,
                          function() return safe_operation(3) end)
assert(safe[1].id == 1 and safe[2] == nil)

-- settle is gather that never raises for a child: it waits for every one
-- and returns two tables by index, results and errors (each with n).
local jobs = {}
for i = 1, 6 do jobs[i] = function() return risky_operation(i) end end
local results, errors = async.settle(jobs)
local succeeded, failed = {}, {}
for i = 1, results.n do
  if errors[i] ~= nil then failed[#failed + 1] = errors[i]
  else succeeded[#succeeded + 1] = results[i].id end
end
print(("success: %d (%s), failed: %d (%s)"):format(#succeeded, table.concat(succeeded, " "),
                                                  #failed, table.concat(failed, "; ")))
assert(#succeeded == 4 and #failed == 2)
assert(errors[3] == "item 3 failed" and errors[6] == "item 6 failed")

-- Errors may be any value. A table with fields lets the handler decide
-- without parsing messages; __tostring keeps it readable when printed.
local ServiceError = {__tostring = function(e) return e.op .. ": " .. e.message end}
local function call_service(name)
  async.sleep(0.01)
  if name == "billing" then
    error(setmetatable({code = "EUNAVAILABLE", op = name, message = "try later"}, ServiceError))
  end
  return name .. " ok"
end
results, errors = async.settle(
  function() return call_service("users") end,
  function() return call_service("billing") end)
print(results[1], tostring(errors[2]))
assert(results[1] == "users ok" and errors[2].code == "EUNAVAILABLE")

-- A failed task keeps the traceback of where it failed.
local tb = task:traceback()
print((tb:gsub("\n.*", " ...")))
assert(tb:find("stack traceback", 1, true))
print("settle_errors: ok")
