// queue: 1 producer, 4 consumers, a promise-based queue bounded at 100, 500,000 integers.
'use strict';
const { fail } = require('./common');
const N = 500000, CONSUMERS = 4, MAXSIZE = 100;

// Bounded FIFO: put waits while full, get waits while empty; after close, get drains
// what is left and then returns undefined.
class Queue {
  constructor(maxsize) {
    this.items = []; this.head = 0; this.max = maxsize;
    this.getters = []; this.putters = []; this.closed = false;
  }
  get size() { return this.items.length - this.head; }
  async put(v) {
    while (this.size >= this.max && !this.closed) await new Promise((r) => this.putters.push(r));
    if (this.closed) throw new Error('put on a closed queue');
    this.items.push(v);
    if (this.getters.length) this.getters.shift()();
  }
  async get() {
    while (this.size === 0) {
      if (this.closed) return undefined;
      await new Promise((r) => this.getters.push(r));
    }
    const v = this.items[this.head++];
    if (this.head === this.items.length) { this.items.length = 0; this.head = 0; }
    if (this.putters.length) this.putters.shift()();
    return v;
  }
  close() {
    this.closed = true;
    for (const r of this.getters.splice(0)) r();
    for (const r of this.putters.splice(0)) r();
  }
}

let count = 0;

async function producer(q) {
  for (let i = 0; i < N; i++) await q.put(i);
  q.close();
  return 0;
}

async function consumer(q) {
  let total = 0, v;
  while ((v = await q.get()) !== undefined) { total += v; count++; }
  return total;
}

async function main() {
  const t0 = performance.now();
  const q = new Queue(MAXSIZE);
  const tasks = [];
  for (let i = 0; i < CONSUMERS; i++) tasks.push(consumer(q));
  tasks.push(producer(q));
  const res = await Promise.all(tasks);
  const total = res.slice(0, CONSUMERS).reduce((a, b) => a + b, 0);
  if (count !== N || total !== N * (N - 1) / 2) fail(`queue: count=${count} total=${total}`);
  console.log(`ok total=${total} t=${((performance.now() - t0) / 1000).toFixed(4)}`);
}

main();
