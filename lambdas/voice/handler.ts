import * as z from 'zod/mini';
import { loadConfig } from '../shared/config';
import { productionDeps } from '../shared/deps';
import { apiHandler } from '../shared/http';
import { maskPhone } from '../shared/logger';
import { placeCall } from './service';

const config = loadConfig();
if (!config.statusCallbackUrl) throw new Error('Environment variable STATUS_CALLBACK_URL is required');
const deps = productionDeps(config);
const schema = z.strictObject({ to: z.string().check(z.regex(/^\+[1-9]\d{6,14}$/)) });

/** POST /api/twilio/voice — `{"to":"+14155550123"}`; 201 `{call:{sid,status}}`. */
export const handler = apiHandler(
  { allowedOrigins: config.allowedOrigins, schema, fieldHelp: { to: 'Field "to" must be a phone number in E.164 form, e.g. +14155550123.' } },
  async ({ body, caller, headers }) => {
    const { call, replayed } = await placeCall(deps, config, caller, body.to, headers['idempotency-key']);
    const audit = replayed ? { outcome: 'reused', reason: 'idempotent_replay' } as const : { outcome: 'issued', reason: 'call_placed' } as const;
    return { status: 201, body: { call }, audit: { ...audit, detail: { callSid: call.sid, to: maskPhone(body.to) } } };
  },
);
