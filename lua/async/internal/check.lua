-- async.internal.check: the argument checks the library's Lua modules
-- share, so that misuse reads the same everywhere, as luaL_argerror's
-- "bad argument #i to 'what' (msg)". For the library, not for users.
--
-- `level` is error()'s, counted from argerror (1): 2 is the check that
-- called it (check.opts, or a module's helper such as fs's check_path),
-- 3, the default, the function that called that check, 4 its caller.
local format, error, type = string.format, error, type

local check = {}

-- Raises "bad argument #i to 'what' (msg)".
function check.argerror(i, what, msg, level)
  error(format("bad argument #%d to '%s' (%s)", i, what, msg), level or 3)
end

-- opts must be nil or a table; returns it, or a new empty table for nil.
function check.opts(opts, i, what, level)
  if opts ~= nil and type(opts) ~= "table" then
    check.argerror(i, what, "options table expected, got " .. type(opts), level)
  end
  return opts or {}
end

return check
