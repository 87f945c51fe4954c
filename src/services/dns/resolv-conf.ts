/**
 * The host's resolver configuration, resolv.conf(5): where the DNS proxy
 * sends guests' queries by default. Loopback stubs (systemd-resolved's
 * 127.0.0.53, a local dnsmasq) are kept: they are the host's resolver, and the
 * proxy runs on the host, so it can reach them.
 */

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

/** Where resolv.conf lives. */
export const RESOLV_CONF_PATH = '/etc/resolv.conf';
/** The DNS port (RFC 1035 §4.2). */
export const DNS_PORT = 53;
/** resolv.conf(5): "Up to MAXNS (currently 3) name servers may be listed"; we keep a few more. */
export const MAX_NAMESERVERS = 8;

/** An upstream DNS server. */
export interface DnsUpstream {
  host: string;
  port: number;
}

export interface ResolvConf {
  /** `nameserver` lines, in order, as upstreams on port 53. */
  nameservers: DnsUpstream[];
  /** The last `search` line (or `domain` line), as resolv.conf(5) says the last one wins. */
  search: string[];
}

/**
 * Reads the `nameserver`, `search` and `domain` lines of resolv.conf text.
 * Comments (`#`, `;`), unknown keywords and addresses that are not IP
 * literals are skipped; it never throws.
 */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: DnsUpstream[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, ...values] = line.split(/\s+/);
    if (keyword === 'nameserver' && values.length > 0 && nameservers.length < MAX_NAMESERVERS) {
      const host = values[0]!;
      // A link-local IPv6 server may carry its zone: fe80::1%eth0.
      if (isIP(host.replace(/%[\w.-]+$/, '')) !== 0) nameservers.push({ host, port: DNS_PORT });
    } else if ((keyword === 'search' || keyword === 'domain') && values.length > 0) {
      search = values.map((name) => name.replace(/\.$/, '')).filter((name) => name !== '');
    }
  }
  return { nameservers, search };
}

/** Reads and parses a resolv.conf; a missing or unreadable file is an empty configuration. */
export function readResolvConf(path = RESOLV_CONF_PATH): ResolvConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { nameservers: [], search: [] };
  }
  return parseResolvConf(text);
}
