// bench/engine: the DuckDB peer. node duck.mjs DIR RUNS — load the Sales model's CSV files
// into DuckDB (2 threads, exact DECIMAL types), answer Q1–Q7 (SALES_MODEL.md §2) RUNS times
// each, and print one JSON object: load ms, per query the median ms and the MD5 of the answer
// in the canonical text form that bench_engine uses (salesq.h), and the process RSS.
import { createHash } from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';

const [dir, runsArg] = process.argv.slice(2);
const runs = Math.max(1, Number(runsArg || 5));

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

// Each query, and how its rows become canonical answer lines.
const money = (v) => String(v); // DECIMAL(…,2) prints with exactly 2 places
const queries = [
  ['Q1', `SELECT c.Region, SUM(s.Quantity * s.UnitPrice) AS Sales
FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
GROUP BY c.Region ORDER BY c.Region`, (r) => `${r[0]},${money(r[1])}`],
  ['Q2', `SELECT p.Category, SUM(s.Quantity * s.UnitPrice) AS Sales
FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
             JOIN Products  p ON p.ProductID  = s.ProductID
WHERE c.Country IN ('Country 03', 'Country 17')
GROUP BY p.Category ORDER BY p.Category`, (r) => `${r[0]},${money(r[1])}`],
  ['Q3', `SELECT k.Year, COUNT(DISTINCT s.CustomerID) AS Customers
FROM Sales s JOIN Calendar k ON k.OrderDate = s.OrderDate
GROUP BY k.Year ORDER BY k.Year`, (r) => `${r[0]},${r[1]}`],
  ['Q4', `SELECT p.ProductID, p.ProductName, SUM(s.Quantity * s.UnitPrice) AS Sales
FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
             JOIN Calendar  k ON k.OrderDate  = s.OrderDate
             JOIN Products  p ON p.ProductID  = s.ProductID
WHERE c.Region = 'Region 2' AND k.Year = 2023
GROUP BY p.ProductID, p.ProductName
ORDER BY Sales DESC, p.ProductID LIMIT 10`, (r) => `${r[0]},${r[1]},${money(r[2])}`],
  ['Q5', `WITH hit AS (
  SELECT DISTINCT c.Country
  FROM Sales s JOIN Products  p ON p.ProductID  = s.ProductID
               JOIN Customers c ON c.CustomerID = s.CustomerID
  WHERE p.Category = 'Category 07')
SELECT v.Country, CASE WHEN h.Country IS NULL THEN 'X' ELSE 'O' END AS State
FROM (SELECT DISTINCT Country FROM Customers) v LEFT JOIN hit h ON h.Country = v.Country
ORDER BY v.Country`, (r) => `${r[0]},${r[1]}`],
  ['Q5b', `WITH hit AS (
  SELECT DISTINCT p.Category
  FROM Sales s JOIN Products p ON p.ProductID = s.ProductID
  WHERE s.CustomerID = 50000)
SELECT v.Category, CASE WHEN h.Category IS NULL THEN 'X' ELSE 'O' END AS State
FROM (SELECT DISTINCT Category FROM Products) v LEFT JOIN hit h ON h.Category = v.Category
ORDER BY v.Category`, (r) => `${r[0]},${r[1]}`],
  ['Q6', `WITH other AS (
  SELECT DISTINCT k.YearMonth
  FROM Sales s JOIN Customers c ON c.CustomerID = s.CustomerID
               JOIN Calendar  k ON k.OrderDate  = s.OrderDate
  WHERE c.Country IN ('Country 03', 'Country 17') AND k.Year = 2022)
SELECT v.YearMonth,
       CASE WHEN v.YearMonth IN ('2022-03', '2022-04')
            THEN CASE WHEN o.YearMonth IS NULL THEN 'XS' ELSE 'S' END
            WHEN o.YearMonth IS NOT NULL THEN 'A' ELSE 'X' END AS State
FROM (SELECT DISTINCT YearMonth FROM Calendar) v LEFT JOIN other o ON o.YearMonth = v.YearMonth
ORDER BY v.YearMonth`, (r) => `${r[0]},${r[1]}`],
  ['Q7', `SELECT k.YearMonth, p.Category, SUM(s.Quantity * s.UnitPrice) AS Sales
FROM Sales s JOIN Calendar k ON k.OrderDate = s.OrderDate
             JOIN Products p ON p.ProductID = s.ProductID
GROUP BY k.YearMonth, p.Category ORDER BY k.YearMonth, p.Category`,
  (r) => `${r[0]},${r[1]},${money(r[2])}`],
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const now = () => Number(process.hrtime.bigint()) / 1e6;

const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
const con = await instance.connect();
let t0 = now();
for (const sql of loads) await con.run(sql);
const loadMs = now() - t0;
const out = { load_ms: Number(loadMs.toFixed(1)), queries: {} };
for (const [name, sql, line] of queries) {
  const reader = await con.runAndReadAll(sql);
  const text = reader.getRows().map((r) => line(r.map((v) => String(v)))).join('\n');
  const md5 = createHash('md5').update(text).digest('hex');
  const ms = [];
  for (let i = 0; i < runs; i++) {
    t0 = now();
    const r = await con.runAndReadAll(sql);
    r.getRows();
    ms.push(now() - t0);
  }
  out.queries[name] = { ms: Number(median(ms).toFixed(3)), md5 };
}
out.rss_mb = Number((process.memoryUsage().rss / 1048576).toFixed(1));
console.log(JSON.stringify(out));
