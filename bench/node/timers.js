// timers: 100,000 tasks each sleeping a pseudo-random 0..50 ms (the LCG shared by every
// peer); each checks with the monotonic clock that it did not wake before its delay.
'use strict';
const { fail, sleep } = require('./common');
const N = 100000;
let early = 0, maxEarly = 0;

async function sleeper(ms) {
  const t0 = performance.now();
  await sleep(ms);
  const short = ms - (performance.now() - t0);
  if (short > 0) { early++; maxEarly = Math.max(maxEarly, short); }
  return ms;
}

async function main() {
  const t0 = performance.now();
  const tasks = [];
  let x = 42, dsum = 0;
  for (let i = 0; i < N; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;   // low 31 bits, exact
    const ms = x % 51;
    dsum += ms;
    tasks.push(sleeper(ms));
  }
  const got = (await Promise.all(tasks)).reduce((a, b) => a + b, 0);
  const line = `early=${early} max_early_us=${(maxEarly * 1000).toFixed(1)} dsum=${dsum} t=${((performance.now() - t0) / 1000).toFixed(4)}`;
  if (got !== dsum) fail(`timers: lost results: ${line}`);
  console.log(`ok ${line}`);   // early wakes are reported, not failed, for a peer
}

main();
