-- tests/test_http_many.lua: 10,000 concurrent keep-alive connections held
-- by a server in another lasync process, each answered twice, and the
-- server's memory per idle connection (VmRSS from /proc, reported, and
-- checked against a bound: it must not grow with traffic, only with
-- connections).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local H = require "rawhttp"

-- Under the sanitizers (their shadow memory is many times the program's) a
-- tenth of the connections shows the same.
local sanitized = support.LASYNC:find("asan") or support.LASYNC:find("tsan")
local N = tonumber(os.getenv("HTTP_MANY") or (sanitized and "1000" or "10000"))

local SERVER = [[
local srv = async.http.serve{handler = function() return 200, "ok" end,
                             limits = {max_connections = 20000, idle_timeout = 600}}
print((select(2, srv:address())))
io.stdout:flush()
local function rss()
  for l in io.lines("/proc/self/status") do
    local kb = l:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
for line in async.stdin:lines() do
  collectgarbage()
  print(rss(), srv:connections())
  io.stdout:flush()
end
srv:close()
]]

TestMany = support.suite({}, 240)

function TestMany:test_ten_thousand_idle_keep_alive_connections()
  local script = os.tmpname() .. ".lua"
  support.write_file(script, SERVER)
  local p = async.process.spawn{support.LASYNC, script, stdin = "pipe", stdout = "pipe"}
  local port = tonumber(p.stdout:read_line())
  local function server_stats()
    p.stdin:write("?\n")
    local kb, n = p.stdout:read_line():match("(%d+)%s+(%d+)")
    return tonumber(kb), tonumber(n)
  end
  local warm <close> = H.connect(port)
  warm:write(H.get("/"))
  H.read_response(warm)
  local base = server_stats()
  local conns = {}
  local function open(i)
    local s = H.connect(port)
    s:write(H.get("/"))
    lu.assertEquals(H.read_response(s).body, "ok")
    conns[i] = s
  end
  for from = 1, N, 500 do                  -- 500 connects in flight at a time
    local batch = {}
    for i = from, math.min(N, from + 499) do batch[#batch + 1] = async.spawn(open, i) end
    async.gather(batch)
  end
  local kb, held = server_stats()
  lu.assertEquals(held, N + 1)
  local per = (kb - base) * 1024 / N
  print(("\n# %d idle keep-alive connections: server RSS %d -> %d KB, %.0f bytes per connection"):format(
    N, base, kb, per))
  -- under the sanitizers memory figures mean nothing (ASan's quarantine, shadow)
  if not sanitized then lu.assertTrue(per < 32768, "more than 32 KB per idle connection: " .. per) end
  for from = 1, N, 1000 do                 -- every connection is still served
    local batch = {}
    for i = from, math.min(N, from + 999) do
      batch[#batch + 1] = async.spawn(function()
        conns[i]:write(H.get("/"))
        lu.assertEquals(H.read_response(conns[i]).body, "ok")
      end)
    end
    async.gather(batch)
  end
  local kb2 = server_stats()
  if not sanitized then
    lu.assertTrue(kb2 - kb < 4096 + kb // 10, ("a second request each grew the server: %d -> %d KB"):format(kb, kb2))
  end
  for i = 1, N do conns[i]:close() end
  warm:close()
  while select(2, server_stats()) > 0 do async.sleep(0.01) end
  p.stdin:close()
  p:wait()
  p.stdout:close()
  p:close()
  os.remove(script)
  os.remove(script:sub(1, -5))
end

support.run(...)
