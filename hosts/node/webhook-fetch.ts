/**
 * The Node host's fetch for tenants' webhooks. A webhook URL is the tenant's to choose, so unless
 * the operator allows it (SWITCHYARD_WEBHOOK_ALLOW_PRIVATE), the server refuses to POST to any
 * address that is not public: loopback, private, link-local (cloud metadata), carrier-grade NAT,
 * unique-local, multicast and reserved ranges (BlockList checks IPv4-mapped IPv6 against the IPv4 ones). The check runs in the
 * socket's own DNS lookup, on every address the name resolves to, so a name cannot resolve to a public
 * address for the check and a private one for the connection (DNS rebinding). No redirects are followed.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { REFUSED_ADDRESS, type WebhookFetch } from "../../edge/monitoring/webhook.ts";

const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24], ["203.0.113.0", 24],
  ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) NOT_PUBLIC.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8], ["2001:db8::", 32], ["64:ff9b::", 96]] as const) {
  NOT_PUBLIC.addSubnet(net, prefix, "ipv6");
}

/** Whether a literal IPv4 or IPv6 address is on the public internet. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return !NOT_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** dns.lookup that fails when any resolved address is not public. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, "", 0);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused) return callback(Object.assign(new Error(`${REFUSED_ADDRESS}: ${hostname} is ${refused.address}, not a public address`), { code: "EREFUSEDADDRESS" }), "", 0);
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
};

/** The webhook fetch: only public addresses unless `allowPrivate`. */
export function webhookFetch(options: { allowPrivate: boolean }): WebhookFetch {
  if (options.allowPrivate) return (url, init) => fetch(url, init);
  return (url, init) => post(new URL(url), init);
}

function post(url: URL, init: RequestInit): Promise<Response> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) && !isPublicAddress(host)) return Promise.reject(new Error(`${REFUSED_ADDRESS}: ${host} is not a public address`));
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers as Record<string, string>, lookup: publicOnlyLookup, signal: init.signal ?? undefined }, (res: IncomingMessage) =>
      resolve(new Response(res.statusCode === 204 || res.statusCode === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status: res.statusCode ?? 502 })),
    );
    req.on("error", reject);
    req.end(typeof init.body === "string" ? init.body : undefined);
  });
}
