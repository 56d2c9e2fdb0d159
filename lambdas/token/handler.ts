import { z } from 'zod';
import { loadConfig } from '../shared/config';
import { productionDeps } from '../shared/deps';
import { apiHandler } from '../shared/http';
import { openSession } from './service';

const config = loadConfig();
const deps = productionDeps(config);

/** POST /api/twilio/token — body none or `{}`; 200 `{session:{status,expiresAt}}`. */
export const handler = apiHandler({ allowedOrigins: config.allowedOrigins, schema: z.object({}).strict() }, async ({ caller }) => {
  const { session, reused } = await openSession(deps, config, caller);
  const audit = reused ? { outcome: 'reused', reason: 'session_valid' } as const : { outcome: 'issued', reason: 'new_session' } as const;
  return { status: 200, body: { session }, audit: { ...audit, detail: { expiresAt: session.expiresAt } } };
});
