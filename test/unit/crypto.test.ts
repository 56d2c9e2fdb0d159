import { createHash, randomBytes } from 'node:crypto';
import { DecryptionError, type Keyring, type Sealed, open, parseKeyring, seal } from '../../lambdas/shared/crypto';
import { type SecretSource, parsedSecret } from '../../lambdas/shared/secrets';

/**
 * AES-256-GCM at rest: what is sealed opens only unchanged, under its own item key and key version, and the
 * keyring secret is parsed without ever echoing key material.
 */

const ITEM = 'USER#6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f|SESSION';
const OTHER_ITEM = 'USER#0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d|SESSION';
const PLAINTEXT = 'eyJhbGciOiJIUzI1NiJ9.a-twilio-access-token-stand-in.signature';

const key = () => randomBytes(32);
const keyring = (current: string, keys: Record<string, Buffer>): Keyring => ({ current, keys: new Map(Object.entries(keys)) });

type Part = 'iv' | 'ciphertext' | 'tag';
const PARTS: readonly Part[] = ['iv', 'ciphertext', 'tag'];

function decode(sealed: Sealed): Record<Part, Buffer> {
  const [iv = '', ciphertext = '', tag = ''] = sealed.ct.split('.');
  return { iv: Buffer.from(iv, 'base64'), ciphertext: Buffer.from(ciphertext, 'base64'), tag: Buffer.from(tag, 'base64') };
}

function encode(kv: string, parts: Record<Part, Buffer>): Sealed {
  return { kv, ct: [parts.iv, parts.ciphertext, parts.tag].map((b) => b.toString('base64')).join('.') };
}

/** Every variant of `sealed` with exactly one bit of `part` flipped. */
function singleBitFlips(sealed: Sealed, part: Part): Sealed[] {
  const parts = decode(sealed);
  const variants: Sealed[] = [];
  for (let byte = 0; byte < parts[part].length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const flipped = Buffer.from(parts[part]);
      flipped[byte]! ^= 1 << bit;
      variants.push(encode(sealed.kv, { ...parts, [part]: flipped }));
    }
  }
  return variants;
}

