// memory: 100,000 tasks all parked in sleep(1 s); resident memory per parked task.
// Run with --expose-gc so garbage is collected before each measurement.
'use strict';
const { fail, sleep, statusKb } = require('./common');
const N = 100000;
const gc = globalThis.gc || (() => {});
let parked = 0, woke = 0;

async function sleeper() {
  parked++;
  await sleep(1000);
  woke++;
}

async function main() {
  gc();
  const base = statusKb('VmRSS');
  const tasks = [];
  for (let i = 0; i < N; i++) tasks.push(sleeper());
  while (parked < N) await new Promise((resolve) => setImmediate(resolve));
  gc();
  const rss = statusKb('VmRSS'), hwm = statusKb('VmHWM');
  if (woke) fail(`memory: ${woke} tasks woke before all were parked`);
  await Promise.all(tasks);
  if (woke !== N) fail(`memory: ${woke} of ${N} woke`);
  console.log(`ok base_kb=${base} rss_kb=${rss} hwm_kb=${hwm} bytes_per_task=${((rss - base) * 1024 / N).toFixed(0)}`);
}

main();
