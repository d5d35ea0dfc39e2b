/**
 * Signed webhooks, as Stripe signs them. The receiver gets a JSON body and the header
 *
 *   Switchyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 * and checks it by recomputing the HMAC over the timestamp, a dot and the raw body, comparing in
 * constant time, and refusing timestamps older than a tolerance (5 minutes), which stops replays.
 * Web Crypto only, so the same code signs on Node and Workers. A delivery is tried up to three times
 * (each with a timeout), again only after a network error, a 429 or a 5xx, with the same signed body
 * (its timestamp stays within the tolerance); the last attempt's outcome is stored with the alert.
 * Which addresses a webhook may reach is the host's `fetch` to decide (hosts/node/webhook-fetch.ts).
 */
import type { AlertDelivery } from "../../ports/monitors.ts";

export const SIGNATURE_HEADER = "Switchyard-Signature";
export const SIGNATURE_TOLERANCE_S = 300;
const DELIVERY_TIMEOUT_MS = 5000;

const encoder = new TextEncoder();

const hmacKey = (secret: string, usage: "sign" | "verify") =>
  crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The `Switchyard-Signature` header for `body` sent at `timestamp` (unix seconds). */
export async function signatureHeader(secret: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), encoder.encode(`${timestamp}.${body}`));
  return `t=${timestamp},v1=${hex(mac)}`;
}

/** Whether `header` signs `body` with `secret` within the tolerance of `nowS` (what a receiver runs). */
export async function verifySignature(secret: string, header: string, body: string, nowS: number, toleranceS = SIGNATURE_TOLERANCE_S): Promise<boolean> {
  const fields = new Map(header.split(",").map((part) => part.trim().split("=", 2) as [string, string]));
  const t = Number(fields.get("t"));
  const v1 = fields.get("v1") ?? "";
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const mac = new Uint8Array(v1.match(/../g)!.map((h) => parseInt(h, 16)));
  return crypto.subtle.verify("HMAC", await hmacKey(secret, "verify"), mac, encoder.encode(`${t}.${body}`));
}

export type WebhookFetch = (url: string, init: RequestInit) => Promise<Response>;

export interface DeliveryOptions {
  fetch?: WebhookFetch;
  nowMs: number;
  /** Waits before the second and third attempts. */
  retryDelaysMs?: readonly number[];
}

const RETRY_DELAYS_MS = [1000, 4000];

/** POSTs `payload` signed with `secret`, retrying what may pass on a retry; the outcome, never a throw. */
export async function deliverWebhook(url: string, secret: string, event: string, payload: unknown, options: DeliveryOptions): Promise<AlertDelivery> {
  const body = JSON.stringify(payload);
  const timestamp = Math.floor(options.nowMs / 1000);
  const headers = { "content-type": "application/json", "user-agent": "Switchyard-Webhook/1", "switchyard-event": event, [SIGNATURE_HEADER]: await signatureHeader(secret, timestamp, body) };
  const attempt = () => postOnce(options.fetch ?? fetch, url, { method: "POST", headers, body, redirect: "manual" }, options.nowMs);
  let delivery = await attempt();
  for (const delay of options.retryDelaysMs ?? RETRY_DELAYS_MS) {
    if (!retryable(delivery)) break;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delivery = await attempt();
  }
  return delivery;
}

async function postOnce(send: WebhookFetch, url: string, init: RequestInit, attemptedAt: number): Promise<AlertDelivery> {
  try {
    const res = await send(url, { ...init, signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
    await res.body?.cancel();
    return res.ok ? { status: "delivered", httpStatus: res.status, attemptedAt } : { status: "failed", httpStatus: res.status, error: `the receiver answered ${res.status}`, attemptedAt };
  } catch (err) {
    return { status: "failed", error: err instanceof Error ? err.message : String(err), attemptedAt };
  }
}

/** A network error (no status), a 429 or a 5xx; a refused address is final (`WebhookAddressError`'s name). */
function retryable(delivery: AlertDelivery): boolean {
  if (delivery.status === "delivered") return false;
  if (delivery.httpStatus === undefined) return !delivery.error?.startsWith(REFUSED_ADDRESS);
  return delivery.httpStatus === 429 || delivery.httpStatus >= 500;
}

/** How a host's fetch words a refused address, so it is not retried. */
export const REFUSED_ADDRESS = "webhook address refused";

/** A random signing secret, `whsec_` and 32 hex bytes. */
export function newWebhookSecret(): string {
  return `whsec_${hex(crypto.getRandomValues(new Uint8Array(32)).buffer)}`;
}
