-- async.console: the REPL of a running program, served on a Unix socket
-- (host/repl/console.c), and the client that attaches a terminal to it.
local core = require "async.core.console"
local async = require "async"

local M = {}

-- listen(path [, {mode = 0600}]): serves a REPL session to each connection
-- at path until console:close() (or the program ends). Access is the
-- socket file's mode: 0600 by default, so only the program's user.
function M.listen(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'listen' (socket path expected, got %s)"):format(type(path)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'listen' (table expected, got %s)"):format(type(opts)), 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "mode" then error(("console.listen: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local mode = opts and opts.mode
  if mode ~= nil and math.type(mode) ~= "integer" then
    error("console.listen: mode must be an integer (such as 384, octal 0600)", 2)
  end
  return core.listen(path, mode)
end

-- attach(path): connects standard input and output to the console at path
-- until the session ends (.exit, Ctrl-D, or the program stops serving).
function M.attach(path)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'attach' (socket path expected, got %s)"):format(type(path)), 2)
  end
  local conn <close> = async.net.connect_unix(path)
  local up = async.spawn(function()
    for data in function() return async.stdin:read() end do conn:write(data) end
    conn:shutdown()                        -- Ctrl-D: the session ends
  end)
  up:set_name("console input")
  for data in function() return conn:read() end do async.stdout:write(data) end
  up:cancel()
  pcall(up.await, up)
end

return M
