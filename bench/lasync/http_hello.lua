-- bench/lasync/http_hello.lua: the keep-alive hello-world for bench/http_run.py.
local srv = async.http.serve{port = 0, handler = function() return 200, "hello world\n" end,
                             limits = {max_connections = 100000}}
print("port " .. select(2, srv:address()))
io.stdout:flush()
srv.net:serve_forever()
