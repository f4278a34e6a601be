-- fetcher.lua: the scraping pattern. Download many URLs at once, at most
-- LIMIT at a time (a semaphore), each with a deadline, and report every
-- failure per URL instead of stopping at the first. The web site is a tiny
-- HTTP/1.0 server written with async.net in the same script: some pages
-- are slow (past the deadline), some missing (404), some cut off (reset).
local async = require "async"
local net = async.net

local PAGES, LIMIT, DEADLINE = 60, 8, 0.5

------------------------------------------------------------- the web site

local function page_body(n) return ("<html>page %d: %s</html>\n"):format(n, ("x"):rep(n * 37)) end

-- /page/N is fine, except: every 10th is slow, every 15th missing, every
-- 17th cut off in the middle of its body.
local function route(conn, n)
  if n % 15 == 0 then
    local body = "no such page\n"
    conn:write("HTTP/1.0 404 Not Found\r\nContent-Length: ", #body, "\r\n\r\n", body)
    return
  end
  if n % 10 == 0 then async.sleep(DEADLINE * 10) end   -- the client gives up first
  local body = page_body(n)
  conn:write("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: ", #body, "\r\n\r\n")
  if n % 17 == 0 then
    conn:write(body:sub(1, 10))
    conn:abort()                          -- a reset instead of the rest
    return
  end
  conn:write(body)
end

local function handler(conn)
  local request = conn:read_until("\r\n\r\n", 8192)
  if not request then return end
  local n = tonumber(request:match("^GET /page/(%d+) HTTP/1%.[01]\r\n"))
  if n then route(conn, n)
  else conn:write("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n") end
end

local site = net.listen("127.0.0.1", 0, handler)
local host, port = site:address()

------------------------------------------------------------- the client

-- GET url: returns status, headers, body; raises IOError or async.Timeout.
local function http_get(url)
  local h, p, path = url:match("^http://([^:/]+):(%d+)(/.*)$")
  local conn <close> = net.connect(h, tonumber(p))
  conn:write("GET ", path, " HTTP/1.0\r\nHost: ", h, "\r\n\r\n")
  local status = tonumber(conn:read_line():match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for line in conn:lines() do
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  local len = tonumber(headers["content-length"])
  local body = len and conn:read_exactly(len) or conn:read_all()
  return status, headers, body
end

local limit = async.semaphore(LIMIT)
local running, peak = 0, 0

local function fetch(url)
  local _ <close> = limit:acquire()      -- at most LIMIT downloads at once
  running = running + 1
  peak = math.max(peak, running)
  local ok, status, _, body = pcall(async.timeout, DEADLINE, http_get, url)
  running = running - 1
  if not ok then error(status, 0) end    -- settle() collects it for this URL
  if status ~= 200 then error(("HTTP %d"):format(status), 0) end
  return body
end

local urls = {}
for n = 1, PAGES do urls[n] = ("http://%s:%d/page/%d"):format(host, port, n) end

local t0 = async.time()
local jobs = {}
for i, url in ipairs(urls) do jobs[i] = function() return fetch(url) end end
local results, errors = async.settle(jobs)
local elapsed = async.time() - t0

------------------------------------------------------------- the report

local counts = {ok = 0, timeout = 0, ["404"] = 0, reset = 0}
for n = 1, PAGES do
  local err = errors[n]
  local expect = n % 15 == 0 and "404" or n % 10 == 0 and "timeout" or n % 17 == 0 and "reset" or "ok"
  local got
  if err == nil then
    assert(results[n] == page_body(n), "page " .. n .. " arrived intact")
    got = "ok"
  elseif async.is_timeout(err) then got = "timeout"
  elseif err == "HTTP 404" then got = "404"
  elseif getmetatable(err) == async.IOError and (err.code == "ECONNRESET" or err.code == "EOF") then
    got = "reset"                         -- EOF: the reset cut read_exactly short
  else error("page " .. n .. ": unexpected error: " .. tostring(err)) end
  assert(got == expect, ("page %d: expected %s, got %s (%s)"):format(n, expect, got, tostring(err)))
  counts[got] = counts[got] + 1
  if got ~= "ok" and n <= 30 then print(("  %-34s %s"):format(urls[n], tostring(err))) end
end
assert(peak <= LIMIT, "never more than LIMIT at once")
site:shutdown(0)                          -- the slow handlers need not finish

print(("fetched %d URLs in %.0f ms, at most %d at a time (limit %d): %d ok, %d timed out, " ..
       "%d not found, %d reset"):format(PAGES, elapsed * 1000, peak, LIMIT, counts.ok,
       counts.timeout, counts["404"], counts.reset))
