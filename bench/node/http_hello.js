// bench/node/http_hello.js: the keep-alive hello-world for bench/http_run.py.
const http = require("http");
const srv = http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain; charset=utf-8"});
  res.end("hello world\n");
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => console.log("port " + srv.address().port));
