import { loadConfig } from '../shared/config';
import { productionDeps } from '../shared/deps';
import { webhookHandler } from '../shared/http';
import { recordCallStatus } from './service';

const config = loadConfig();
if (!config.statusCallbackUrl) throw new Error('Environment variable STATUS_CALLBACK_URL is required');
const deps = productionDeps(config);

/**
 * POST /api/twilio/status — Twilio's status callback (form-encoded, signed with `X-Twilio-Signature`);
 * 204 with no body. Not behind the Supabase authorizer: the signature is the authentication.
 */
export const handler = webhookHandler(async ({ params, headers, query, sourceIp }) => {
  const out = await recordCallStatus(deps, config, {
    params,
    query,
    sourceIp,
    signature: headers['x-twilio-signature'],
    signatureSettings: headers['x-twilio-webhooks-signature-settings'],
  });
  return {
    status: 204,
    audit: {
      outcome: out.result === 'updated' ? 'recorded' : 'ignored',
      reason: out.result === 'updated' ? `call_${out.status.replace('-', '_')}` : out.result === 'stale' ? 'stale_event' : 'unknown_call',
      userId: out.userId,
      detail: { callSid: out.callSid, callStatus: out.status },
    },
  };
});
