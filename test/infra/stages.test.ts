import { Template } from 'aws-cdk-lib/assertions';
import { CONFIG_CONTEXT_KEY, STAGES_CONTEXT_KEY, stackIdFor } from '../../lib/app';
import { ConfigError, isNonPublicHost, mergeStageConfig, parseStageConfig } from '../../lib/config';
import { shippedConfig, shippedStages, synthesize, synthesizeApp } from './support';

/** One app, one cdk.json, a stack per stage: dev, staging and prod. */

function configErrorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as Error;
  }
  throw new Error('expected a ConfigError');
}

describe('the shipped cdk.json without -c stage (what cdk synth and CI check)', () => {
  const built = synthesizeApp();
  const byStage = new Map(built.stages.map((s) => [s.stage, { ...s, template: Template.fromStack(s.stack) }]));

  it('builds one stack per stage, named TwilioVoiceToken-<stage>', () => {
    expect(built.stages.map((s) => s.stage)).toEqual(['dev', 'staging', 'prod']);
    expect(built.stages.map((s) => s.stack.stackName)).toEqual(['TwilioVoiceToken-dev', 'TwilioVoiceToken-staging', 'TwilioVoiceToken-prod']);
    expect(built.app.node.children.filter((c) => c.node.id.startsWith('TwilioVoiceToken')).map((c) => c.node.id)).toEqual(built.stages.map((s) => stackIdFor(s.stage)));
  });

  it.each(['dev', 'staging', 'prod'])('names the %s API Gateway stage after the stage key', (stage) => {
    byStage.get(stage)!.template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: stage });
  });

  it.each(['dev', 'staging', 'prod'])('gives %s its own table, secrets, alarm topic, API and functions', (stage) => {
    const t = byStage.get(stage)!.template;
    t.resourceCountIs('AWS::DynamoDB::Table', 1);
    t.resourceCountIs('AWS::SecretsManager::Secret', 3);
    t.resourceCountIs('AWS::SNS::Topic', 1);
    t.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    t.resourceCountIs('AWS::Lambda::Function', 5);
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('merges each stage block over the shared block', () => {
    const dev = byStage.get('dev')!.config;
    const prod = byStage.get('prod')!.config;
    expect(dev.allowedOrigins).toEqual(['https://dev.app.example.com', 'http://localhost:5173']);
    expect(dev.throttle).toEqual({ rateLimit: 5, burstLimit: 10 });
    expect(dev.logRetentionDays).toBe(14);
    expect(prod.allowedOrigins).toEqual(['https://app.example.com']);
    expect(prod.throttle).toEqual({ rateLimit: 10, burstLimit: 20 });
    expect(prod.supabaseUrl).toBe(dev.supabaseUrl);
  });

  it('ships no http:// or localhost origin for prod', () => {
    expect(byStage.get('prod')!.config.allowedOrigins.every((o) => o.startsWith('https://') && !o.includes('localhost'))).toBe(true);
  });

  it('reports no unacknowledged cdk-nag finding on any stage', () => {
    const findings = built.nagPacks.flatMap((pack) => pack.validateScope(built.app).violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath ?? '?'}`)));
    expect(findings).toEqual([]);
  });
});

describe('-c stage=<stage>', () => {
  it.each(['dev', 'staging', 'prod'])('synthesizes only the %s stack', (stage) => {
    const built = synthesizeApp({ stage });
    expect(built.stages.map((s) => s.stack.stackName)).toEqual([`TwilioVoiceToken-${stage}`]);
  });

  it('fails on an unknown stage, listing the known ones', () => {
    const error = configErrorOf(() => synthesizeApp({ stage: 'qa' }));
    expect(error.message).toContain('unknown stage "qa"');
    expect(error.message).toContain('"dev", "staging", "prod"');
    expect(error.message).toContain('Fix:');
  });

  it('rejects a stage key that cannot name a stack', () => {
    const error = configErrorOf(() => synthesizeApp({ [STAGES_CONTEXT_KEY]: { Prod_1: {} } }));
    expect(error.message).toContain('"voiceTokenStages.Prod_1"');
  });

  it('accepts voiceTokenStages as a -c JSON string', () => {
    const built = synthesizeApp({ [STAGES_CONTEXT_KEY]: JSON.stringify({ qa: {} }), stage: 'qa' });
    expect(built.stages.map((s) => s.stack.stackName)).toEqual(['TwilioVoiceToken-qa']);
  });

  it('builds a single prod stage from voiceToken alone when there are no stage blocks', () => {
    const built = synthesizeApp({ [STAGES_CONTEXT_KEY]: undefined, [CONFIG_CONTEXT_KEY]: JSON.stringify(shippedConfig()) });
    expect(built.stages.map((s) => [s.stage, s.config.stageName])).toEqual([['prod', 'prod']]);
  });

  it('lets a stage block set its own API Gateway stage name', () => {
    const { template } = synthesize({ stage: 'staging', config: { stageName: 'v1' } });
    template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'v1' });
  });
});

describe('publicBaseUrl across stages', () => {
  it('rejects one publicBaseUrl shared by several stages, naming them', () => {
    const error = configErrorOf(() => synthesizeApp({ [CONFIG_CONTEXT_KEY]: { ...shippedConfig(), publicBaseUrl: 'https://voice.example.com' }, stage: 'prod' }));
    expect(error.message).toContain('"voiceToken.publicBaseUrl"');
    expect(error.message).toContain('stages "dev" and "staging" both use "https://voice.example.com"');
  });

  it('accepts one publicBaseUrl per stage', () => {
    const stages = Object.fromEntries(Object.entries(shippedStages()).map(([k, v]) => [k, { ...v, publicBaseUrl: `https://${k}.voice.example.com` }]));
    const built = synthesizeApp({ [STAGES_CONTEXT_KEY]: stages });
    expect(built.stages.map((s) => s.config.publicBaseUrl)).toEqual(['https://dev.voice.example.com', 'https://staging.voice.example.com', 'https://prod.voice.example.com']);
  });
});

