/**
 * Size of the long security suites. `SECURITY_SCALE=full` (set by the `security` jest project, i.e.
 * `npm run test:security`) runs the figures the security claims are stated in; anything else runs the
 * smaller version that `npm test` includes, with the very same test code.
 */
export const FULL_SCALE = process.env['SECURITY_SCALE'] === 'full';

/** `small` in `npm test`, `full` in `npm run test:security`. */
export const scale = (small: number, full: number): number => (FULL_SCALE ? full : small);
