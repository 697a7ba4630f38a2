// smartmongo (MongoDB-wire test server) for Tessera's tests: starts CongoServer from npm
// @push.rocks/smartmongo in memory on a free loopback port and writes its connection string
// (mongodb://127.0.0.1:PORT) to the file given as the first argument (written to a temp name
// and renamed, so a reader never sees a partial line). SIGTERM/SIGINT stop it and exit 0.
// It is NOT MongoDB: no unique index enforcement, no transaction rollback, no change streams.
import { rename, writeFile } from 'node:fs/promises';
// The congodb entry point alone: the package index also loads smartdata and mongodb-memory-server.
import { CongoServer } from '@push.rocks/smartmongo/dist_ts/congodb/index.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node server.mjs URI_FILE');
  process.exit(2);
}

// Port 0: the kernel picks a free port; CongoServer keeps its net.Server in `server`.
const server = new CongoServer({ port: 0, host: '127.0.0.1', storage: 'memory' });
await server.start();
const port = server.server.address().port;
const uri = `mongodb://127.0.0.1:${port}`;
await writeFile(`${out}.tmp`, `${uri}\n`);
await rename(`${out}.tmp`, out);
console.error(`smartmongo (MongoDB-wire test server) listening on ${uri}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
