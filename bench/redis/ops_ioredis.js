// bench/redis/ops_ioredis.js PORT [TASKS] [N]: the same as ops.lua with
// ioredis (one connection; it pipelines commands issued together).
const Redis = require("ioredis");
const port = +process.argv[2], tasks = +(process.argv[3] || 100), n = +(process.argv[4] || 100000);
(async () => {
  const r = new Redis({ host: "127.0.0.1", port, enableAutoPipelining: process.env.AUTOPIPELINE === "1" });
  await r.ping();
  const per = Math.floor(n / tasks / 2);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: tasks }, async (_, t) => {
    const key = "k" + (t + 1);
    for (let i = 1; i <= per; i++) {
      await r.set(key, i);
      if ((await r.get(key)) !== String(i)) { console.error("wrong value"); process.exit(1); }
    }
  }));
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`ok t=${t.toFixed(4)} ops=${per * tasks * 2} ops_per_s=${Math.round(per * tasks * 2 / t)}`);
  r.disconnect();
})();
