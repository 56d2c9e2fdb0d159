import { Logger } from '@aws-lambda-powertools/logger';

/**
 * One structured JSON logger per function (Powertools). Service name and level come from
 * POWERTOOLS_SERVICE_NAME / POWERTOOLS_LOG_LEVEL. Never pass tokens, keys, secrets, Authorization headers
 * or full phone numbers to it: use `maskPhone` for numbers.
 */
export const logger = new Logger({ serviceName: process.env['POWERTOOLS_SERVICE_NAME'] ?? 'voice-token' });

/** Keeps the country code and the last two digits: `+14155550123` → `+1*******23`. */
export function maskPhone(e164: string): string {
  const m = /^\+(\d{1,3})(\d*)(\d{2})$/.exec(e164);
  if (!m) return '[invalid]';
  // Country codes are 1-3 digits; without a lookup table keep just the first digit group that is
  // certainly the code's start, so no subscriber digits leak.
  return `+${m[1]!.slice(0, 1)}${'*'.repeat(m[1]!.length - 1 + m[2]!.length)}${m[3]}`;
}
