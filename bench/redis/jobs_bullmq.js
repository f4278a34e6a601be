// bench/redis/jobs_bullmq.js PORT [N] [WORKERS]: the same as jobs.lua with
// BullMQ: WORKERS worker processes (jobs_bullmq_worker.js, concurrency 50)
// started first; the clock runs from the first add until every job is done.
const { Queue } = require("bullmq");
const { spawn } = require("child_process");
const readline = require("readline");
const port = +process.argv[2], n = +(process.argv[3] || 10000), nw = +(process.argv[4] || 2);
const connection = { host: "127.0.0.1", port };
(async () => {
  const q = new Queue("bench", { connection });
  await q.obliterate({ force: true });
  const procs = [];
  for (let i = 0; i < nw; i++) {
    const p = spawn(process.execPath, [__dirname + "/jobs_bullmq_worker.js", String(port)],
                    { stdio: ["ignore", "pipe", "inherit"] });
    const rl = readline.createInterface({ input: p.stdout });
    const lines = rl[Symbol.asyncIterator]();
    if ((await lines.next()).value !== "ready") throw new Error("worker did not start");
    procs.push({ p, lines });
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 100 }, async (_, k) => {
    for (let i = k + 1; i <= n; i += 100) await q.add("echo", { n: i }, { removeOnComplete: true });
  }));
  const tpush = Number(process.hrtime.bigint() - t0) / 1e9;
  for (;;) {
    const c = await q.getJobCounts("waiting", "active", "delayed", "prioritized");
    if (c.waiting + c.active + c.delayed + c.prioritized === 0) break;
    await new Promise((res) => setTimeout(res, 5));
  }
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  let done = 0;
  for (const { p, lines } of procs) {
    p.kill("SIGTERM");
    const line = (await lines.next()).value;
    done += +line.match(/done=(\d+)/)[1];
  }
  if (done !== n) { console.error(`done ${done} of ${n}`); process.exit(1); }
  await q.obliterate({ force: true });
  await q.close();
  console.log(`ok t=${t.toFixed(4)} push_s=${tpush.toFixed(4)} jobs_per_s=${Math.round(n / t)}`);
})();
