// spawn: 200,000 tasks that each yield once (setImmediate) and return i; gather all.
'use strict';
const { fail } = require('./common');
const N = 200000;

async function task(i) {
  await new Promise((resolve) => setImmediate(resolve));
  return i;
}

async function main() {
  const t0 = performance.now();
  const tasks = [];
  for (let i = 0; i < N; i++) tasks.push(task(i));
  const res = await Promise.all(tasks);
  const sum = res.reduce((a, b) => a + b, 0);
  if (res.length !== N || sum !== N * (N - 1) / 2) fail(`spawn: n=${res.length} sum=${sum}`);
  console.log(`ok sum=${sum} t=${((performance.now() - t0) / 1000).toFixed(4)}`);
}

main();
