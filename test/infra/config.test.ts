import { CONFIG_CONTEXT_KEY } from '../../lib/app';
import { ConfigError, parseConfig } from '../../lib/config';
import { shippedConfig, synthesize, synthesizeApp } from './support';

/** Expects `fn` to throw a ConfigError whose message names `voiceToken.<key>` and offers a fix. */
function expectConfigError(fn: () => unknown, key: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as Error).message).toContain(`"voiceToken.${key}"`);
  expect((error as Error).message).toContain('Fix:');
}

const withConfig = (overrides: Record<string, unknown>) => () => parseConfig({ ...shippedConfig(), ...overrides });

describe('the shipped cdk.json context', () => {
  it('parses into the example configuration', () => {
    expect(parseConfig(shippedConfig())).toEqual({
      allowedOrigins: ['https://app.example.com'],
      supabaseUrl: 'https://abcdefghijklmnopqrst.supabase.co',
      legacyJwtSecret: false,
      tokenTtlSeconds: 3600,
      ipTokenLimitPerMinute: 5,
      userTokenQuotaPerDay: 50,
      userCallQuotaPerDay: 100,
      dialPrefixes: ['+1'],
      throttle: { rateLimit: 10, burstLimit: 20 },
      quota: { limit: 100_000, period: 'DAY' },
      authorizerCacheTtlSeconds: 60,
      onlineSessionCheck: false,
      bindSessionToIp: false,
      logRetentionDays: 90,
      stageName: 'prod',
      publicBaseUrl: undefined,
      concurrentCallLimit: 2,
      maxCallSeconds: 3600,
      statusLimitPerIpPerMinute: 600,
      statusThrottle: { rateLimit: 20, burstLimit: 40 },
      logLevel: 'INFO',
      debugLogSampleRate: 0.01,
      alarms: {
        email: undefined,
        tokensIssuedPer5Minutes: 100,
        authDenialsPer5Minutes: 50,
        rateLimitedPer5Minutes: 25,
        upstreamErrorsPer5Minutes: 5,
        callbackSignatureFailuresPer5Minutes: 10,
        runbookUrl: 'docs/runbook.md',
      },
    });
  });

  it('fills every optional key with its default when only the required keys are given', () => {
    const config = parseConfig({ allowedOrigins: ['https://app.example.com'], supabaseUrl: 'https://abcdefghijklmnopqrst.supabase.co', dialPrefixes: ['+1'] });
    expect(config).toEqual(parseConfig(shippedConfig()));
  });
});

describe('reading the config from CDK context', () => {
  it('accepts the -c voiceToken=<json> string form', () => {
    const built = synthesizeApp({ [CONFIG_CONTEXT_KEY]: JSON.stringify(shippedConfig()), stage: 'prod' });
    expect(built.stages[0]?.config).toEqual(synthesize().config);
  });

  it('rejects a -c voiceToken string that is not JSON', () => {
    const build = () => synthesizeApp({ [CONFIG_CONTEXT_KEY]: '{allowedOrigins:' });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(/not valid JSON/);
  });

  it('rejects an app without voiceToken context', () => {
    expect(() => synthesizeApp({ [CONFIG_CONTEXT_KEY]: undefined })).toThrow(/add a "voiceToken" object/);
  });
});

describe('allowedOrigins', () => {
  it('accepts a comma-separated string as well as a list', () => {
    const config = parseConfig({ ...shippedConfig(), allowedOrigins: 'https://a.example.com, http://localhost:5173' });
    expect(config.allowedOrigins).toEqual(['https://a.example.com', 'http://localhost:5173']);
  });

  it('rejects "*"', () => expectConfigError(withConfig({ allowedOrigins: ['*'] }), 'allowedOrigins'));

  it('rejects a wildcard subdomain', () => expectConfigError(withConfig({ allowedOrigins: ['https://*.example.com'] }), 'allowedOrigins'));

  it('rejects an empty list', () => expectConfigError(withConfig({ allowedOrigins: [] }), 'allowedOrigins'));

  it.each([
    ['a trailing slash', 'https://app.example.com/'],
    ['a path', 'https://app.example.com/app'],
    ['a query', 'https://app.example.com?x=1'],
    ['an explicit default port', 'https://app.example.com:443'],
    ['upper-case letters', 'https://App.example.com'],
    ['no scheme', 'app.example.com'],
    ['a non-web scheme', 'ftp://app.example.com'],
  ])('rejects an origin with %s', (_what, origin) => expectConfigError(withConfig({ allowedOrigins: [origin] }), 'allowedOrigins'));

  it('rejects a list holding something other than strings', () => expectConfigError(withConfig({ allowedOrigins: [42] }), 'allowedOrigins'));
});

