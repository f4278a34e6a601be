-- tests/support.lua: what every suite shares. `support.suite(T)` wraps each
-- test of T so it fails if it leaves a task running or a timer armed
-- (STYLE 13: count what must happen, then check it happened), and cancels
-- the leftovers so one test's leak does not spill into the next.
local core = require "async.core"
local M = {}

local function leftovers()
  local me, left = async.current(), {}
  for _, t in ipairs(core.tasks()) do
    if t ~= me then left[#left + 1] = t end
  end
  return left
end

function M.check_clean()
  for _ = 1, 3 do async.sleep(0) end    -- let finished work drain
  local left = leftovers()
  if #left > 0 then
    local names = {}
    for i, t in ipairs(left) do names[i] = tostring(t); t:cancel("test cleanup") end
    for _, t in ipairs(left) do pcall(t.await, t) end
    error("test left tasks running: " .. table.concat(names, ", "), 0)
  end
  local timers = core.stats().timers
  if timers ~= 0 then error("test left " .. timers .. " timer(s) armed", 0) end
end

function M.suite(T)
  for name, fn in pairs(T) do
    if type(fn) == "function" and name:match("^test") then
      T[name] = function(...)
        local ok, err = pcall(fn, ...)
        M.check_clean()
        if not ok then error(err, 0) end
      end
    end
  end
  return T
end

-- A list that records events, for asserting order.
function M.log()
  local l = {}
  return l, function(v) l[#l + 1] = v end
end

-- support.run(...): runs the LuaUnit suites with the script's arguments
-- (tests/run.sh passes "-o tap") and fails the script if any test failed.
function M.run(...)
  local lu = require "luaunit"
  local failures = lu.LuaUnit.run(...)
  if failures ~= 0 then error(failures .. " test(s) failed", 0) end
end

return M
