// bench/redis/ops_ioredis.js TARGET [TASKS] [N]: the same as ops.lua with
// ioredis. TARGET is a port on 127.0.0.1 (one connection; it pipelines
// commands issued together) or "host:port,host:port,..." for
// Redis.Cluster (a connection per master). AUTOPIPELINE=1 turns on
// enableAutoPipelining (batches per connection).
const Redis = require("ioredis");
const target = process.argv[2], tasks = +(process.argv[3] || 100), n = +(process.argv[4] || 100000);
const auto = { enableAutoPipelining: process.env.AUTOPIPELINE === "1" };
(async () => {
  const r = /[:,]/.test(target)
    ? new Redis.Cluster(target.split(",").map((s) => { const [host, port] = s.split(":"); return { host, port: +port }; }), auto)
    : new Redis({ host: "127.0.0.1", port: +target, ...auto });
  for (let t = 1; t <= tasks; t++) await r.set("k" + t, 0);  // connections before the clock
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
