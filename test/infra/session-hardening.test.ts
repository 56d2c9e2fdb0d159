import { ENV } from '../../lambdas/shared/config';
import { ConfigError, parseConfig } from '../../lib/config';
import { logicalId, shippedConfig, synthesize } from './support';

/** The optional session hardenings (online session check, IP binding): off by default, validated, wired. */

const ANON_KEY = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLW9mLXRoZS1hbm9uLWtleQ';
type Fn = Parameters<typeof logicalId>[1];
const envOf = (t: ReturnType<typeof synthesize>, fn: Fn): Record<string, unknown> =>
  (t.template.toJSON()['Resources'][logicalId(t.stack, fn)] as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables;
/** The browser route handlers (Twilio's status callback has no user session to bind). */
const handlers = (t: ReturnType<typeof synthesize>) => [t.stack.functions.handlers.token, t.stack.functions.handlers.voice, t.stack.functions.handlers.hangup];

describe('defaults', () => {
  const config = parseConfig(shippedConfig());

  it('leaves the online session check and the IP binding off', () => {
    expect(config).toMatchObject({ onlineSessionCheck: false, bindSessionToIp: false });
  });

  it('caches authorizer results for at most 60 seconds', () => {
    expect(config.authorizerCacheTtlSeconds).toBeLessThanOrEqual(60);
    synthesize().template.hasResourceProperties('AWS::ApiGateway::Authorizer', { AuthorizerResultTtlInSeconds: 60 });
  });

  it('sets none of their variables on any function', () => {
    const t = synthesize();
    for (const fn of t.stack.functions.all) {
      expect(Object.keys(envOf(t, fn))).not.toEqual(expect.arrayContaining([ENV.SESSION_CHECK]));
      expect(Object.keys(envOf(t, fn))).not.toEqual(expect.arrayContaining([ENV.BIND_SESSION_TO_IP]));
    }
  });
});

describe('validation', () => {
  const parse = (overrides: Record<string, unknown>) => () => parseConfig({ ...shippedConfig(), ...overrides });

  it('rejects onlineSessionCheck without the anon key, naming supabaseAnonKey', () => {
    expect(parse({ onlineSessionCheck: true })).toThrow(ConfigError);
    expect(parse({ onlineSessionCheck: true })).toThrow(/"voiceToken.supabaseAnonKey".*Fix:/);
  });

  it.each([['onlineSessionCheck', 'yes'], ['bindSessionToIp', 1]])('rejects a non-boolean %s', (key, value) => {
    expect(parse({ [key]: value })).toThrow(`"voiceToken.${key}"`);
  });

  it('rejects an anon key that is not a key', () => {
    expect(parse({ onlineSessionCheck: true, supabaseAnonKey: 'has spaces in it, not a key' })).toThrow(/supabaseAnonKey/);
  });
});

describe('wiring', () => {
  it('gives the authorizer, and only the authorizer, the session check and the anon key', () => {
    const t = synthesize({ config: { onlineSessionCheck: true, supabaseAnonKey: ANON_KEY } });
    expect(envOf(t, t.stack.functions.authorizer)).toMatchObject({ [ENV.SESSION_CHECK]: 'true', [ENV.SUPABASE_ANON_KEY]: ANON_KEY });
    for (const fn of [...handlers(t), t.stack.functions.handlers.status]) expect(envOf(t, fn)).not.toHaveProperty(ENV.SESSION_CHECK);
  });

  it('gives the three handlers, and not the authorizer, the IP binding', () => {
    const t = synthesize({ config: { bindSessionToIp: true } });
    for (const fn of handlers(t)) expect(envOf(t, fn)).toMatchObject({ [ENV.BIND_SESSION_TO_IP]: 'true' });
    expect(envOf(t, t.stack.functions.authorizer)).not.toHaveProperty(ENV.BIND_SESSION_TO_IP);
    expect(envOf(t, t.stack.functions.handlers.status)).not.toHaveProperty(ENV.BIND_SESSION_TO_IP);
  });
});
