-- scripts/http_json_api.lua: a client of a JSON REST API (a to-do list on
-- a local aiohttp server, scripts/peers/http_demo_server.py) through a
-- session with a base URL and default headers: create, list with a query,
-- update, delete, and the errors an API gives back (422, 404) as values
-- the caller can branch on. Checks its own result.
local async = require "async"
local http, json = async.http, async.json

local server = async.process.spawn{"/usr/bin/python3", "scripts/peers/http_demo_server.py",
                                   stdin = "pipe", stdout = "pipe"}
local port = async.timeout(20, server.stdout.read_line, server.stdout):match("^port (%d+)$")

-- A tiny API wrapper: JSON in, JSON out, HTTP errors raised with the
-- server's message.
local Api = {}
Api.__index = Api

local function new_api(base)
  return setmetatable({s = http.session{base_url = base, timeout = 5,
                                        headers = {Accept = "application/json"}}}, Api)
end

function Api:call(method, path, body, query)
  local r = self.s:request{method = method, url = path, json = body, query = query}
  if r.status >= 400 then
    local ctype = r.headers["content-type"] or ""
    local detail = ctype:find("json", 1, true) and r:json().error or r.body
    error({status = r.status, message = detail}, 2)
  end
  if r.status == 204 then return nil end
  return r:json()
end

function Api:close() self.s:close() end
Api.__close = Api.close

do
  local api <close> = new_api("http://127.0.0.1:" .. port .. "/api/")
  -- Three creates at once: the session runs them concurrently.
  local made = async.gather(
    function() return api:call("POST", "todos", {title = "write docs", tags = json.array()}) end,
    function() return api:call("POST", "todos", {title = "run the bench", tags = {"perf"}}) end,
    function() return api:call("POST", "todos", {title = "merge main"}) end)
  for _, t in ipairs(made) do assert(math.type(t.id) == "integer" and t.done == false) end

  local id = made[2].id
  local updated = api:call("PATCH", "todos/" .. id, {done = true})
  assert(updated.done == true and updated.tags[1] == "perf")

  local open = api:call("GET", "todos", nil, {done = "false"})
  assert(#open == 2, "two left to do")
  local all = api:call("GET", "todos")
  assert(#all == 3)

  -- The API's own errors come back as values with the status.
  local ok, err = pcall(api.call, api, "POST", "todos", {title = ""})
  assert(not ok and err.status == 422 and err.message == "title is required")
  api:call("DELETE", "todos/" .. made[3].id)
  ok, err = pcall(api.call, api, "GET", "todos/" .. made[3].id)
  assert(not ok and err.status == 404 and err.message == "no such todo")

  for _, t in ipairs(api:call("GET", "todos")) do
    print(string.format("#%d %-14s %s tags=%s", t.id, t.title, t.done and "done" or "open",
                        json.encode(t.tags)))
  end
end

server.stdin:close()
server:wait()
server:close()
assert(http.stats().easy == 0)
