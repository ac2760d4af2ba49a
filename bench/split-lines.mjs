// Baseline for bench/ship-records: read a file and split it into lines, doing nothing else.
//   node bench/split-lines.mjs FILE  → prints "<lines> <bytes>"
import { createReadStream } from 'node:fs';

let lines = 0;
let bytes = 0;
let longest = 0;
let current = 0;
for await (const chunk of createReadStream(process.argv[2], { highWaterMark: 1 << 20 })) {
  bytes += chunk.length;
  let start = 0;
  for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
    // The same work a splitter does per line: find it and take a view of it.
    const line = chunk.subarray(start, nl);
    current += line.length;
    longest = Math.max(longest, current);
    current = 0;
    lines++;
    start = nl + 1;
  }
  current += chunk.length - start;
}
if (current > 0) lines++;
console.log(`${lines} ${bytes} ${longest}`);
