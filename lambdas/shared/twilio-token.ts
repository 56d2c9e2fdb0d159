import AccessToken from 'twilio/lib/jwt/AccessToken';
import type { TwilioCredentials } from './twilio';

/**
 * Mints a Twilio Voice Access Token (a JWT signed with the API key secret) with a VoiceGrant for the TwiML
 * App, incoming calls off. Only the token function imports this: it loads the SDK's AccessToken module
 * alone, not the whole `twilio` package.
 */
export function mintAccessToken(creds: TwilioCredentials, identity: string, ttlSeconds: number): string {
  const token = new AccessToken(creds.accountSid, creds.apiKeySid, creds.apiKeySecret, { identity, ttl: Math.min(ttlSeconds, 86_400) });
  token.addGrant(new AccessToken.VoiceGrant({ ...(creds.twimlAppSid ? { outgoingApplicationSid: creds.twimlAppSid } : {}), incomingAllow: false }));
  return token.toJwt();
}
