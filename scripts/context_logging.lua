-- Task-local context (Python's contextvars): each simulated request sets a
-- request id once; the logger, called from helpers several tasks deep,
-- picks it up without it being passed around. Children inherit the value
-- their parent had when it spawned them; what a child sets stays its own.
local ctx = async.context
local lines = {}

local function log(msg)
  local line = ("[%s] %s"):format(ctx.get("request_id", "-"), msg)
  lines[#lines + 1] = line
  print(line)
end

local function query_db(what)
  async.sleep(0.001 * #what)
  log("db: " .. what)
end

local function handle(id, path)
  ctx.set("request_id", id)
  log("start " .. path)
  -- two sub-queries in parallel: both log with this request's id
  async.gather(function() query_db("user") end, function() query_db("orders") end)
  async.spawn(function()
    ctx.set("request_id", id .. "/audit")  -- shadows for this task only
    log("audit written")
  end):await()
  log("done " .. path)
end

async.gather(function() handle("req-1", "/home") end,
             function() handle("req-2", "/cart") end)
log("all requests served")

-- every line carries the id of the request it belongs to
local per_request = {}
for _, line in ipairs(lines) do
  local id = line:match("^%[(.-)%]")
  per_request[id] = (per_request[id] or 0) + 1
end
assert(per_request["req-1"] == 4 and per_request["req-2"] == 4, "4 lines per request")
assert(per_request["req-1/audit"] == 1 and per_request["req-2/audit"] == 1)
assert(per_request["-"] == 1, "the main task has no request id")