describe('supabaseUrl', () => {
  it.each([
    ['plain http', 'http://abcdefghijklmnopqrst.supabase.co'],
    ['a path', 'https://abcdefghijklmnopqrst.supabase.co/auth/v1'],
    ['a trailing slash', 'https://abcdefghijklmnopqrst.supabase.co/'],
    ['no value', undefined],
  ])('rejects %s', (_what, supabaseUrl) => expectConfigError(withConfig({ supabaseUrl }), 'supabaseUrl'));
});

describe('numeric limits', () => {
  it('rejects tokenTtlSeconds above 24 hours', () => expectConfigError(withConfig({ tokenTtlSeconds: 86_401 }), 'tokenTtlSeconds'));
  it('rejects tokenTtlSeconds below a minute', () => expectConfigError(withConfig({ tokenTtlSeconds: 59 }), 'tokenTtlSeconds'));
  it('rejects a fractional tokenTtlSeconds', () => expectConfigError(withConfig({ tokenTtlSeconds: 3600.5 }), 'tokenTtlSeconds'));
  it('rejects a numeric string for ipTokenLimitPerMinute', () => expectConfigError(withConfig({ ipTokenLimitPerMinute: '5' }), 'ipTokenLimitPerMinute'));
  it('rejects authorizerCacheTtlSeconds above an hour', () => expectConfigError(withConfig({ authorizerCacheTtlSeconds: 3601 }), 'authorizerCacheTtlSeconds'));
  it('rejects a zero throttle rate', () => expectConfigError(withConfig({ throttle: { rateLimit: 0, burstLimit: 20 } }), 'throttle.rateLimit'));
  it('rejects an unknown quota period', () => expectConfigError(withConfig({ quota: { limit: 10, period: 'YEAR' } }), 'quota.period'));
});

describe('other keys', () => {
  it('rejects a dial prefix without "+"', () => expectConfigError(withConfig({ dialPrefixes: ['1'] }), 'dialPrefixes'));
  it('rejects a dial prefix starting with 0', () => expectConfigError(withConfig({ dialPrefixes: ['+0'] }), 'dialPrefixes'));
  it('rejects an empty dialPrefixes list', () => expectConfigError(withConfig({ dialPrefixes: [] }), 'dialPrefixes'));
  it('rejects a non-boolean legacyJwtSecret', () => expectConfigError(withConfig({ legacyJwtSecret: 'yes' }), 'legacyJwtSecret'));
  it('rejects a stage name with a hyphen', () => expectConfigError(withConfig({ stageName: 'prod-1' }), 'stageName'));
});

describe('checks made while building the stack', () => {
  it('fails synth on a log retention CloudWatch Logs does not offer, naming the key', () => {
    expectConfigError(() => synthesize({ config: { logRetentionDays: 45 } }), 'logRetentionDays');
  });
});

describe('status callback keys', () => {
  it.each([
    ['a custom domain', 'https://voice.example.com'],
    ['a stage URL with its path', 'https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod'],
  ])('accepts %s as publicBaseUrl', (_what, publicBaseUrl) => {
    expect(parseConfig({ ...shippedConfig(), publicBaseUrl }).publicBaseUrl).toBe(publicBaseUrl);
  });

  it.each([
    ['plain http', 'http://voice.example.com'],
    ['a trailing slash', 'https://voice.example.com/'],
    ['a query', 'https://voice.example.com/prod?x=1'],
    ['a fragment', 'https://voice.example.com/prod#top'],
    ['credentials', 'https://user:pass@voice.example.com'],
    ['a non-canonical spelling', 'https://Voice.example.com'],
    ['no URL at all', 'voice.example.com'],
    ['a number', 42],
  ])('rejects a publicBaseUrl with %s', (_what, publicBaseUrl) => expectConfigError(withConfig({ publicBaseUrl }), 'publicBaseUrl'));

  it.each([
    ['concurrentCallLimit', 0],
    ['concurrentCallLimit', 51],
    ['maxCallSeconds', 59],
    ['maxCallSeconds', 14_401],
    ['statusLimitPerIpPerMinute', 0],
    ['statusLimitPerIpPerMinute', 100_001],
  ])('rejects %s = %s', (key, value) => expectConfigError(withConfig({ [key]: value }), key));

  it('rejects a statusThrottle that is not an object, or out of range', () => {
    expectConfigError(withConfig({ statusThrottle: 5 }), 'statusThrottle');
    expectConfigError(withConfig({ statusThrottle: { rateLimit: 0 } }), 'statusThrottle.rateLimit');
  });

  it('rejects a callbackSignatureFailuresPer5Minutes of zero', () => {
    expectConfigError(withConfig({ alarms: { callbackSignatureFailuresPer5Minutes: 0 } }), 'alarms.callbackSignatureFailuresPer5Minutes');
  });
});
