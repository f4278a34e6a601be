-- tests/support.lua: what every suite shares. `support.suite(T)` wraps each
-- test of T (async.testing.suite) so it fails if it leaves a task running or
-- a timer armed (docs/internals.md, rule 13: count what must happen, then
-- check it happened), or runs past its timeout, and cancels the leftovers
-- so one test's leak does not spill into the next.
local core = require "async.core"
local M = {}

local testing = require "async.testing"

-- The generic parts live in async.testing (the product's own test support,
-- used here so it is tested by use): timeouts, leak checks, the runner.
M.check_clean = function() return testing.check_clean() end

-- Timers armed now (test timeouts are real-time alarms, not among them).
function M.timers()
  return core.stats().timers
end

-- support.suite(T [, timeout]): async.testing's suite with this project's
-- default timeout of 5 s (tests here take milliseconds).
function M.suite(T, timeout)
  return testing.suite(T, type(timeout) == "table" and timeout or {timeout = timeout or 5})
end

-- A list that records events, for asserting order.
function M.log()
  local l = {}
  return l, function(v) l[#l + 1] = v end
end

-- Subprocesses, for what only shows outside the process (stderr reports,
-- exit status). They block the loop while they run; keep them short.
M.LASYNC = os.getenv("LASYNC") or "build/lasync"

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Runs the shell command cmd with stdout and stderr captured; returns
-- {status = exit code (128 + n for signal n), stdout = ..., stderr = ...}.
function M.sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local ok, how, code = os.execute("(" .. cmd .. ") >" .. out .. " 2>" .. err)
  local r = {stdout = slurp(out), stderr = slurp(err)}
  os.remove(out); os.remove(err)
  r.status = how == "signal" and 128 + code or code
  return r
end

-- Runs the Lua source src as a script of a new lasync process, with the
-- given extra arguments (a list of strings); returns as M.sh, plus
-- r.script, the path the script had (removed by then).
function M.lasync_run(src, args)
  local script = os.tmpname() .. ".lua"
  M.write_file(script, src)
  local q = {}
  for i, a in ipairs(args or {}) do q[i] = M.shell_quote(a) end
  local r = M.sh(M.shell_quote(M.LASYNC) .. " " .. M.shell_quote(script) .. " " ..
                 table.concat(q, " ") .. " </dev/null")
  os.remove(script)
  os.remove(script:sub(1, -5))          -- os.tmpname may have made it
  r.script = script
  return r
end

-- support.run(...): runs the suites with the script's arguments
-- (tests/run.sh passes "-o tap"); fails the script if any test failed.
M.run = testing.run

return M
