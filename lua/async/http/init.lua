-- async.http: the HTTP client (async.http.client) and server
-- (async.http.server) under one name. Each part adds its own fields.
local http = {}

-- The client: request, get, post, put, delete, patch, head, session,
-- download, Response.
for k, v in pairs(require "async.http.client") do http[k] = v end

-- The server: serve, error (HandlerError), take_over; router() makes a router.
for k, v in pairs(require "async.http.server") do http[k] = v end
http.router = require("async.http.router").new

return http
