import { randomBytes } from 'node:crypto';
import { type Keyring, parseKeyring } from '../../lambdas/shared/crypto';
import type { TwilioCredentials } from '../../lambdas/shared/twilio';

/** Twilio credentials shaped like real ones, generated per test run (an auth token included, for callbacks). */
export function testTwilioCredentials(): TwilioCredentials & { readonly authToken: string } {
  return {
    accountSid: `AC${randomBytes(16).toString('hex')}`,
    apiKeySid: `SK${randomBytes(16).toString('hex')}`,
    apiKeySecret: randomBytes(16).toString('hex'),
    twimlAppSid: `AP${randomBytes(16).toString('hex')}`,
    callerId: '+15005550006',
    authToken: randomBytes(16).toString('hex'),
  };
}

/** A keyring with one fresh AES-256 key, version v1. */
export function testKeyring(): Keyring {
  return parseKeyring(JSON.stringify({ current: 'v1', keys: { v1: randomBytes(32).toString('base64') } }));
}
