-- async.process: child processes. Spawning, pipes, waiting and signalling
-- are C (async.core.process; pipes are Streams); this file makes the
-- Process object and run(), which captures a command's output with an
-- optional deadline that kills the child.
--
-- No zombies: libuv reaps a child as long as its handle is open, and the
-- handle of a running child is only closed once it has exited, also when
-- the Process is closed, collected or its task cancelled.
local async = require "async"
local core = require "async.core.process"
local IOError = require("async.stream").IOError

local type, error, pcall, select, format = type, error, pcall, select, string.format
local setmetatable, tostring = setmetatable, tostring

local process = {}

local Process = {}
Process.__index = Process
Process.__name = "lasync.Process"

local argerror = require("async.internal.check").argerror

-- spawn{cmd, args..., cwd=, env=, clear_env=, stdin=, stdout=, stderr=,
-- detached=}: starts the child. stdin/stdout/stderr: "pipe" (a Stream in
-- proc.stdin / proc.stdout / proc.stderr), "inherit" (the default),
-- "ignore" (/dev/null), or a Stream to hand over (say, another process's
-- stdout, for a pipeline). env adds to (false: removes from) our
-- environment; with clear_env = true it is the whole environment.
function process.spawn(opts)
  if type(opts) ~= "table" then argerror(1, "spawn", "table expected ({\"cmd\", \"arg\", ...}), got " .. type(opts)) end
  local h, pid, stdin, stdout, stderr = core.spawn(opts)
  return setmetatable({handle = h, pid = pid, cmd = opts[1],
                       stdin = stdin, stdout = stdout, stderr = stderr}, Process)
end

-- The exit is kept once seen: after close the handle knows it no more
-- (tostring said "running" for a child that had exited and been closed).
local function keep(self, code, sig)
  if code ~= nil then self.exit_code, self.exit_signal = code, sig end
  return code, sig
end

-- proc:wait(): code, signal (the name, as "SIGKILL", or nil) once the child
-- has exited. Cancelling the wait leaves the child running.
function Process:wait()
  if self.exit_code ~= nil then return self.exit_code, self.exit_signal end
  return keep(self, self.handle:wait())
end

-- proc:status(): nil while it runs, else code, signal.
function Process:status()
  if self.exit_code ~= nil then return self.exit_code, self.exit_signal end
  return keep(self, self.handle:status())
end

-- proc:kill([sig]): sends sig ("SIGTERM" by default; a name or a number;
-- 0 sends nothing and tells whether the child is still there); false if
-- the child had exited already.
function Process:kill(sig) return self.handle:kill(sig) end

-- proc:close(): closes the pipes and lets go of the child (a running child
-- goes on and is reaped when it exits). With `<close>`, a child still
-- running when the block is left by an error or a cancellation is sent
-- SIGTERM first.
function Process:close(err)
  if self:status() == nil and err ~= nil then pcall(self.handle.kill, self.handle) end
  if self.stdin then self.stdin:close() end
  if self.stdout then self.stdout:close() end
  if self.stderr then self.stderr:close() end
  self.handle:close()
  self.closed = true
end
Process.__close = Process.close

function Process:__tostring()
  local code, sig = self:status()
  local state = code == nil and (self.closed and "closed" or "running")
                or sig and ("killed by " .. tostring(sig)) or ("exited " .. code)
  return format("Process<%d %s, %s>", self.pid, tostring(self.cmd), state)
end

local function exit_error(cmd, res)
  local msg = res.signal and ("killed by " .. tostring(res.signal)) or ("exited with status " .. res.code)
  return setmetatable({kind = "IOError", code = "EXIT", message = msg, op = "run", path = cmd,
                       status = res.code, signal = res.signal, stdout = res.stdout,
                       stderr = res.stderr}, IOError)
end

-- run(cmd, args...) or run{cmd, args..., input=, timeout=, check=, cwd=,
-- env=, clear_env=}: runs the command to its end, feeding it `input` and
-- capturing its output. Returns {code=, signal=, ok=, stdout=, stderr=}.
-- Past `timeout` seconds the child is killed (SIGKILL) and reaped, and
-- async.Timeout is raised; a cancelled run kills it likewise. check = true
-- raises an IOError (code "EXIT") when it did not exit with 0.
function process.run(cmd, ...)
  local opts = cmd
  if type(cmd) == "string" then opts = {cmd, ...}
  elseif type(cmd) ~= "table" then argerror(1, "run", "command string or table expected, got " .. type(cmd))
  elseif select("#", ...) > 0 then argerror(2, "run", "arguments go in the table") end
  if opts.input ~= nil and type(opts.input) ~= "string" then argerror(1, "run", "input must be a string") end
  local spec = {cwd = opts.cwd, env = opts.env, clear_env = opts.clear_env,
                stdin = opts.input and "pipe" or "ignore", stdout = "pipe", stderr = "pipe"}
  for i = 1, #opts do spec[i] = opts[i] end
  local p = process.spawn(spec)
  local function body()
    local out = async.gather(
      function() return p.stdout:read_all() end,
      function() return p.stderr:read_all() end,
      function() if p.stdin then p.stdin:write(opts.input); p.stdin:close() end end)
    local code, sig = p:wait()
    return {code = code, signal = sig, ok = code == 0 and sig == nil, stdout = out[1], stderr = out[2]}
  end
  local ok, res
  if opts.timeout then ok, res = pcall(async.timeout, opts.timeout, body)
  else ok, res = pcall(body) end
  if not ok then
    if p:status() == nil then pcall(p.kill, p, "SIGKILL") end
    pcall(p.wait, p)                      -- reaped before we go on
    p:close()
    error(res, 0)
  end
  p:close()
  if opts.check and not res.ok then error(exit_error(opts[1], res), 2) end
  return res
end

process.Process = Process
require("async.class").check_self(Process)  -- a wrong self raises at once

return process
