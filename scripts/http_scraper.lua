-- scripts/http_scraper.lua: aiohttp's classic, a scraper. Fetches 1,000
-- pages from a local server through one session (limit = 100 connections,
-- limit_per_host = 20), with timeouts per request (1 s of silence, 60 s in
-- all, the wait for a pool slot included) and retries with
-- exponential backoff on 5xx answers and timeouts; prints a progress line
-- and, per URL, status, bytes or error; checks its own result.
-- The server (scripts/peers/http_demo_server.py) answers 503 to every 50th
-- page and stalls every 97th the first time, so retries have work to do.
local async = require "async"
local http = async.http

local server = async.process.spawn{"/usr/bin/python3", "scripts/peers/http_demo_server.py",
                                   stdin = "pipe", stdout = "pipe"}
local port = async.timeout(20, server.stdout.read_line, server.stdout):match("^port (%d+)$")
local base = "http://127.0.0.1:" .. port

local N, TRIES = 1000, 4
local results = {}

-- One page: up to TRIES attempts, backing off 50 ms, 100 ms, 200 ms.
local function fetch(session, i)
  local url = base .. "/page/" .. i
  for attempt = 1, TRIES do
    local ok, r = pcall(session.get, session, url, {read_timeout = 1, timeout = 60})
    local retry = (ok and r.status >= 500) or (not ok and async.is_timeout(r))
    if not retry or attempt == TRIES then
      if ok then results[i] = {status = r.status, bytes = #r.body, tries = attempt}
      else results[i] = {error = tostring(r), tries = attempt} end
      return
    end
    async.sleep(0.05 * 2 ^ (attempt - 1))
  end
end

local t0 = async.time()
do
  local session <close> = http.session{limit = 100, limit_per_host = 20}
  local done = 0
  async.scope(function(group)
    for i = 1, N do
      group:spawn(function()
        fetch(session, i)
        done = done + 1
        if done % 100 == 0 or done == N then
          io.stderr:write(string.format("\r%4d/%d pages, %.2f s", done, N, async.time() - t0))
        end
      end)
    end
  end)
  io.stderr:write("\n")
end
local elapsed = async.time() - t0
server.stdin:close()
server:wait()
server:close()

local ok, bytes, retried = 0, 0, 0
for i = 1, N do
  local r = results[i]
  if r.status == 200 then ok, bytes = ok + 1, bytes + r.bytes end
  if r.tries > 1 then retried = retried + 1 end
  if i <= 3 or r.tries > 1 and retried <= 3 then
    print(string.format("page %4d: %s, %d tries", i,
                        r.error or (r.status .. " " .. r.bytes .. " bytes"), r.tries))
  end
end
print(string.format("%d pages, %d ok, %d bytes, %d retried, %.2f s (%.0f pages/s)",
                    N, ok, bytes, retried, elapsed, N / elapsed))
assert(ok == N, "every page arrives in the end")
assert(retried == 20 + 10, "the 503s and the stalls were retried: " .. retried)
assert(http.stats().easy == 0)
