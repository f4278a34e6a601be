// A minimal worker_threads pool for the executor workloads: W workers, each
// running the functions of `source` by name; run(name, arg) posts a job to
// the next worker in turn and returns a promise of its result. Each worker
// answers its jobs in order, so a FIFO of resolvers per worker matches them.
'use strict';
const { Worker } = require('worker_threads');

class Pool {
  constructor(workers, source) {
    const code = `const { parentPort } = require('worker_threads');
      const fns = (${source})();
      parentPort.on('message', (m) => parentPort.postMessage(fns[m.fn](m.arg)));`;
    this.workers = [];
    this.next = 0;
    for (let i = 0; i < workers; i++) {
      const w = new Worker(code, { eval: true });
      const pending = [];
      let head = 0;
      w.on('message', (v) => {
        const r = pending[head++];
        if (head === pending.length) { pending.length = 0; head = 0; }
        r(v);
      });
      this.workers.push({ w, pending });
    }
  }
  run(fn, arg) {
    const slot = this.workers[this.next];
    this.next = (this.next + 1) % this.workers.length;
    return new Promise((resolve) => {
      slot.pending.push(resolve);
      slot.w.postMessage({ fn, arg });
    });
  }
  close() { return Promise.all(this.workers.map((s) => s.w.terminate())); }
}

module.exports = { Pool };
