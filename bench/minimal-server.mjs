// The smallest Node server that streams a file: bench/archived-read.sh's second baseline.
// `node bench/minimal-server.mjs FILE` prints its URL, then serves FILE at every path.
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';

const file = process.argv[2];
const server = createServer((_req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': statSync(file).size,
  });
  pipeline(createReadStream(file), res, () => {});
});
server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}/`);
});
