// bench/pg/node_pg.js URL WORKLOAD: node-postgres (npm "pg") with its Pool (see lasync_pg.lua).
const { Pool } = require("pg");
const [url, workload] = process.argv.slice(2);
const ROWS_SQL = "select g as id, 'name ' || g as name, g * 1.5::float8 as score from generate_series(1, 100000) g";

async function main() {
  const pool = new Pool({ connectionString: url, max: 10 });
  const held = await Promise.all(Array.from({ length: 10 }, () => pool.connect()));
  held.forEach((c) => c.release());
  let dt;
  if (workload === "queries") {
    const worker = async () => {
      let s = 0;
      for (let i = 1; i <= 100; i++) s += (await pool.query("select $1::int as v", [i])).rows[0].v;
      return s;
    };
    const t0 = process.hrtime.bigint();
    const r = await Promise.all(Array.from({ length: 100 }, worker));
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.reduce((a, b) => a + b, 0) !== 100 * 5050) throw new Error("bad sum");
  } else {
    const t0 = process.hrtime.bigint();
    const rows = (await pool.query(ROWS_SQL)).rows;
    let s = 0;
    for (const r of rows) s += r.id;
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (rows.length !== 100000 || s !== 5000050000 || rows[6].name !== "name 7") throw new Error("bad rows");
  }
  await pool.end();
  console.log(`ok secs=${dt.toFixed(4)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
