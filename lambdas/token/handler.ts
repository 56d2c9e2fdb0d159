import * as z from 'zod/mini';
import { loadConfig } from '../shared/config';
import { productionDeps } from '../shared/deps';
import { mintAccessToken } from '../shared/twilio-token';
import { apiHandler } from '../shared/http';
import { closeSession, openSession } from './service';

const config = loadConfig();
const deps = productionDeps(config, { mint: mintAccessToken });

/**
 * POST /api/twilio/token — body none or `{}`; 200 `{session:{status,expiresAt}}`.
 * DELETE /api/twilio/token — logout: 204, also when there was no session.
 */
export const handler = apiHandler({ allowedOrigins: config.allowedOrigins, schema: z.strictObject({}), methods: ['POST', 'DELETE'] }, async ({ method, caller }) => {
  if (method === 'DELETE') {
    await closeSession(deps, caller);
    return { status: 204, audit: { outcome: 'ended', reason: 'session_closed' } };
  }
  const { session, reused } = await openSession(deps, config, caller);
  const audit = reused ? { outcome: 'reused', reason: 'session_valid' } as const : { outcome: 'issued', reason: 'new_session' } as const;
  return { status: 200, body: { session }, audit: { ...audit, detail: { expiresAt: session.expiresAt } } };
});