function openError(ring: Keyring, itemKey: string, sealed: Sealed): unknown {
  try {
    open(ring, itemKey, sealed);
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('seal and open', () => {
  test('opens what it sealed', () => {
    const ring = keyring('v1', { v1: key() });

    expect(open(ring, ITEM, seal(ring, ITEM, PLAINTEXT))).toBe(PLAINTEXT);
  });

  test('round-trips non-ASCII text', () => {
    const ring = keyring('v1', { v1: key() });
    const text = 'grüße 👋 — 電話';

    expect(open(ring, ITEM, seal(ring, ITEM, text))).toBe(text);
  });

  test('labels the sealed value with the current key version', () => {
    const ring = keyring('v3', { v3: key() });

    expect(seal(ring, ITEM, PLAINTEXT).kv).toBe('v3');
  });

  test('uses a 96-bit IV and a 128-bit tag, and does not store the plaintext', () => {
    const ring = keyring('v1', { v1: key() });
    const sealed = seal(ring, ITEM, PLAINTEXT);
    const parts = decode(sealed);

    expect(parts.iv).toHaveLength(12);
    expect(parts.tag).toHaveLength(16);
    expect(sealed.ct).not.toContain(PLAINTEXT);
    expect(parts.ciphertext.toString('utf8')).not.toContain('twilio');
  });

  test.each(PARTS)('rejects every single-bit flip in the %s', (part) => {
    const ring = keyring('v1', { v1: key() });
    const variants = singleBitFlips(seal(ring, ITEM, PLAINTEXT), part);

    const outcomes = variants.map((v) => openError(ring, ITEM, v));

    expect(variants.length).toBeGreaterThanOrEqual(96);
    expect(outcomes.filter((e) => !(e instanceof DecryptionError))).toEqual([]);
  });

  test('rejects a ciphertext moved to another item key', () => {
    const ring = keyring('v1', { v1: key() });
    const sealed = seal(ring, ITEM, PLAINTEXT);

    expect(() => open(ring, OTHER_ITEM, sealed)).toThrow(DecryptionError);
  });

  test('rejects a ciphertext relabelled with another key version, even when both versions hold the same key', () => {
    const shared = key();
    const ring = keyring('v2', { v1: shared, v2: shared });
    const sealed = seal(ring, ITEM, PLAINTEXT);

    expect(() => open(ring, ITEM, { ...sealed, kv: 'v1' })).toThrow(DecryptionError);
  });

  test('rejects a value sealed under a key version the keyring no longer holds', () => {
    const sealed = seal(keyring('v1', { v1: key() }), ITEM, PLAINTEXT);

    expect(() => open(keyring('v2', { v2: key() }), ITEM, sealed)).toThrow(DecryptionError);
  });

  test('rejects a value sealed under another key with the same version label', () => {
    const sealed = seal(keyring('v1', { v1: key() }), ITEM, PLAINTEXT);

    expect(() => open(keyring('v1', { v1: key() }), ITEM, sealed)).toThrow(DecryptionError);
  });

  test.each([
    ['too few segments', (ct: string) => ct.split('.').slice(0, 2).join('.')],
    ['too many segments', (ct: string) => `${ct}.AAAA`],
    ['a truncated tag', (ct: string) => ct.replace(/\.[^.]+$/, `.${Buffer.alloc(12).toString('base64')}`)],
    ['a short IV', (ct: string) => ct.replace(/^[^.]+/, Buffer.alloc(8).toString('base64'))],
    ['an empty string', () => ''],
  ])('rejects a stored value with %s', (_name, mangle) => {
    const ring = keyring('v1', { v1: key() });
    const sealed = seal(ring, ITEM, PLAINTEXT);

    expect(() => open(ring, ITEM, { ...sealed, ct: mangle(sealed.ct) })).toThrow(DecryptionError);
  });

  test('never repeats an IV over 10,000 seals', () => {
    const ring = keyring('v1', { v1: key() });
    const ivs = new Set<string>();

    for (let i = 0; i < 10_000; i++) ivs.add(seal(ring, ITEM, PLAINTEXT).ct.split('.')[0]!);

    expect(ivs.size).toBe(10_000);
  });

  test('fails to seal when the current version is missing from the keyring', () => {
    expect(() => seal(keyring('v2', { v1: key() }), ITEM, PLAINTEXT)).toThrow(/v2/);
  });
});

describe('key rotation', () => {
  const v1 = key();
  const v2 = key();

  test('opens a value sealed under v1 after v2 becomes current', () => {
    const sealed = seal(keyring('v1', { v1 }), ITEM, PLAINTEXT);

    expect(open(keyring('v2', { v1, v2 }), ITEM, sealed)).toBe(PLAINTEXT);
  });

  test('seals new values under v2 once it is current', () => {
    const rotated = keyring('v2', { v1, v2 });

    const sealed = seal(rotated, ITEM, PLAINTEXT);

    expect(sealed.kv).toBe('v2');
    expect(() => open(keyring('v1', { v1 }), ITEM, sealed)).toThrow(DecryptionError);
  });

  test('rotates through the parsed secret: a v1 value opens under the secret that adds v2', () => {
    const k1 = v1.toString('base64');
    const before = parseKeyring(JSON.stringify({ current: 'v1', keys: { v1: k1 } }));
    const after = parseKeyring(JSON.stringify({ current: 'v2', keys: { v1: k1, v2: v2.toString('base64') } }));

    expect(open(after, ITEM, seal(before, ITEM, PLAINTEXT))).toBe(PLAINTEXT);
  });
});

describe('parseKeyring', () => {
  test('accepts keys.vN given as base64 of 32 bytes', () => {
    const k = key();

    const ring = parseKeyring(JSON.stringify({ current: 'v1', keys: { v1: k.toString('base64') } }));

    expect(ring.current).toBe('v1');
    expect(ring.keys.get('v1')).toEqual(k);
  });

  test('accepts k_vN generated strings and derives the key with SHA-256', () => {
    const generated = randomBytes(24).toString('base64url');

    const ring = parseKeyring(JSON.stringify({ current: 'v1', k_v1: generated }));

    expect(ring.keys.get('v1')).toEqual(createHash('sha256').update(generated, 'utf8').digest());
  });

  test('accepts a mix of keys.vN and k_vN versions', () => {
    const ring = parseKeyring(JSON.stringify({ current: 'v2', keys: { v1: key().toString('base64') }, k_v2: randomBytes(24).toString('base64url') }));

    expect([...ring.keys.keys()].sort()).toEqual(['v1', 'v2']);
  });

  test('a keyring parsed from k_vN seals and opens', () => {
    const ring = parseKeyring(JSON.stringify({ current: 'v1', k_v1: randomBytes(24).toString('base64url') }));

    expect(open(ring, ITEM, seal(ring, ITEM, PLAINTEXT))).toBe(PLAINTEXT);
  });

  test.each([
    ['keys.v1 of 16 bytes', () => ({ current: 'v1', keys: { v1: randomBytes(16).toString('base64') } })],
    ['keys.v1 of 31 bytes', () => ({ current: 'v1', keys: { v1: randomBytes(31).toString('base64') } })],
    ['keys.v1 of 33 bytes', () => ({ current: 'v1', keys: { v1: randomBytes(33).toString('base64') } })],
    ['keys.v1 that is not a string', () => ({ current: 'v1', keys: { v1: 12345 } })],
    ['a k_v1 string under 32 characters', () => ({ current: 'v1', k_v1: randomBytes(15).toString('hex').slice(0, 31) })],
    ['a k_v1 that is not a string', () => ({ current: 'v1', k_v1: { nested: randomBytes(32).toString('hex') } })],
  ])('rejects %s', (_name, secret) => {
    expect(() => parseKeyring(JSON.stringify(secret()))).toThrow(/encryption keys secret/);
  });

  test('rejects a secret whose current version has no key', () => {
    const secret = JSON.stringify({ current: 'v2', keys: { v1: key().toString('base64') } });

    expect(() => parseKeyring(secret)).toThrow('encryption keys secret: no key for current version v2');
  });

  test.each([['a missing "current"', undefined], ['a "current" not like vN', 'latest'], ['a numeric "current"', 1]])('rejects %s', (_name, current) => {
    const secret = JSON.stringify({ current, keys: { v1: key().toString('base64') } });

    expect(() => parseKeyring(secret)).toThrow('"current" must be like "v1"');
  });

  test.each([
    ['a short keys.vN', (v: string) => ({ current: 'v1', keys: { v1: v } }), randomBytes(20).toString('base64')],
    ['a short k_vN', (v: string) => ({ current: 'v1', k_v1: v }), randomBytes(10).toString('hex')],
    ['a key for a version other than current', (v: string) => ({ current: 'v2', keys: { v1: v } }), randomBytes(32).toString('base64')],
    ['a misnamed version', (v: string) => ({ current: 'v1', keys: { version1: v } }), randomBytes(32).toString('base64')],
  ])('rejects %s without repeating the key material in the error', (_name, shape, value) => {
    const secret = JSON.stringify(shape(value));

    let message = '';
    try {
      parseKeyring(secret);
    } catch (err) {
      message = `${(err as Error).message} ${String((err as Error).stack)}`;
    }

    expect(message).toMatch(/encryption keys secret/);
    expect(message).not.toContain(value);
  });

  test('rejects a secret that is not JSON without the value reaching the error, once read through parsedSecret', async () => {
    const value = `{"current":"v1","keys":{"v1":"${key().toString('base64')}"`; // truncated JSON
    const source: SecretSource = { get: () => Promise.resolve(value) };

    const err: unknown = await parsedSecret(source, 'keys-secret', parseKeyring)().catch((e: unknown) => e);

    expect(err).toMatchObject({ code: 'unavailable' });
    const chain = [err, (err as Error).cause].map((e) => `${(e as Error).message} ${String((e as Error).stack)}`).join(' ');
    expect(chain).not.toContain(value.slice(30, 60));
  });
});
