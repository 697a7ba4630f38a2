// bench/engine: print the comparison table from the JSON lines of bench_engine (Tessera) and
// duck.mjs (DuckDB) processes: medians across processes per query, ratio DuckDB/Tessera
// (> 1: Tessera faster), answers checked equal (MD5 of the canonical text).
// node report.mjs TESSERA.jsonl DUCKDB.jsonl
import { readFileSync } from 'node:fs';

const load = (p) => readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const [tsr, duck] = process.argv.slice(2).map(load);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const f = (x, w = 9, d = 2) => x.toFixed(d).padStart(w);
let ok = true;
console.log(`rows ${tsr[0].rows}, ${tsr.length} Tessera / ${duck.length} DuckDB processes, medians`);
console.log('query   tessera_ms  duckdb_ms   ratio  answer');
for (const q of Object.keys(tsr[0].queries)) {
  const t = median(tsr.map((r) => r.queries[q].ms));
  const d = median(duck.map((r) => r.queries[q].ms));
  const same = tsr.every((r) => r.queries[q].md5 === duck[0].queries[q].md5);
  ok = ok && same;
  console.log(`${q.padEnd(6)} ${f(t, 11, 3)} ${f(d, 10, 3)} ${f(d / t, 7, 1)}x  ${same ? 'same' : 'DIFFERENT'}`);
}
const line = (name, key, src) => median(src.map((r) => r[key]));
const tl = line('reload', 'reload_ms', tsr);
const dl = line('load', 'load_ms', duck);
console.log(`reload   ${f(tl, 11, 1)} ${f(dl, 10, 1)} ${f(dl / tl, 7, 2)}x  (Tessera load script vs DuckDB CSV load)`);
for (const [k, label] of [['open_ms', 'app-file open ms'], ['cached_ms', 'cached repeat ms'],
  ['session_ms', '1 selection + 5 cubes + 5 lists ms'], ['save_ms', 'app-file save ms'],
  ['app_mb', 'app file MB']]) {
  if (tsr[0][k] !== undefined) {
    console.log(`${label.padEnd(36)} ${f(line(k, k, tsr), 11, k === 'cached_ms' ? 4 : 1)}`);
  }
}
console.log(`RSS MB: Tessera loaded ${f(line('rss', 'rss_mb', tsr), 0, 1)}${tsr[0].rss_queried_mb !== undefined ? `, after Q1-Q7 ${f(line('rq', 'rss_queried_mb', tsr), 0, 1)}` : ''} (peak ${f(line('peak', 'peak_rss_mb', tsr), 0, 1)}), DuckDB node process ${f(line('d', 'rss_mb', duck), 0, 1)}`);
if (!ok) {
  console.log('ERROR: answers differ');
  process.exit(1);
}
