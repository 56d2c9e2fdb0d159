import { Logger } from '@aws-lambda-powertools/logger';

/**
 * One structured JSON logger per function (Powertools). Service name and level come from
 * POWERTOOLS_SERVICE_NAME / POWERTOOLS_LOG_LEVEL. Never pass tokens, keys, secrets, Authorization headers
 * or full phone numbers to it: use `maskPhone` for numbers.
 */
export const logger = new Logger({ serviceName: process.env['POWERTOOLS_SERVICE_NAME'] ?? 'voice-token' });

/**
 * Length of the E.164 country code at the start of `digits`, from the ITU zone structure: zones 1 and 7
 * are one digit; in the other zones the codes listed here are two digits and the rest three.
 */
export function countryCodeLength(digits: string): 1 | 2 | 3 {
  const first = digits[0];
  if (first === '1' || first === '7') return 1;
  const TWO_DIGIT: Readonly<Record<string, string>> = {
    '2': '07', '3': '0123469', '4': '013456789', '5': '12345678', '6': '0123456', '8': '1246', '9': '0123458',
  };
  return (TWO_DIGIT[first ?? ''] ?? '').includes(digits[1] ?? '') ? 2 : 3;
}

/** Keeps the country code and the last two digits: `+14155550123` → `+1********23`, `+447911123456` → `+44********56`. */
export function maskPhone(e164: string): string {
  const m = /^\+(\d{7,15})$/.exec(e164);
  if (!m) return '[invalid]';
  const digits = m[1]!;
  const cc = countryCodeLength(digits);
  return `+${digits.slice(0, cc)}${'*'.repeat(digits.length - cc - 2)}${digits.slice(-2)}`;
}
