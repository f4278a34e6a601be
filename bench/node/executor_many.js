// executor_many: 100,000 small jobs posted at once to 2 worker_threads, all
// awaited.
'use strict';
const { fail } = require('./common');
const { Pool } = require('./pool');
const N = 100000;

async function main() {
  const pool = new Pool(2, `() => ({ job: (i) => i * 2 })`);
  await Promise.all([pool.run('job', 0), pool.run('job', 0)]);
  const t0 = performance.now();
  const jobs = [];
  for (let i = 1; i <= N; i++) jobs.push(pool.run('job', i));
  const res = await Promise.all(jobs);
  let sum = 0;
  for (const v of res) sum += v;
  const t = (performance.now() - t0) / 1000;
  if (sum !== N * (N + 1)) fail(`executor_many: sum=${sum}`);
  await pool.close();
  console.log(`ok sum=${sum} rate=${(N / t).toFixed(0)} t=${t.toFixed(4)}`);
}

main();
