import * as z from 'zod/mini';
import { loadConfig } from '../shared/config';
import { CALL_SID, E164 } from '../shared/contract';
import { productionDeps } from '../shared/deps';
import { apiHandler } from '../shared/http';
import { maskPhone } from '../shared/logger';
import { placeCall, readCall } from './service';

const config = loadConfig();
if (!config.statusCallbackUrl) throw new Error('Environment variable STATUS_CALLBACK_URL is required');
const deps = productionDeps(config);
/** POST's body and GET's query, validated by the middleware into one input type. */
const post = z.strictObject({ to: z.string().check(z.regex(E164)) });
const get = z.strictObject({ callSid: z.string().check(z.regex(CALL_SID)) });
type Input = z.infer<typeof post> | z.infer<typeof get>;

/**
 * POST /api/twilio/voice — `{"to":"+14155550123"}`; 201 `{call:{sid,status}}`.
 * GET /api/twilio/voice?callSid=CA… — 200 `{call:{sid,status}}`: one of the caller's calls as it stands.
 */
export const handler = apiHandler<Input>(
  {
    allowedOrigins: config.allowedOrigins,
    schema: post,
    querySchema: get,
    methods: ['POST', 'GET'],
    fieldHelp: { to: 'Field "to" must be a phone number in E.164 form, e.g. +14155550123.', callSid: '"callSid" must be "CA" followed by 32 lowercase hex digits.' },
  },
  async ({ method, body, caller, headers }) => {
    if (method === 'GET' && 'callSid' in body) {
      const call = await readCall(deps, caller, body.callSid);
      return { status: 200, body: { call }, audit: { outcome: 'read', reason: 'call_read', detail: { callSid: call.sid, callStatus: call.status } } };
    }
    if (!('to' in body)) throw new Error('unreachable: POST bodies are validated by the schema');
    const { call, replayed } = await placeCall(deps, config, caller, body.to, headers['idempotency-key']);
    const audit = replayed ? { outcome: 'reused', reason: 'idempotent_replay' } as const : { outcome: 'issued', reason: 'call_placed' } as const;
    return { status: 201, body: { call }, audit: { ...audit, detail: { callSid: call.sid, to: maskPhone(body.to) } } };
  },
);
