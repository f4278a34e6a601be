-- tests/httpsupport.lua: the peers of the HTTP client tests: the aiohttp
-- server of tests/http_peer.py on two plain ports and a TLS one, with a
-- certificate for 127.0.0.1 made here with `openssl req` in a temporary
-- directory. M.start() returns the peer; peer:stop() ends it.
local iosupport = require "iosupport"
local process = async.process
local M = {}

-- Makes a self-signed certificate for 127.0.0.1/localhost in dir.
function M.make_cert(dir, name)
  name = name or "server"
  local crt, key = dir .. "/" .. name .. ".crt", dir .. "/" .. name .. ".key"
  process.run{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
              "-keyout", key, "-out", crt, "-subj", "/CN=127.0.0.1",
              "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", check = true, timeout = 30}
  return crt, key
end

function M.start()
  local dir = iosupport.tmpdir()
  local crt, key = M.make_cert(dir)
  local ccrt, ckey = M.make_cert(dir, "client")
  local proc = process.spawn{iosupport.PYTHON, "tests/http_peer.py", crt, key, ccrt,
                             stdin = "pipe", stdout = "pipe", stderr = "ignore"}
  local line = async.timeout(20, proc.stdout.read_line, proc.stdout)
  local a, b, tls, mtls, silent = line:match("^ports (%d+) (%d+) (%d+) (%d+) (%d+)$")
  assert(a, "the peer did not start: " .. tostring(line))
  local peer = {dir = dir, ca = crt, proc = proc,
                url = "http://127.0.0.1:" .. a, url2 = "http://127.0.0.1:" .. b,
                tls = "https://127.0.0.1:" .. tls, mtls = "https://127.0.0.1:" .. mtls,
                client_cert = ccrt, client_key = ckey,
                silent = "https://127.0.0.1:" .. silent}   -- TLS handshake never ends
  function peer.stop()
    proc.stdin:close()
    async.timeout(10, proc.wait, proc)
    proc:close()
    iosupport.rmtree(dir)
  end
  return peer
end

return M
