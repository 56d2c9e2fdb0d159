import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM for tokens at rest. Each value gets a fresh random 96-bit IV; the additional authenticated
 * data binds the ciphertext to its item key and key version, so a ciphertext copied to another user's
 * item, or relabelled with another version, fails to decrypt.
 */

export interface Keyring {
  /** Version new values are sealed with. */
  readonly current: string;
  /** Every version still able to open old values. */
  readonly keys: ReadonlyMap<string, Buffer>;
}

export interface Sealed {
  /** Key version, e.g. `v1`. */
  readonly kv: string;
  /** `base64(iv) . base64(ciphertext) . base64(tag)` */
  readonly ct: string;
}

export class DecryptionError extends Error {
  constructor(cause?: unknown) {
    super('stored value failed authentication', cause === undefined ? undefined : { cause });
    this.name = 'DecryptionError';
  }
}

const aadFor = (itemKey: string, kv: string) => Buffer.from(`${itemKey}|${kv}`, 'utf8');

export function seal(keyring: Keyring, itemKey: string, plaintext: string): Sealed {
  const key = keyring.keys.get(keyring.current);
  if (!key) throw new Error(`current key version ${keyring.current} is missing from the keyring`);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aadFor(itemKey, keyring.current));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return { kv: keyring.current, ct: [iv, ct, tag].map((b) => b.toString('base64')).join('.') };
}

export function open(keyring: Keyring, itemKey: string, sealed: Sealed): string {
  const key = keyring.keys.get(sealed.kv);
  const parts = sealed.ct.split('.');
  if (!key || parts.length !== 3) throw new DecryptionError();
  const [iv, ct, tag] = parts.map((p) => Buffer.from(p, 'base64')) as [Buffer, Buffer, Buffer];
  if (iv.length !== 12 || tag.length !== 16) throw new DecryptionError();
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
    decipher.setAAD(aadFor(itemKey, sealed.kv));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new DecryptionError(err);
  }
}

/**
 * Parses the encryption-keys secret. Shape: `{"current":"v2","keys":{"v1":"<base64 32 bytes>",...}}`;
 * a version may instead be given as `"k_vN": "<generated string of 32+ chars>"`, which is hashed with
 * SHA-256 to 32 bytes (CloudFormation can generate such a string at deploy, but not raw key bytes).
 */
export function parseKeyring(secret: string): Keyring {
  const raw = JSON.parse(secret) as Record<string, unknown>;
  const current = raw['current'];
  if (typeof current !== 'string' || !/^v\d+$/.test(current)) throw new Error('encryption keys secret: "current" must be like "v1"');
  const keys = new Map<string, Buffer>();
  const explicit = (raw['keys'] ?? {}) as Record<string, unknown>;
  for (const [version, value] of Object.entries(explicit)) {
    const buf = typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
    if (!/^v\d+$/.test(version) || buf.length !== 32) throw new Error(`encryption keys secret: keys.${version} must be base64 of 32 bytes`);
    keys.set(version, buf);
  }
  for (const [field, value] of Object.entries(raw)) {
    const m = /^k_(v\d+)$/.exec(field);
    if (!m || keys.has(m[1]!)) continue;
    if (typeof value !== 'string' || value.length < 32) throw new Error(`encryption keys secret: ${field} must be a string of at least 32 characters`);
    keys.set(m[1]!, createHash('sha256').update(value, 'utf8').digest());
  }
  if (!keys.has(current)) throw new Error(`encryption keys secret: no key for current version ${current}`);
  return { current, keys };
}
