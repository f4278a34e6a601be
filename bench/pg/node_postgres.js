// bench/pg/node_postgres.js URL WORKLOAD: Postgres.js (npm "postgres"), max 10 (see lasync_pg.lua).
const postgres = require("postgres");
const [url, workload] = process.argv.slice(2);

async function main() {
  const sql = postgres(url, { max: 10 });
  await Promise.all(Array.from({ length: 10 }, () => sql`select 1`));
  let dt;
  if (workload === "queries") {
    const worker = async () => {
      let s = 0;
      for (let i = 1; i <= 100; i++) s += (await sql`select ${i}::int as v`)[0].v;
      return s;
    };
    const t0 = process.hrtime.bigint();
    const r = await Promise.all(Array.from({ length: 100 }, worker));
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.reduce((a, b) => a + b, 0) !== 100 * 5050) throw new Error("bad sum");
  } else {
    const t0 = process.hrtime.bigint();
    const rows = await sql`select g as id, 'name ' || g as name, g * 1.5::float8 as score from generate_series(1, 100000) g`;
    let s = 0;
    for (const r of rows) s += r.id;
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (rows.length !== 100000 || s !== 5000050000 || rows[6].name !== "name 7") throw new Error("bad rows");
  }
  await sql.end();
  console.log(`ok secs=${dt.toFixed(4)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
