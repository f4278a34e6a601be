-- json_api.lua: a JSON API server with routes and middleware, and a client
-- run against it that checks every answer.
--
--   lasync scripts/json_api.lua            serve, run the checks, stop
--   lasync scripts/json_api.lua serve 8080 only serve, until ^C
--                                          (curl -H 'Authorization: Bearer secret' ...)
--
-- Routes: GET /items, POST /items, GET /items/:id, DELETE /items/:id.
-- Middleware, as plain functions in order: a request log with timing, and
-- bearer-token auth that answers 401 itself. Bodies are JSON (async.json);
-- a malformed one gets 400 from req:json() without any code here.
local async = require "async"
local http = async.http
local ok_json, json = pcall(require, "async.json")
if not ok_json then
  print("json_api: async.json is not in this build yet; skipped")
  return
end

local TOKEN = "secret"

local function api(log)
  local items, next_id = {}, 1
  local r = http.router()
  r:use(function(req, nxt)                         -- log: method, path, status, time
    local t0 = async.time()
    local ok, status, body, headers = pcall(nxt)      -- errors are logged too, then passed on
    local s = type(status) == "table" and (status.status or (not ok and 500)) or (ok and status or 500)
    log(("%s %s -> %s (%.1f ms)"):format(req.method, req.path, tostring(s), (async.time() - t0) * 1000))
    if not ok then error(status, 0) end
    return status, body, headers
  end)
  r:use(function(req, nxt)                         -- auth
    if req.headers.authorization ~= "Bearer " .. TOKEN then
      return {status = 401, json = {error = "unauthorized"}, headers = {["WWW-Authenticate"] = "Bearer"}}
    end
    return nxt()
  end)
  r:get("/items", function()
    local list = {}
    for id = 1, next_id - 1 do if items[id] then list[#list + 1] = items[id] end end
    return {json = json.array(list)}
  end)
  r:post("/items", function(req)
    local v = req:json()
    if type(v) ~= "table" or type(v.name) ~= "string" then
      return {status = 422, json = {error = "an item needs a name"}}
    end
    local item = {id = next_id, name = v.name, qty = math.tointeger(v.qty) or 1}
    items[next_id], next_id = item, next_id + 1
    return {status = 201, json = item, headers = {Location = "/items/" .. item.id}}
  end)
  r:get("/items/:id", function(req)
    local item = items[tonumber(req.params.id)]
    if not item then return {status = 404, json = {error = "no item " .. req.params.id}} end
    return {json = item}
  end)
  r:delete("/items/:id", function(req)
    local id = tonumber(req.params.id)
    if not items[id] then return {status = 404, json = {error = "no item " .. req.params.id}} end
    items[id] = nil
    return 204
  end)
  return r
end

if arg[1] == "serve" then
  local srv = http.serve{port = tonumber(arg[2]) or 8080, handler = api(print), access_log = true}
  print(("JSON API on http://%s:%d/items (token %q)"):format(srv:address(), TOKEN))
  srv.net:serve_forever()
  return
end

local lines = {}
local srv <close> = http.serve{handler = api(function(l) lines[#lines + 1] = l end)}
local port = select(2, srv:address())

-- The client: raw HTTP/1.1 on one keep-alive connection (async.http's
-- client works as well; this keeps the example to the server's side).
local conn <close> = async.net.connect("127.0.0.1", port)
local function call(method, path, body, token)
  local head = ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"):format(method, path, token or TOKEN)
  if body then head = head .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n" end
  conn:write(head .. "\r\n" .. (body or ""))
  local status = tonumber(conn:read_line():match("^HTTP/1%.1 (%d+)"))
  local len, is_json = 0, false
  for line in conn:lines() do
    if line == "" then break end
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)")) or len
    is_json = is_json or line:lower():find("^content%-type: application/json") ~= nil
  end
  local text = len > 0 and conn:read_exactly(len) or ""
  return status, is_json and json.decode(text) or text
end

local s, v = call("POST", "/items", json.encode({name = "apple", qty = 3}))
assert(s == 201 and v.id == 1 and v.qty == 3, "create")
s, v = call("POST", "/items", json.encode({name = "pear"}))
assert(s == 201 and v.id == 2 and v.qty == 1, "create with a default")
s, v = call("GET", "/items")
assert(s == 200 and #v == 2 and v[2].name == "pear", "list")
s, v = call("POST", "/items", "{not json")
assert(s == 400, "malformed JSON gets 400, got " .. tostring(s))
s, v = call("POST", "/items", json.encode({qty = 1}))
assert(s == 422 and v.error == "an item needs a name", "validation")
s = call("DELETE", "/items/1")
assert(s == 204, "delete")
s, v = call("GET", "/items/1")
assert(s == 404 and v.error == "no item 1", "gone")
s, v = call("GET", "/items", nil, "wrong")
assert(s == 401 and v.error == "unauthorized", "auth")
s = call("PUT", "/items/2")
assert(s == 405, "method not allowed")
assert(#lines == 9, "every request was logged")
print(("JSON API: 9 calls answered as expected; log: %s"):format(lines[1]))
