-- echo: a TCP echo server, as one would write it with async.net: a task per
-- connection reads what has arrived and writes it back. bench/echo_run.py
-- starts it, reads the "port N" line and drives it with bench/build/echo_load.
local async = require "async"

local srv = async.net.listen("127.0.0.1", tonumber(arg[1]) or 0, function(conn)
  while true do
    local data = conn:read()
    if data == nil then return end
    conn:write(data)
  end
end, {backlog = 1024})
print(("port %d"):format(select(2, srv:address())))
io.stdout:flush()
srv:serve_forever()
