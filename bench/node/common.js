// Shared by the Node.js peers.
'use strict';
const fs = require('fs');

exports.fail = (msg) => { console.error(msg); process.exit(1); };

exports.statusKb = (key) => {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${key}:\\s*(\\d+)`, 'm'));
  return Number(m[1]);
};

exports.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
