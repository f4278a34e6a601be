// bench/node/ws_broadcast.js: every message a client sends goes to every
// connected client (bench/ws_run.py); the `ws` package (npm install ws).
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () =>
  console.log("port " + wss.address().port));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    for (const c of wss.clients) c.send(data, { binary: isBinary });
  });
});
