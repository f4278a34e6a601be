// bench/redis/cluster_ops_ioredis.js SEEDS [TASKS] [N]: ops.lua (given the seeds) with
// ioredis's Redis.Cluster (a connection per master; AUTOPIPELINE=1 turns on
// enableAutoPipelining, which batches per node).
const Redis = require("ioredis");
const seeds = process.argv[2].split(",").map((s) => { const [host, port] = s.split(":"); return { host, port: +port }; });
const tasks = +(process.argv[3] || 100), n = +(process.argv[4] || 100000);
(async () => {
  const r = new Redis.Cluster(seeds, { enableAutoPipelining: process.env.AUTOPIPELINE === "1" });
  for (let t = 1; t <= tasks; t++) await r.set("k" + t, 0);
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
