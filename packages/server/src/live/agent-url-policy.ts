import { type LookupAddress, lookup } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ForbiddenError, InvalidInputError } from '@tasklog/core';

/**
 * Which agent URLs the proxy may connect to. A catalog row's `agent_url` is written by whatever
 * runs on a worker, so it is checked, never trusted: http(s) only, no credentials in it, never
 * a link-local or cloud-metadata address (169.254.169.254, fd00:ec2::254, fe80::/10 …), and,
 * when `agent.allowed_urls` lists origins or CIDRs, one of those.
 *
 * Addresses are checked when the connection is made (the `lookup` hook of the HTTP request), so
 * a host name that resolves to a forbidden address — now or after a DNS change — is refused.
 */
export class AgentUrlPolicy {
  readonly #origins: RegExp[] = [];
  readonly #cidrs = new BlockList();
  readonly #hasCidrs: boolean;
  static readonly #never = (() => {
    const list = new BlockList();
    list.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, incl. every cloud's metadata server
    list.addSubnet('0.0.0.0', 8, 'ipv4');
    list.addSubnet('fe80::', 10, 'ipv6');
    list.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6
    list.addSubnet('::ffff:169.254.0.0', 112, 'ipv6');
    return list;
  })();

  /** `allowed`: origins (`https://*.workers.internal:8795`, `*` for one host label) or CIDRs. */
  constructor(allowed: readonly string[] = []) {
    let cidrs = false;
    for (const entry of allowed.map((e) => e.trim()).filter(Boolean)) {
      const cidr = /^([0-9a-f:.]+)\/(\d{1,3})$/i.exec(entry);
      if (cidr && isIP(cidr[1]!)) {
        this.#cidrs.addSubnet(cidr[1]!, Number(cidr[2]), isIP(cidr[1]!) === 6 ? 'ipv6' : 'ipv4');
        cidrs = true;
      } else {
        this.#origins.push(originPattern(entry));
      }
    }
    this.#hasCidrs = cidrs;
  }

  /** Whether any allow-list is configured (else every address but the forbidden ones). */
  get restricted(): boolean {
    return this.#origins.length > 0 || this.#hasCidrs;
  }

  /**
   * Checks the URL itself; throws ForbiddenError. When it passes only on a CIDR (or there is no
   * list), the address is checked again at connect time by `lookup`.
   */
  check(agentUrl: string): URL {
    let url: URL;
    try {
      url = new URL(agentUrl);
    } catch (cause) {
      throw new ForbiddenError('the agent URL in the catalog is not a URL', { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ForbiddenError(`agent URLs must be http or https, not ${url.protocol}`);
    }
    if (url.username || url.password) throw new ForbiddenError('agent URLs carry no credentials');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (/^metadata(\.google\.internal)?\.?$/i.test(host)) {
      throw new ForbiddenError('agent URLs never name a metadata server');
    }
    const byOrigin = this.#origins.some((re) => re.test(url.origin));
    if (isIP(host)) this.#checkAddress(host, byOrigin);
    if (byOrigin) return url;
    if (this.restricted && !this.#hasCidrs) {
      throw new ForbiddenError(`${url.origin} is not in agent.allowed_urls`);
    }
    return url;
  }

  /** A `lookup` for http.request that refuses forbidden (or, with CIDRs, unlisted) addresses. */
  lookup(url: URL): typeof lookup {
    const byOrigin = this.#origins.some((re) => re.test(url.origin));
    return ((hostname: string, options: object, callback: LookupCallback) => {
      lookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(err, '', 4);
        try {
          for (const a of addresses) this.#checkAddress(a.address, byOrigin);
        } catch (refused) {
          return callback(refused as NodeJS.ErrnoException, '', 4);
        }
        if ((options as { all?: boolean }).all) {
          return (callback as unknown as LookupAllCallback)(null, addresses);
        }
        callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    }) as unknown as typeof lookup;
  }

  #checkAddress(address: string, byOrigin = false): void {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (AgentUrlPolicy.#never.check(address, family)) {
      throw new ForbiddenError(
        `agent URLs never reach a link-local or metadata address (${address})`,
      );
    }
    if (this.#hasCidrs && !byOrigin && !this.#cidrs.check(address, family)) {
      throw new ForbiddenError(`${address} is not in agent.allowed_urls`);
    }
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;
type LookupAllCallback = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/** `https://*.workers.internal:8795` → an anchored expression over URL origins. */
function originPattern(entry: string): RegExp {
  let origin: string;
  try {
    origin = new URL(entry.replace(/\*/g, 'wildcard-label')).origin.replace(/wildcard-label/g, '*');
  } catch {
    throw new InvalidInputError(`agent.allowed_urls: ${entry} is neither an origin nor a CIDR`);
  }
  const body = origin
    .split('*')
    .map((s) => s.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
    .join('[^.:/]+');
  return new RegExp(`^${body}$`, 'i');
}
