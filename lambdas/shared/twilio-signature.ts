import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Twilio's webhook signature (`X-Twilio-Signature`): base64 of an HMAC over the full URL Twilio requested,
 * followed by every POST parameter name and value, names sorted, keyed with the account's auth token.
 * HMAC-SHA1 unless `X-Twilio-Webhooks-Signature-Settings` names `algorithm=HMAC_SHA256`. The same algorithm as
 * the `twilio` SDK's `validateRequest` (the tests check it against the SDK), written out here so the function
 * does not load the SDK for one HMAC.
 */

/** Form parameters in the order received; a name may repeat. */
export type FormParams = readonly (readonly [string, string])[];

/** The string Twilio signs: the URL, then each name followed by its value(s) (a repeated name: distinct values, sorted). */
export function signedData(url: string, params: FormParams): string {
  const byName = new Map<string, string[]>();
  for (const [k, v] of params) byName.set(k, [...(byName.get(k) ?? []), v]);
  let data = url;
  for (const name of [...byName.keys()].sort()) {
    const values = byName.get(name)!;
    for (const v of values.length > 1 ? [...new Set(values)].sort() : values) data += name + v;
  }
  return data;
}

type Algorithm = 'sha1' | 'sha256';

/** The algorithm named by the signature-settings header; undefined when it names one we do not accept. */
export function signatureAlgorithm(settingsHeader: string | undefined): Algorithm | undefined {
  for (const part of (settingsHeader ?? '').split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'algorithm') continue;
    const name = part.slice(eq + 1).trim().toUpperCase();
    if (!name) continue;
    return name === 'HMAC_SHA1' ? 'sha1' : name === 'HMAC_SHA256' ? 'sha256' : undefined;
  }
  return 'sha1';
}

export function twilioSignature(authToken: string, url: string, params: FormParams, algorithm: Algorithm = 'sha1'): string {
  return createHmac(algorithm, authToken).update(signedData(url, params), 'utf8').digest('base64');
}

/**
 * Port spellings Twilio may have signed for one configured URL: as configured, and with the scheme's default
 * port added or removed (Twilio's SDK accepts the same variants). All derived from our own configured URL,
 * never from the request's Host header.
 */
export function urlVariants(url: string): string[] {
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(url);
  if (!m) return [url];
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const defaultPort = scheme.toLowerCase() === 'https' ? '443' : '80';
  // A colon starts the port only after an IPv6 literal's closing bracket.
  const colon = authority.lastIndexOf(':');
  const hasPort = colon > authority.lastIndexOf(']');
  const host = hasPort ? authority.slice(0, colon) : authority;
  const port = hasPort ? authority.slice(colon + 1) : undefined;
  if (port === undefined) return [url, `${scheme}://${host}:${defaultPort}${rest}`];
  if (port === defaultPort) return [url, `${scheme}://${host}${rest}`];
  return [url];
}

/**
 * Whether `signature` is Twilio's signature of this request to `url`. Constant-time comparison; a missing or
 * malformed signature, an unknown algorithm or an empty auth token is never valid.
 */
export function validTwilioSignature(opts: {
  readonly authToken: string;
  readonly url: string;
  readonly params: FormParams;
  readonly signature: string | undefined;
  readonly settingsHeader?: string | undefined;
}): boolean {
  const { authToken, signature } = opts;
  if (!authToken || !signature || !/^[A-Za-z0-9+/]{27,43}=?$/.test(signature)) return false;
  const algorithm = signatureAlgorithm(opts.settingsHeader);
  if (!algorithm) return false;
  const given = Buffer.from(signature, 'base64');
  // Only the canonical spelling (as Twilio and its SDK compare strings): base64 decoding ignores spare bits.
  if (given.toString('base64') !== signature) return false;
  let valid = false;
  for (const url of urlVariants(opts.url)) {
    const expected = createHmac(algorithm, authToken).update(signedData(url, opts.params), 'utf8').digest();
    // Every variant is checked (no early exit), so timing does not reveal which one matched.
    if (expected.length === given.length && timingSafeEqual(expected, given)) valid = true;
  }
  return valid;
}
