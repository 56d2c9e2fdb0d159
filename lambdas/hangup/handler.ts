import * as z from 'zod/mini';
import { loadConfig } from '../shared/config';
import { CALL_SID } from '../shared/contract';
import { productionDeps } from '../shared/deps';
import { apiHandler } from '../shared/http';
import { hangUp } from './service';

const config = loadConfig();
const deps = productionDeps(config);
const schema = z.strictObject({ callSid: z.string().check(z.regex(CALL_SID)) });

/** POST /api/twilio/hangup — `{"callSid":"CA…"}`; 200 `{call:{sid,status:"completed"}}`. */
export const handler = apiHandler(
  { allowedOrigins: config.allowedOrigins, schema, fieldHelp: { callSid: 'Field "callSid" must be "CA" followed by 32 lowercase hex digits.' } },
  async ({ body, caller }) => {
    const { call, twilioCalled } = await hangUp(deps, caller, body.callSid, config);
    return { status: 200, body: { call }, audit: { outcome: 'ended', reason: twilioCalled ? 'ended' : 'already_ended', detail: { callSid: call.sid } } };
  },
);
