// executor_cpu: 8 CPU-bound jobs (a numeric loop) one after another on the
// main thread, then on 2 worker_threads; t is the pool's time.
'use strict';
const { fail } = require('./common');
const { Pool } = require('./pool');
const JOBS = 8, N = 10000000;

function work(n) {
  let s = 0;
  for (let i = 1; i <= n; i++) s = (s * 31 + i) % 1000000007;
  return s;
}

async function main() {
  let t0 = performance.now();
  const want = [];
  for (let j = 1; j <= JOBS; j++) want.push(work(N + j));
  const seq = (performance.now() - t0) / 1000;
  const pool = new Pool(2, `() => ({ work: ${work.toString()} })`);
  await Promise.all([pool.run('work', 100000), pool.run('work', 100000)]);
  t0 = performance.now();
  const jobs = [];
  for (let j = 1; j <= JOBS; j++) jobs.push(pool.run('work', N + j));
  const got = await Promise.all(jobs);
  const t = (performance.now() - t0) / 1000;
  await pool.close();
  for (let j = 0; j < JOBS; j++) if (got[j] !== want[j]) fail(`executor_cpu: job ${j + 1} gave ${got[j]}`);
  console.log(`ok check=${want[JOBS - 1]} seq=${seq.toFixed(4)} speedup=${(seq / t).toFixed(2)} t=${t.toFixed(4)}`);
}

main();
