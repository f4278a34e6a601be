-- async.signal: Unix signals as waits and as handlers that run as tasks
-- (C: async.core.signal).
--   async.signal.wait("SIGTERM" [, timeout])  -> "SIGTERM" once it arrives
--   local h = async.signal.on("SIGHUP", fn)   -- fn("SIGHUP") runs as a task
--   h:remove()                                 -- at each arrival, until removed
--   async.signal.kill(pid, "SIGTERM"), async.signal.getpid()
local async = require "async"
local core = require "async.core.signal"

local signal = {on = core.on, kill = core.kill, getpid = core.getpid}

function signal.wait(sig, timeout)
  if timeout ~= nil then return async.timeout(timeout, core.wait, sig) end
  return core.wait(sig)
end

return signal
