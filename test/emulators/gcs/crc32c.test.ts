import { randomBytes } from 'node:crypto';
import { CRC32C } from '@google-cloud/storage';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cFromBase64, crc32cToBase64 } from './crc32c.js';

describe('crc32c', () => {
  it('gives 0xE3069283 for "123456789" (the Castagnoli check value)', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('matches the RFC 3720 (iSCSI) vectors', () => {
    expect(crc32c(Buffer.alloc(32, 0x00))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
  });

  it('is 0 for no bytes', () => {
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('gives the same result fed in pieces as in one go', () => {
    const data = randomBytes(100_003);
    let crc = 0;
    for (let at = 0; at < data.length; at += 7_919)
      crc = crc32c(data.subarray(at, at + 7_919), crc);
    expect(crc).toBe(crc32c(data));
  });

  it('agrees with the Node SDK on random data of odd lengths', () => {
    for (const length of [1, 7, 8, 9, 1_000, 65_537]) {
      const data = randomBytes(length);
      const sdk = new CRC32C();
      sdk.update(data);
      expect(crc32cToBase64(crc32c(data))).toBe(sdk.toString());
    }
  });

  it('encodes as base64 of the 4 big-endian bytes, as GCS does', () => {
    expect(crc32cToBase64(0xe3069283)).toBe('4waSgw==');
    expect(crc32cFromBase64('4waSgw==')).toBe(0xe3069283);
    expect(crc32cFromBase64('AAAA')).toBeUndefined();
  });
});
