import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { putLogEventsBody } from '../../../packages/core/src/stores/cloudwatch/put-body.js';

describe('the PutLogEvents body tasklog writes', () => {
  it('parses to the request the SDK would send, for any messages', () => {
    const event = fc.record({
      timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
      message: fc.string({ unit: 'grapheme', maxLength: 200 }),
    });
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.array(event, { maxLength: 30 }), (g, s, events) => {
        const body = putLogEventsBody(g, s, events);
        expect(JSON.parse(body.toString('utf8'))).toEqual({
          logGroupName: g,
          logStreamName: s,
          logEvents: events,
        });
      }),
    );
  });

  it('escapes quotes, backslashes and control characters, and keeps UTF-8 as it is', () => {
    const message = 'a "quoted" \\ path\ttab\u0001 héllo 🎉';
    const body = putLogEventsBody('g', 's', [{ timestamp: 1, message }]);
    expect(body.toString('utf8')).toBe(
      `{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":1,"message":${JSON.stringify(message)}}]}`,
    );
    expect(body.includes(Buffer.from('héllo 🎉'))).toBe(true);
  });

  it('writes an empty list for no events', () => {
    expect(JSON.parse(putLogEventsBody('g', 's', []).toString())).toEqual({
      logGroupName: 'g',
      logStreamName: 's',
      logEvents: [],
    });
  });
});
