// A log for bench/archived-read and bench/ship-s3: 1 MiB of lines of every length up to 160
// bytes, with multi-byte characters, repeated SIZE_MIB times.
//   node bench/repeated-log.mjs SIZE_MIB FILE
import fs from 'node:fs';

const mib = Number(process.argv[2]);
let block = '';
for (let i = 0; block.length < 1 << 20; i++)
  block += `[2026-01-01T00:00:${String(i % 60).padStart(2, '0')}] INFO line ${i} héllo wörld 日本語 ${'x'.repeat(i % 120)}\n`;
const buf = Buffer.from(block).subarray(0, 1 << 20);
const fd = fs.openSync(process.argv[3], 'w');
for (let i = 0; i < mib; i++) fs.writeSync(fd, buf);
fs.closeSync(fd);
