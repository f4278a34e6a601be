-- bench/lasync/ws_broadcast.lua: every message a client sends goes to every
-- connected client (bench/ws_run.py).
local peers = {}
local srv = async.http.serve{port = 0, limits = {max_connections = 100000}, handler = function(req)
  local w <close> = async.ws.upgrade(req)
  peers[w] = true
  for msg in w:messages() do
    async.ws.broadcast(peers, msg)
  end
  peers[w] = nil
end}
print("port " .. select(2, srv:address()))
io.stdout:flush()
srv.net:serve_forever()
