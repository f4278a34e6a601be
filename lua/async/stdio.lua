-- async.stdio: standard input, output and error as Streams, made on first
-- use (async.stdin, async.stdout, async.stderr). Output is blocking, as in
-- C's stdio: nothing written is lost when the program ends.
local open = require("async.stream").stdio
local fds = {stdin = 0, stdout = 1, stderr = 2}

return setmetatable({}, {__index = function(t, k)
  local fd = fds[k]
  if fd == nil then return nil end
  local s = open(fd)
  rawset(t, k, s)
  return s
end})
