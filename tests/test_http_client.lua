-- tests/test_http_client.lua: async.http's client against real peers on
-- 127.0.0.1 (tests/http_peer.py: aiohttp on two plain ports and a TLS one
-- with a certificate made at run time): bodies, redirects and their
-- method rules, cookies, gzip, errors and timeouts naming what failed,
-- TLS verification, streaming with backpressure, the pool's limits as the
-- server counts them, and cancellation in every phase with no handle,
-- socket or easy handle left behind.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local hs = require "httpsupport"
local iosupport = require "iosupport"
local http = async.http

local peer = hs.start()
local U, U2, TLS = peer.url, peer.url2, peer.tls

local function stats() return http.get(U .. "/stats"):json() end
local function reset() http.get(U .. "/reset") end

-- No easy handle, transfer or watched socket left after a test.
local function check_no_transfers(s)
  collectgarbage(); collectgarbage()
  lu.assertEquals(http.stats().easy, 0)
  if s then
    local st = s:stats()
    lu.assertEquals(st.active, 0)
    lu.assertEquals(st.transfers, 0)
  end
end

TestHttp = support.suite({}, 20)

function TestHttp:test_get_sized_and_chunked()
  local r = http.get(U .. "/size/100000")
  lu.assertEquals(r.status, 200)
  lu.assertEquals(#r.body, 100000)
  lu.assertEquals(r.headers["Content-Length"], "100000")
  lu.assertEquals(r.headers["content-length"], "100000")
  lu.assertEquals(r.http_version, 11)
  lu.assertEquals(r.reason, "OK")
  -- A name, resolved by libcurl's resolver thread.
  lu.assertEquals(http.get((U:gsub("127.0.0.1", "localhost")) .. "/size/3").body, "xxx")
  r = http.get(U .. "/chunked/3")
  lu.assertEquals(r.body, "line 0\nline 1\nline 2\n")
  lu.assertEquals(r.headers["transfer-encoding"], "chunked")
  check_no_transfers()
end

function TestHttp:test_request_options()
  local r = http.request{method = "PUT", url = U .. "/echo", query = {b = "x y", a = 1},
                         headers = {["X-One"] = "1"}, body = "payload"}
  local e = r:json()
  lu.assertEquals(e.method, "PUT")
  lu.assertEquals(e.query, {a = "1", b = "x y"})
  lu.assertEquals(e.headers["X-One"], "1")
  lu.assertEquals(e.body, "payload")
  e = http.post(U .. "/echo", {json = {n = 1, list = async.json.array()}}):json()
  lu.assertStrContains(e.body, '"list":[]')
  lu.assertStrContains(e.body, '"n":1')
  lu.assertEquals(e.headers["Content-Type"], "application/json")
  e = http.post(U .. "/echo", {form = {q = "a&b"}}):json()
  lu.assertEquals(e.body, "q=a%26b")
  lu.assertEquals(http.delete(U .. "/echo"):json().method, "DELETE")
  lu.assertEquals(http.head(U .. "/size/10").body, "")
end

function TestHttp:test_repeated_headers_and_status()
  local r = http.get(U .. "/headers")
  lu.assertEquals(r.headers["x-multi"], "one, two")
  lu.assertEquals(r:get_all("X-Multi"), {"one", "two"})
  lu.assertEquals(#r:get_all("set-cookie"), 2)
  r = http.get(U .. "/status/503")
  lu.assertEquals(r.status, 503)              -- a status is not an error
  local ok, err = pcall(r.raise_for_status, r)
  lu.assertFalse(ok)
  lu.assertEquals(err.status, 503)
  lu.assertStrContains(tostring(err), "HTTP 503")
end

-- 301/302/303 turn a POST into a GET without its body; 307/308 keep both.
function TestHttp:test_redirect_method_rules()
  for _, code in ipairs{301, 302, 303, 307, 308} do
    local r = http.post(U .. "/redirect/" .. code, {body = "data"})
    local e = r:json()
    lu.assertEquals(r.url, U .. "/echo", code)
    if code >= 307 then
      lu.assertEquals(e.method, "POST", code)
      lu.assertEquals(e.body, "data", code)
    else
      lu.assertEquals(e.method, "GET", code)
      lu.assertEquals(e.body, "", code)
    end
  end
  local r = http.get(U .. "/redirect/302", {max_redirects = 0})
  lu.assertEquals(r.status, 302)
  lu.assertEquals(r.headers.location, "/echo")
  local ok, err = pcall(http.get, U .. "/loop")
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "ETOOMANYREDIRECTS")
  lu.assertEquals(err.url, U .. "/loop")
end

function TestHttp:test_cookies_per_session()
  local a <close> = http.session()
  local b <close> = http.session()
  a:get(U .. "/cookie/set", {query = {token = "abc"}})
  lu.assertEquals(a:get(U .. "/cookie/get"):json(), {token = "abc"})
  lu.assertEquals(b:get(U .. "/cookie/get"):json(), {})
  local c <close> = http.session{cookies = false}
  c:get(U .. "/cookie/set", {query = {token = "abc"}})
  lu.assertEquals(c:get(U .. "/cookie/get"):json(), {})
end

function TestHttp:test_gzip()
  local r = http.get(U .. "/gzip")
  lu.assertEquals(r.body, string.rep("compressible ", 1000))
  r = http.get(U .. "/gzip", {decompress = false})
  lu.assertTrue(#r.body < 1000)
end

function TestHttp:test_errors_name_the_failure()
  local ok, err = pcall(http.get, "http://127.0.0.1:1/x")
  lu.assertFalse(ok)
  lu.assertEquals(err.kind, "IOError")
  lu.assertEquals(err.code, "ECONNREFUSED")
  lu.assertEquals(err.url, "http://127.0.0.1:1/x")
  lu.assertEquals(err.curl_code, 7)
  lu.assertStrContains(tostring(err), "GET http://127.0.0.1:1/x")
  ok, err = pcall(http.get, U .. "/close-mid-body")
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "EPROTO")
  lu.assertEquals(err.curl_code, 18)
  check_no_transfers()
end

function TestHttp:test_bad_arguments()
  lu.assertErrorMsgContains("url expected", http.request, {})
  lu.assertErrorMsgContains("table expected", http.request, "x")
  lu.assertErrorMsgContains("url must be http:// or https://", http.get, "ftp://x/")
  lu.assertErrorMsgContains("unknown option 'tiemout'", http.get, U, {tiemout = 1})
  lu.assertErrorMsgContains("method must be", http.request, {url = U, method = "get"})
  lu.assertErrorMsgContains("give one of body, json and form", http.post, U, {body = "", json = {}})
  lu.assertErrorMsgContains("line break", http.get, U, {headers = {X = "a\r\nB: c"}})
  lu.assertErrorMsgContains("timeout must be a number", http.get, U, {timeout = "soon"})
  lu.assertErrorMsgContains("limit must be a positive integer", http.session, {limit = 0})
  local s = http.session()
  s:close()
  s:close()                                   -- idempotent
  lu.assertErrorMsgContains("the session is closed", s.get, s, U)
  local r = http.get(U .. "/size/3", {stream = true})
  r:close()
  lu.assertErrorMsgContains("the response is closed", r.text, r)
  lu.assertNil(r:read())
  check_no_transfers()
end

-- The native types under the module refuse misuse with clear errors.
function TestHttp:test_native_misuse()
  local core = require "async.core.http"
  lu.assertErrorMsgContains("limit must be positive", core.session, 0, 1)
  lu.assertErrorMsgContains("number expected", core.session, "x", 1)
  local s = core.session(2, 2, true)
  lu.assertErrorMsgContains("table expected", s.start, s, "GET", U, nil, nil, {})
  lu.assertErrorMsgContains("header 1 is not a string", s.start, s, "GET", U, {{}}, nil, {})
  lu.assertErrorMsgContains("connect_timeout must be a number", s.start, s, "GET", U, {}, nil, {connect_timeout = "x"})
  lu.assertErrorMsgContains("timeout must be a number", s.start, s, "GET", U, {}, nil, {}, -1)
  lu.assertErrorMsgContains("http_version must be", s.start, s, "GET", U, {}, nil, {http_version = "9"})
  lu.assertErrorMsgContains("HttpSession expected", s.start, {}, "GET", U, {}, nil, {})
  local t = s:start("GET", U .. "/size/1", {}, nil, {})
  lu.assertStrContains(tostring(t), "HttpTransfer<GET")
  lu.assertErrorMsgContains("size must be positive", t.read, t, 0)
  lu.assertErrorMsgContains("HttpTransfer expected", t.read, s)
  s:close()                                   -- aborts t
  lu.assertErrorMsgContains("the session was closed", t.headers, t)
  t:close(); t:close()
  lu.assertErrorMsgContains("the response is closed", t.read, t)
  lu.assertStrContains(tostring(t), "closed")
  lu.assertErrorMsgContains("the session is closed", s.start, s, "GET", U, {}, nil, {})
  lu.assertStrContains(tostring(s), "HttpSession<closed>")
  check_no_transfers()
end

function TestHttp:test_timeouts_say_which()
  local ok, err = pcall(http.get, U .. "/never", {timeout = 0.2})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(err.which, "total")
  lu.assertEquals(err.code, "ETIMEDOUT")
  ok, err = pcall(http.get, U .. "/slow/30", {read_timeout = 0.05})
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(err.which, "read")
  -- A connection whose TLS handshake never ends: the connect phase.
  ok, err = pcall(http.get, peer.silent .. "/", {connect_timeout = 0.1})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  lu.assertEquals(err.which, "connect")
  check_no_transfers()
end

function TestHttp:test_tls_verification()
  local ok, err = pcall(http.get, TLS .. "/size/5")
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "ETLS")
  lu.assertStrContains(err.message, "self-signed certificate")
  local r = http.get(TLS .. "/size/5", {ca_file = peer.ca})
  lu.assertEquals(r.body, "xxxxx")
  r = http.get(TLS .. "/size/5", {insecure = true})
  lu.assertEquals(r.status, 200)
  local s <close> = http.session{ca_file = peer.ca, base_url = TLS}
  lu.assertEquals(s:get("/echo"):json().path, "/echo")
