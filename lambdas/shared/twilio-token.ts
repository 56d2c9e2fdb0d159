import { createHmac } from 'node:crypto';
import type { TwilioCredentials } from './twilio';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/**
 * Mints a Twilio Voice Access Token: an HS256 JWT signed with the API key secret, with Twilio's `cty`
 * header, a `jti` of key SID and issue time, and a VoiceGrant for the TwiML App with incoming calls off.
 * The same token the SDK's AccessToken builds (a test compares them claim by claim and checks it verifies),
 * without loading its JWT library into the token function's cold start.
 */
export function mintAccessToken(creds: TwilioCredentials, identity: string, ttlSeconds: number, now = Date.now()): string {
  const iat = Math.floor(now / 1000);
  const voice = creds.twimlAppSid ? { outgoing: { application_sid: creds.twimlAppSid } } : {};
  const header = { alg: 'HS256', typ: 'JWT', cty: 'twilio-fpa;v=1' };
  const payload = { jti: `${creds.apiKeySid}-${iat}`, grants: { identity, voice }, iat, exp: iat + Math.min(ttlSeconds, 86_400), iss: creds.apiKeySid, sub: creds.accountSid };
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  return `${signingInput}.${createHmac('sha256', creds.apiKeySecret).update(signingInput).digest('base64url')}`;
}
