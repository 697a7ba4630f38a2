// bench/qix: the DuckDB peer of qix.js. node duck.mjs DIR SESSIONS ITERATIONS — load the Sales
// CSVs (2 threads, exact DECIMALs, as bench/engine/node/duck.mjs), then SESSIONS connections at
// once, each running ITERATIONS "round trips": the same 4 objects' answers for one selected
// Country as SQL (Sales by Region and by Category for that country, the Country list's
// possible values, the YearMonth states under the selection). Prints one JSON line like qix.js.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const req = createRequire(path.join(here, '../engine/node/package.json'));
const { DuckDBInstance } = await import(pathToFileURL(req.resolve('@duckdb/node-api')).href);

const [dir, sessionsArg, itersArg] = process.argv.slice(2);
const sessions = Number(sessionsArg || 1);
const iters = Number(itersArg || 50);

const csv = (name, cols) =>
  `read_csv('${dir}/${name}.csv', header = true, delim = ',', quote = '"', columns = {${cols}})`;
const loads = [
  `CREATE TABLE Customers AS SELECT * FROM ${csv('Customers',
    "'CustomerID': 'INTEGER', 'CustomerName': 'VARCHAR', 'Country': 'VARCHAR', 'Region': 'VARCHAR', 'Segment': 'VARCHAR'")}`,
  `CREATE TABLE Products AS SELECT * FROM ${csv('Products',
    "'ProductID': 'INTEGER', 'ProductName': 'VARCHAR', 'Category': 'VARCHAR', 'SubCategory': 'VARCHAR', 'ListPrice': 'DECIMAL(10,2)'")}`,
  `CREATE TABLE Calendar AS SELECT * FROM ${csv('Calendar',
    "'OrderDate': 'DATE', 'Year': 'INTEGER', 'Quarter': 'VARCHAR', 'Month': 'INTEGER', 'YearMonth': 'VARCHAR'")}`,
  `CREATE TABLE Sales AS SELECT * FROM ${csv('Sales',
    "'OrderID': 'INTEGER', 'OrderDate': 'DATE', 'CustomerID': 'INTEGER', 'ProductID': 'INTEGER', 'Quantity': 'INTEGER', 'UnitPrice': 'DECIMAL(10,2)', 'Discount': 'DECIMAL(4,2)'")}`,
];
const trip = (c) => [
  `SELECT c.Region, SUM(s.Quantity * s.UnitPrice) FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
   WHERE c.Country = '${c}' GROUP BY c.Region ORDER BY c.Region`,
  `SELECT p.Category, SUM(s.Quantity * s.UnitPrice) FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
   JOIN Products p ON p.ProductID = s.ProductID WHERE c.Country = '${c}' GROUP BY p.Category ORDER BY p.Category`,
  `SELECT DISTINCT c.Country FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID ORDER BY 1`,
  `WITH hit AS (SELECT DISTINCT k.YearMonth FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
     JOIN Calendar k ON k.OrderDate = s.OrderDate WHERE c.Country = '${c}')
   SELECT v.YearMonth, h.YearMonth IS NOT NULL FROM (SELECT DISTINCT YearMonth FROM Calendar) v
   LEFT JOIN hit h ON h.YearMonth = v.YearMonth ORDER BY 1`,
];

const inst = await DuckDBInstance.create(':memory:', { threads: '2' });
const con0 = await inst.connect();
for (const q of loads) await con0.run(q);
const cons = [];
for (let i = 0; i < sessions; i++) cons.push(await inst.connect());

async function roundTrip(con, k) {
  const t0 = process.hrtime.bigint();
  for (const q of trip(`Country ${String(k % 50).padStart(2, '0')}`)) await con.runAndReadAll(q);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
const pct = (a, p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];

for (let w = 0; w < 3; w++) await Promise.all(cons.map((c, i) => roundTrip(c, i + w)));
const samples = [];
const t0 = Date.now();
await Promise.all(cons.map(async (c, i) => {
  for (let k = 0; k < iters; k++) samples.push(await roundTrip(c, i * 7 + k));
}));
const wall = Date.now() - t0;
samples.sort((a, b) => a - b);
const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
console.log(JSON.stringify({ sessions, samples: samples.length, p50: pct(samples, 50),
  p99: pct(samples, 99), mean, wall }));
