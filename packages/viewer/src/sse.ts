/**
 * A Server-Sent Events parser for a `fetch()` body: EventSource cannot send an `Authorization`
 * header, so the page reads the stream itself (https://html.spec.whatwg.org/#event-stream-interpretation).
 */

export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}

export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  /** The server's `retry:` in ms, when it sent one. */
  retry: number | undefined;

  /** Feeds decoded text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.#buffer += text;
    const out: SseEvent[] = [];
    let nl = this.#buffer.search(/\r\n|\r|\n/);
    while (nl !== -1) {
      // A lone `\r` at the end may be the first half of `\r\n`: wait for more.
      if (this.#buffer[nl] === '\r' && nl === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, nl);
      const eol = this.#buffer.startsWith('\r\n', nl) ? 2 : 1;
      this.#buffer = this.#buffer.slice(nl + eol);
      const ev = this.#line(line);
      if (ev) out.push(ev);
      nl = this.#buffer.search(/\r\n|\r|\n/);
    }
    return out;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return undefined;
      }
      const ev = { event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id };
      this.#event = '';
      this.#data = [];
      return ev;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    return undefined;
  }
}
