-- tests/rawhttp.lua: what the HTTP server and WebSocket suites share: a raw
-- HTTP/1.1 client over a socket (to send exactly the bytes a test wants,
-- hostile ones included, and read exactly what came back), and real
-- clients run as subprocesses (curl, Python aiohttp and websockets).
local process = async.process
local M = {}

M.PYTHON = "/usr/bin/python3"

-- Reads one response from sock: {status=, reason=, headers={lowercase},
-- body=, raw_head=}; nil at a clean end of the stream. HEAD responses:
-- pass head_only.
function M.read_response(sock, head_only)
  local line = sock:read_line()
  if not line then return nil end
  local status, reason = line:match("^HTTP/1%.[01] (%d%d%d) ?(.*)$")
  assert(status, "not a status line: " .. line)
  local r = {status = tonumber(status), reason = reason, headers = {}, raw_head = line}
  while true do
    local h = assert(sock:read_line())
    if h == "" then break end
    r.raw_head = r.raw_head .. "\n" .. h
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    r.headers[k:lower()] = v
  end
  if r.status < 200 then return r end
  if head_only or r.status == 204 or r.status == 304 then r.body = ""; return r end
  local cl = r.headers["content-length"]
  if cl then
    r.body = sock:read_exactly(tonumber(cl))
  elseif r.headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local n = tonumber(assert(sock:read_line()), 16)
      if n == 0 then assert(sock:read_line() == ""); break end
      parts[#parts + 1] = sock:read_exactly(n)
      assert(sock:read_line() == "")
    end
    r.body = table.concat(parts)
  else
    r.body = sock:read_all()
  end
  return r
end

function M.connect(port)
  return async.net.connect("127.0.0.1", port)
end

-- One request on a new connection; returns the response.
function M.request(port, raw)
  local s <close> = M.connect(port)
  s:write(raw)
  return M.read_response(s)
end

function M.get(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" .. (extra or "") .. "\r\n"
end

-- Runs argv (a list) to its end: the process.run result.
function M.run(argv, timeout)
  argv.timeout = timeout or 20
  return process.run(argv)
end

-- Runs the Python source with Debian's python3; args follow.
function M.python(src, ...)
  local path = os.tmpname() .. ".py"
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  local r = M.run({M.PYTHON, path, ...}, 60)
  os.remove(path)
  os.remove(path:sub(1, -4))
  return r
end

return M
