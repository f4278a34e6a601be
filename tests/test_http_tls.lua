-- tests/test_http_tls.lua: http.serve{tls=} and wss:// with a certificate
-- the test makes itself (openssl req), against curl, Python aiohttp and
-- websockets, and lasync's own WebSocket client; a handshake that fails
-- does not stop the server serving others.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local H = require "rawhttp"
local http, ws = async.http, async.ws

local dir, cert, key

local function app()
  local r = http.router()
  r:get("/hello", function() return 200, "hello tls\n" end)
  r:post("/echo", function(req) return 200, req:body() end)
  r:get("/ws", function(req)
    local w <close> = ws.upgrade(req)
    for m, k in w:messages() do w:send(m, k) end
  end)
  return r
end

TestTls = support.suite({}, 60)

function TestTls:setUp()
  if not dir then
    dir = io_.tmpdir()
    cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    local r = H.run{"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"}
    assert(r.ok, r.stderr)
  end
end

function TestTls:test_curl_and_aiohttp_over_tls()
  local srv <close> = http.serve{handler = app(), tls = {cert = cert, key = key}}
  local base = "https://localhost:" .. select(2, srv:address())
  local r = H.run{"curl", "-sv", "--http1.1", "--cacert", cert, base .. "/hello", base .. "/hello"}
  lu.assertEquals(r.stdout, "hello tls\nhello tls\n")
  lu.assertStrContains(r.stderr, "ALPN: server accepted http/1.1")
  lu.assertStrContains(r.stderr, "Re-using existing connection")
  r = H.python([[
import asyncio, ssl, sys, aiohttp
async def main(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"https://localhost:{port}/echo", data=b"z" * 200000, ssl=ctx) as r:
            print(len(await r.read()))
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
]], tostring(select(2, srv:address())), cert)
  lu.assertEquals(r.stdout, "200000\n")
end

function TestTls:test_wss_clients_and_a_failed_handshake()
  local srv <close> = http.serve{handler = app(), tls = {cert = cert, key = key}}
  local port = select(2, srv:address())
  -- plain HTTP to the TLS port: that connection fails, the server goes on
  local s <close> = H.connect(port)
  s:write(H.get("/hello"))
  lu.assertNil(s:read())
  local c <close> = ws.connect("wss://localhost:" .. port .. "/ws", {tls = {ca = cert}})
  c:send("over tls")
  lu.assertEquals(c:recv(), "over tls")
  c:send(("b"):rep(1000000), "binary")
  lu.assertEquals(#c:recv(), 1000000)
  local ok, err = pcall(ws.connect, "wss://localhost:" .. port .. "/ws")
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "certificate verification failed")
  -- the system store is parsed once and shared: a context given its own CA
  -- file does not add to it, so the next default connect fails the same way
  local c2 <close> = ws.connect("wss://localhost:" .. port .. "/ws", {tls = {ca = cert}})
  c2:send("again")
  lu.assertEquals(c2:recv(), "again")
  ok, err = pcall(ws.connect, "wss://localhost:" .. port .. "/ws")
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "certificate verification failed")
  local r = H.python([[
import asyncio, ssl, sys, websockets
async def main(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    async with websockets.connect(f"wss://localhost:{port}/ws", ssl=ctx) as w:
        await w.send("py over tls"); print(await w.recv())
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
]], tostring(port), cert)
  lu.assertEquals(r.stdout, "py over tls\n")
end

function TestTls:test_bad_tls_options_raise()
  lu.assertErrorMsgContains("{cert = path, key = path}", http.serve, {handler = print, tls = {}})
  lu.assertErrorMsgContains("certificate /no/such", http.serve,
                            {handler = print, tls = {cert = "/no/such", key = key}})
  lu.assertErrorMsgContains("private key", http.serve, {handler = print, tls = {cert = cert, key = cert}})
end

function TestTls:test_zz_cleanup()
  io_.rmtree(dir)
end

support.run(...)