describe('merging a stage block over the shared block', () => {
  it('replaces plain values and lists, and merges throttle, quota, statusThrottle and alarms key by key', () => {
    const merged = mergeStageConfig(
      { allowedOrigins: ['https://a.example.com'], throttle: { rateLimit: 10, burstLimit: 20 }, alarms: { email: 'oncall@example.com', authDenialsPer5Minutes: 50 }, logLevel: 'INFO' },
      { allowedOrigins: ['https://b.example.com'], throttle: { rateLimit: 3 }, alarms: { authDenialsPer5Minutes: 5 }, logLevel: 'DEBUG' },
    );
    expect(merged).toEqual({
      allowedOrigins: ['https://b.example.com'],
      throttle: { rateLimit: 3, burstLimit: 20 },
      alarms: { email: 'oncall@example.com', authDenialsPer5Minutes: 5 },
      logLevel: 'DEBUG',
    });
  });

  it('names the stage in errors from its merged config', () => {
    const error = configErrorOf(() => parseStageConfig(shippedConfig(), { tokenTtlSeconds: 5 }, 'staging'));
    expect(error.message).toMatch(/^Stage "staging" .*"voiceToken.tokenTtlSeconds"/);
  });

  it('rejects a stage block that is not an object', () => {
    const error = configErrorOf(() => parseStageConfig(shippedConfig(), ['x'], 'dev'));
    expect(error.message).toContain('"voiceTokenStages.dev"');
  });
});

describe('the prod stage refuses development settings', () => {
  it.each([
    ['an http:// origin', 'http://app.example.com'],
    ['localhost', 'https://localhost:5173'],
    ['http://localhost', 'http://localhost:5173'],
    ['127.0.0.1', 'https://127.0.0.1:8443'],
    ['another loopback address', 'https://127.1.2.3'],
    ['[::1]', 'https://[::1]:5173'],
  ])('rejects %s in allowedOrigins, with a clear error', (_what, origin) => {
    const error = configErrorOf(() => synthesize({ stage: 'prod', config: { allowedOrigins: ['https://app.example.com', origin] } }));
    expect(error.message).toContain('"voiceToken.allowedOrigins"');
    expect(error.message).toContain('Stage "prod"');
    expect(error.message).toContain('a production stage (prod, or any with "production": true) refuses');
    expect(error.message).toContain('Fix:');
  });

  it.each(['https://localhost', 'https://127.0.0.1/prod', 'https://10.1.2.3', 'https://voice.internal'])('rejects the non-public publicBaseUrl %s', (publicBaseUrl) => {
    const error = configErrorOf(() => synthesize({ stage: 'prod', config: { publicBaseUrl } }));
    expect(error.message).toContain('"voiceToken.publicBaseUrl"');
    expect(error.message).toContain('not a public address');
  });

  it('applies the same checks to any stage marked "production": true, whatever its name', () => {
    const error = configErrorOf(() => synthesize({ stage: 'dev', config: { production: true, allowedOrigins: ['http://localhost:5173'] } }));
    expect(error.message).toContain('"voiceToken.allowedOrigins"');
    expect(error.message).toContain('refuses');
    expect(configErrorOf(() => synthesize({ stage: 'dev', config: { production: true, allowedOrigins: ['https://app.example.com'], publicBaseUrl: 'https://10.1.2.3' } })).message).toContain('not a public address');
    expect(configErrorOf(() => synthesize({ stage: 'dev', config: { production: 'yes' } })).message).toContain('"voiceToken.production"');
  });

  it('accepts the same localhost origin and base URL in dev', () => {
    const { config } = synthesize({ stage: 'dev', config: { allowedOrigins: ['http://localhost:5173'], publicBaseUrl: 'https://localhost:8443' } });
    expect(config.allowedOrigins).toEqual(['http://localhost:5173']);
  });

  it('tells public hosts from non-public ones', () => {
    for (const host of ['localhost', 'app.localhost', '127.0.0.1', '10.0.0.1', '172.16.0.1', '192.168.1.1', '169.254.169.254', '[::1]', '[fd00::1]', 'printer.local', 'intranet']) {
      expect([host, isNonPublicHost(host)]).toEqual([host, true]);
    }
    for (const host of ['app.example.com', '8.8.8.8', '172.32.0.1', 'abc.execute-api.eu-west-1.amazonaws.com', '[2001:db8::1]']) {
      expect([host, isNonPublicHost(host)]).toEqual([host, false]);
    }
  });
});

describe('shipped stage blocks', () => {
  it('lists dev, staging and prod', () => {
    expect(Object.keys(shippedStages())).toEqual(['dev', 'staging', 'prod']);
  });
});
