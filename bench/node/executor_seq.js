// executor_seq: 20,000 trivial jobs one after another on 2 worker_threads:
// post, await the reply, repeat.
'use strict';
const { fail } = require('./common');
const { Pool } = require('./pool');
const N = 20000;

async function main() {
  const pool = new Pool(2, `() => ({ job: (i) => i + 1 })`);
  await pool.run('job', 0);
  await pool.run('job', 0);
  const t0 = performance.now();
  let sum = 0;
  for (let i = 1; i <= N; i++) sum += await pool.run('job', i);
  const t = (performance.now() - t0) / 1000;
  if (sum !== N * (N + 1) / 2 + N) fail(`executor_seq: sum=${sum}`);
  await pool.close();
  console.log(`ok sum=${sum} rate=${(N / t).toFixed(0)} t=${t.toFixed(4)}`);
}

main();