end

function TestHttp:test_client_certificate()
  local ok, err = pcall(http.get, peer.mtls .. "/size/2", {ca_file = peer.ca})
  lu.assertFalse(ok)
  -- Refused: in the handshake (TLS 1.2: ETLS) or, with TLS 1.3, by the
  -- server closing right after it (EPROTO "Empty reply", or a reset).
  lu.assertTrue(err.code == "ETLS" or err.code == "EPROTO" or err.code == "ECONNRESET", tostring(err))
  local r = http.get(peer.mtls .. "/size/2", {ca_file = peer.ca, cert = peer.client_cert,
                                              key = peer.client_key})
  lu.assertEquals(r.body, "xx")
end

-- A slow reader holds the transfer back: the server cannot run ahead by
-- more than the buffers between us, and our memory stays bounded.
function TestHttp:test_streaming_backpressure()
  local n = 50 * 1024 * 1024
  local r <close> = http.get(U .. "/big/" .. n, {stream = true, stream_buffer = 65536})
  local first = r:read(1000)
  lu.assertEquals(#first, 1000)
  iosupport.eventually(function() return r:info().paused end, "the transfer pauses")
  for _ = 1, 5 do async.sleep(0.01) end
  local sent = http.get(U .. "/big-sent"):json().sent
  lu.assertTrue(sent < n / 4, "server sent " .. sent .. " of " .. n .. " to a reader that stopped")
  local got = #first
  for chunk in r:chunks(1 << 20) do got = got + #chunk end
  lu.assertEquals(got, n)
  lu.assertTrue(r:closed())
  check_no_transfers()
end

-- A streamed response dropped unclosed gives its slot back once collected.
function TestHttp:test_dropped_stream_releases_its_slot()
  local s <close> = http.session{limit = 1}
  do local _ = s:get(U .. "/size/10", {stream = true}) end
  collectgarbage(); collectgarbage()
  lu.assertEquals(async.timeout(5, s.get, s, U .. "/size/2").body, "xx")
  check_no_transfers(s)
end

function TestHttp:test_lines_and_read()
  local r <close> = http.get(U .. "/chunked/100", {stream = true})
  local n = 0
  for line in r:lines() do
    lu.assertEquals(line, "line " .. n)
    n = n + 1
  end
  lu.assertEquals(n, 100)
  local r2 <close> = http.get(U .. "/size/10", {stream = true})
  lu.assertEquals(r2:read(4), "xxxx")
  lu.assertEquals(r2:text(), "xxxxxx")
end

-- Cancelled while connecting, waiting for headers, mid-body and in a
-- streamed read: the task ends at once and nothing is left behind.
function TestHttp:test_cancel_in_every_phase()
  local a, b = iosupport.pair()               -- libuv's reserve descriptor first
  a:close(); b:close()
  local fds = iosupport.fds()
  local s <close> = http.session()
  local cases = {
    {"connect", function() s:get(peer.silent .. "/", {connect_timeout = 10}) end},
    {"headers", function() s:get(U .. "/never") end},
    {"mid-body", function() s:get(U .. "/slow/50") end},
    {"stream read", function()
      local r <close> = s:get(U .. "/slow/50", {stream = true})
      while r:read() do end
    end},
  }
  for _, c in ipairs(cases) do
    local t = async.spawn(c[2])
    for _ = 1, 20 do async.sleep(0.005) end     -- let it get to its phase
    lu.assertEquals(t:state(), "waiting", c[1])
    t:cancel()
    local ok, err = pcall(t.await, t)
    lu.assertFalse(ok, c[1])
    lu.assertTrue(async.is_cancelled(err), c[1] .. ": " .. tostring(err))
    check_no_transfers(s)
  end
  -- The session still works, on a new connection: each cancel cut its
  -- transfer short, and libcurl closes such a connection, never reuses it.
  local r = s:get(U .. "/size/3")
  lu.assertEquals(r.body, "xxx")
  lu.assertEquals(r:info().new_connections, 1)
  lu.assertFalse(pcall(async.timeout, 0.05, s.get, s, U .. "/never"))
  check_no_transfers(s)
  s:close()                                   -- its pooled connections too
  lu.assertEquals(iosupport.fds(), fds)
end

-- The server counts: never more than limit_per_host requests or
-- connections at once to one origin, never more than limit in all; the
-- pool reuses connections.
function TestHttp:test_pool_limits_counted_by_the_server()
  reset()
  local s <close> = http.session{limit = 5, limit_per_host = 3}
  local tasks = {}
  for i = 1, 24 do
    tasks[i] = async.spawn(s.get, s, (i % 2 == 0 and U or U2) .. "/delay/20")
  end
  for _, t in ipairs(tasks) do lu.assertEquals(t:await().body, "done") end
  local st = stats()
  lu.assertTrue(st.max_requests <= 5, "max concurrent requests " .. st.max_requests)
  -- +1: when the pool swaps a connection to one origin for one to the
  -- other, the server may see the new one before the old one's FIN.
  lu.assertTrue(st.max_conns <= 5 + 1, "max open connections " .. st.max_conns)
  lu.assertTrue(st.connections < 24, "connections made " .. st.connections .. " (reuse)")
  lu.assertEquals(st.total, 24)
  -- One origin: limit_per_host binds.
  reset()
  for i = 1, 12 do tasks[i] = async.spawn(s.get, s, U2 .. "/delay/20") end
  for i = 1, 12 do tasks[i]:await() end
  st = stats()
  lu.assertTrue(st.max_requests <= 3, "per host: max concurrent requests " .. st.max_requests)
  lu.assertTrue(st.connections <= 4, "per host: connections " .. st.connections)
  -- One after another: one connection, reused every time.
  reset()
  for i = 1, 10 do
    local r = s:get(U .. "/delay/1")
    if i > 1 then lu.assertEquals(r:info().new_connections, 0) end
  end
  lu.assertEquals(stats().connections, 1)
end

-- Proxies: the proxy option, and http_proxy from the environment (libcurl
-- reads it). The peer plays the proxy: it answers the absolute-form request
-- itself, so the Host it saw is the origin's.
function TestHttp:test_proxy()
  local e = http.get("http://example.invalid/echo?x=1", {proxy = U}):json()
  lu.assertEquals(e.headers.Host, "example.invalid")
  lu.assertEquals(e.path, "/echo")
  local dir = iosupport.tmpdir()
  local script = dir .. "/p.lua"
  support.write_file(script, 'print(async.http.get("http://example.invalid/echo"):json().headers.Host)')
  local r = async.process.run{support.LASYNC, script, env = {http_proxy = U, no_proxy = false},
                              timeout = 30}
  lu.assertEquals(r.stdout, "example.invalid\n", r.stderr)
  iosupport.rmtree(dir)
end

-- A caller beyond the limit waits; its total timeout counts the wait.
function TestHttp:test_pool_wait_within_the_timeout()
  local s <close> = http.session{limit = 1}
  local holder = async.spawn(s.get, s, U .. "/never")
  async.sleep(0)
  local ok, err = pcall(s.get, s, U .. "/size/1", {timeout = 0.1})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(err.which, "total")
  holder:cancel()
  pcall(holder.await, holder)
  lu.assertEquals(s:get(U .. "/size/1").body, "x")   -- the slot came back
  check_no_transfers(s)
end

-- A connection the server closed is not reused: the next request works.
function TestHttp:test_closed_connection_not_reused()
  local s <close> = http.session()
  reset()
  for _ = 1, 3 do lu.assertEquals(s:get(U .. "/close-after").body, "bye") end
  lu.assertEquals(s:get(U .. "/size/1").body, "x")
  lu.assertEquals(s:get(U .. "/size/1").body, "x")
  local st = stats()
  lu.assertTrue(st.connections >= 4, "connections " .. st.connections)
end

function TestHttp:test_download_is_atomic()
  local dir = iosupport.tmpdir()
  local path = dir .. "/file.bin"
  local r = http.download(U .. "/size/300000", path)
  lu.assertEquals(r.status, 200)
  lu.assertEquals(#support.slurp(path), 300000)
  local ok = pcall(http.download, U .. "/close-mid-body", path)
  lu.assertFalse(ok)
  lu.assertEquals(#support.slurp(path), 300000)       -- untouched
  ok = pcall(http.download, U .. "/status/404", dir .. "/missing")
  lu.assertFalse(ok)
  lu.assertEquals(async.fs.list_dir(dir), {"file.bin"})  -- no temporary left
  iosupport.rmtree(dir)
end

-- HTTP/2 over TLS against nghttpd (nghttp2-server): concurrent requests of
-- one session share one multiplexed connection.
function TestHttp:test_http2_multiplexed()
  local dir = iosupport.tmpdir()
  local crt, key = hs.make_cert(dir, "h2")
  local f = assert(io.open(dir .. "/page.txt", "w"))
  f:write(string.rep("h2", 1000))
  f:close()
  local l = async.net.listen("127.0.0.1", 0, function() end)
  local port = select(2, l:address())
  l:close()
  local proc <close> = async.process.spawn{"nghttpd", "-d", dir, tostring(port), key, crt,
                                           stdout = "ignore", stderr = "ignore"}
  local s <close> = http.session{ca_file = crt, limit_per_host = 10}
  local url = "https://127.0.0.1:" .. port .. "/page.txt"
  iosupport.eventually(function() return pcall(s.get, s, url) end, "nghttpd listens")
  s:close()
  local s2 <close> = http.session{ca_file = crt, limit_per_host = 10}
  local tasks = {}
  for i = 1, 10 do tasks[i] = async.spawn(s2.get, s2, url) end
  local conns = 0
  for i = 1, 10 do
    local r = tasks[i]:await()
    lu.assertEquals(r.http_version, 20)
    lu.assertEquals(#r.body, 2000)
    conns = conns + r:info().new_connections
  end
  lu.assertEquals(conns, 1)
  proc:kill()
  proc:wait()
  iosupport.rmtree(dir)
end

local ok, err = pcall(support.run, ...)
peer.stop()
if not ok then error(err, 0) end
