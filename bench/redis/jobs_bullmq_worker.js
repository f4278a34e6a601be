// bench/redis/jobs_bullmq_worker.js PORT: a BullMQ worker of jobs_bullmq.js's
// queue (concurrency 50, a handler that returns its argument).
const { Worker } = require("bullmq");
let done = 0;
const w = new Worker("bench", async (job) => { done++; return job.data.n; },
                     { connection: { host: "127.0.0.1", port: +process.argv[2] }, concurrency: 50 });
w.waitUntilReady().then(() => console.log("ready"));
process.on("SIGTERM", async () => { await w.close(); console.log(`done=${done}`); process.exit(0); });
