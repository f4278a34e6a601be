-- async.http: the HTTP client (async.http.client) and server
-- (async.http.server) under one name. Each part adds its own fields.
local http = {}

-- The client: request, get, post, put, delete, patch, head, session,
-- download, Response.
for k, v in pairs(require "async.http.client") do http[k] = v end

-- The server: serve, error (HandlerError), take_over; router() makes a router.
for k, v in pairs(require "async.http.server") do http[k] = v end
http.router = require("async.http.router").new

-- http.curl_version, the libcurl in use, loads libcurl when read.
return setmetatable(http, {__index = function(_, k)
  if k == "curl_version" then return require("async.core.http").curl_version end
end})
