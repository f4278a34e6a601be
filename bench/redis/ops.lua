-- bench/redis/ops.lua TARGET [TASKS] [N]: N commands (SET then GET,
-- alternating) from TASKS tasks, each on its own key, on one client.
-- TARGET is a port on 127.0.0.1 (one connection, pipelined by itself), or
-- "host:port,host:port,..." for a Redis Cluster client (the keys spread
-- over the masters; one pipelined connection per master).
local target, tasks, n = arg[1], tonumber(arg[2] or "100"), tonumber(arg[3] or "100000")
local r
if target:find("[:,]") then
  local seeds = {}
  for s in target:gmatch("[^,]+") do seeds[#seeds + 1] = s end
  r = async.redis.connect{cluster = seeds}
else
  r = async.redis.connect{host = "127.0.0.1", port = tonumber(target)}
end
local per = n // tasks // 2
for t = 1, tasks do r:set("k" .. t, 0) end     -- connections (and a cluster's command info) before the clock
local t0 = async.time()
async.scope(function(s)
  for t = 1, tasks do
    s:spawn(function()
      local key = "k" .. t
      for i = 1, per do
        r:set(key, i)
        if r:get(key) ~= tostring(i) then error("wrong value") end
      end
    end)
  end
end)
local t = async.time() - t0
r:close()
print(("ok t=%.4f ops=%d ops_per_s=%.0f"):format(t, per * tasks * 2, per * tasks * 2 / t))
