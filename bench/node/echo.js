// echo: a TCP echo server with Node's net module, in its usual idiom ('data' events
// written back). bench/echo_run.py reads the "port N" line and drives it.
'use strict';
const net = require('net');

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => socket.destroy());
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2] || 0), backlog: 1024 }, () => {
  console.log(`port ${server.address().port}`);
});
