-- bench/redis/cluster_ops.lua SEEDS [TASKS] [N]: ops.lua on a Redis Cluster
-- client (SEEDS = "host:port,host:port"): N commands (SET then GET,
-- alternating) from TASKS tasks, each on its own key, so the keys spread
-- over the masters; one pipelined connection per master.
local seeds, tasks, n = arg[1], tonumber(arg[2] or "100"), tonumber(arg[3] or "100000")
local list = {}
for s in seeds:gmatch("[^,]+") do list[#list + 1] = s end
local r <close> = async.redis.connect{cluster = list}
local per = n // tasks // 2
for t = 1, tasks do r:set("k" .. t, 0) end     -- command info and every node, before the clock
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
print(("ok t=%.4f ops=%d ops_per_s=%.0f"):format(t, per * tasks * 2, per * tasks * 2 / t))
