import { z } from 'zod';
import { loadConfig } from '../shared/config';
import { productionDeps } from '../shared/deps';
import { apiHandler } from '../shared/http';
import { logger } from '../shared/logger';
import { openSession } from './service';

const config = loadConfig();
const deps = productionDeps(config);

/** POST /api/twilio/token — body none or `{}`; 200 `{session:{status,expiresAt}}`. */
export const handler = apiHandler({ allowedOrigins: config.allowedOrigins, schema: z.object({}).strict() }, async ({ caller }) => {
  const { session, reused } = await openSession(deps, config, caller);
  logger.info('voice session', { outcome: reused ? 'reused' : 'issued', userId: caller.userId, sourceIp: caller.sourceIp, expiresAt: session.expiresAt });
  return { status: 200, body: { session } };
});
