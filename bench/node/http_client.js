// bench/node/http_client.js URL N CONC: N GETs of URL, CONC at a time,
// with Node's fetch (undici); a CA goes in NODE_EXTRA_CA_CERTS. Prints
// "ok bytes=...".
const [url, n, conc] = [process.argv[2], +process.argv[3], +process.argv[4]];
let left = n, bytes = 0;
async function worker() {
  while (left > 0) {
    left--;
    const r = await fetch(url);
    if (r.status !== 200) throw new Error("status " + r.status);
    bytes += (await r.arrayBuffer()).byteLength;
  }
}
Promise.all(Array.from({length: conc}, worker)).then(() => console.log("ok bytes=" + bytes));
