-- tests/iosupport.lua: what the I/O suites share: connected stream pairs,
-- open file descriptor counts, a temporary directory, and peer programs
-- (Python) run in the background.
local support = require "support"
local M = {}

M.PYTHON = "/usr/bin/python3"

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local p = f:read("n")
  f:close()
  return p
end
M.pid = pid()

-- How many file descriptors this process has open. Listed by a shell into
-- a file (io.popen would race: its own pipe may or may not be listed).
-- Collects garbage first, so unreachable objects that hold a descriptor are
-- counted out. libuv opens a reserve descriptor with its first stream: make
-- a stream (M.pair()) before the first count.
function M.fds()
  collectgarbage()
  collectgarbage()
  local out = os.tmpname()
  os.execute("ls /proc/" .. M.pid .. "/fd > " .. out)
  local n = 0
  for _ in io.lines(out) do n = n + 1 end
  os.remove(out)
  return n
end

-- A fresh temporary directory (removed by M.rmtree).
function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/lasync-test.XXXXXX"))
  local d = p:read("l")
  p:close()
  return d
end

function M.rmtree(d)
  assert(d:match("^/tmp/lasync%-test%."), "refusing to remove " .. d)
  os.execute("rm -rf " .. support.shell_quote(d))
end

-- A connected pair of TCP streams over 127.0.0.1: a, b (a is the client).
function M.pair(host)
  local core = require "async.core.net"
  local l = core.tcp_listen(host or "127.0.0.1", 0)
  local _, port = l:address()
  local accepted = async.spawn(l.accept, l)
  local a = core.tcp_connect(host or "127.0.0.1", port)
  local b = accepted:await()
  l:close()
  return a, b
end

-- Starts a Python program (source text) in the background with the given
-- arguments; returns a handle whose :line() reads a line of its output
-- (stdout and stderr together) and :finish() waits for its end and returns
-- (all remaining output, exit ok). Both wait as a task does, with the loop
-- running: a blocking read (io.popen) froze the loop, so a server whose
-- handler had returned with output still queued (close flushes in the
-- background) never sent the rest, and the Python peer waited for it
-- until its alarm. The program ends itself after 20 s, and is killed if
-- the handle is collected unfinished (a failed test).
function M.python(src, ...)
  local path = os.tmpname()
  support.write_file(path, "import signal\nsignal.alarm(20)\n" .. src)
  local argv = {"/bin/sh", "-c", 'exec "$0" "$@" 2>&1', M.PYTHON, path}
  for _, a in ipairs({...}) do argv[#argv + 1] = a end
  argv.stdout = "pipe"
  local proc = async.process.spawn(argv)
  local h, finished = {}, false
  function h.line() return proc.stdout:read_line() end
  function h.finish()
    finished = true
    local out = proc.stdout:read_all()
    local code, sig = proc:wait()
    proc:close()
    os.remove(path)
    if sig then out = out .. "(python killed by " .. sig .. ")\n" end
    return out, code == 0 and sig == nil
  end
  function h.kill() proc:kill() end
  return setmetatable(h, {__gc = function()
    if not finished then
      pcall(proc.kill, proc)
      pcall(proc.close, proc)
      os.remove(path)
    end
  end})
end

-- Waits (yielding) until pred() is true; raises if it has not happened in
-- `secs` seconds (default 10). A hang detector, not a speed check: 500 turns
-- (~1 s) could run out on a loaded machine before a subprocess got going.
function M.eventually(pred, what, secs)
  local deadline = async.time() + (secs or 10)
  while not pred() do
    if async.time() > deadline then error("never happened: " .. (what or "condition"), 2) end
    async.sleep(0.002)
  end
end

return M
