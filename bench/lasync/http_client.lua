-- bench/lasync/http_client.lua URL N CONC [CA]: N GETs of URL, CONC at a
-- time through one async.http session; prints "ok bytes=...".
local http = async.http
local url, n, conc, ca = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local s <close> = http.session{limit = conc, limit_per_host = conc, ca_file = ca}
local next_i, bytes, conns, h2 = 0, 0, 0, 0
local function worker()
  while next_i < n do
    next_i = next_i + 1
    local r = s:get(url)
    assert(r.status == 200)
    bytes = bytes + #r.body
    conns = conns + r:info().new_connections
    if r.http_version == 20 then h2 = h2 + 1 end
  end
end
local ws = {}
for i = 1, conc do ws[i] = worker end
async.gather(ws)
print("ok bytes=" .. bytes .. " connections=" .. conns .. " http2=" .. h2)
