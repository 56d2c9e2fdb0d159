import { Match } from 'aws-cdk-lib/assertions';
import { ERRORS, SECURITY_HEADERS } from '../../lambdas/shared/contract';
import { methodSettingsKey, REQUEST_SCHEMAS } from '../../lib/constructs/api';
import { GATEWAY_RESPONSES } from '../../lib/gateway-responses';
import { RESOURCE_PATHS, ROUTES, STATUS_CALLBACK_PATH } from '../../lib/routes';
import { logicalId, synthesize } from './support';

const { stack, template } = synthesize();
const fnId = {
  authorizer: logicalId(stack, stack.functions.authorizer),
  token: logicalId(stack, stack.functions.handlers.token),
  voice: logicalId(stack, stack.functions.handlers.voice),
  hangup: logicalId(stack, stack.functions.handlers.hangup),
  status: logicalId(stack, stack.functions.handlers.status),
};
const browserRoutes = ROUTES.filter((r) => r.authorized);

type Props = Record<string, unknown>;
type Resource = { Properties: Props };

/** Methods keyed by `"<METHOD> <full path>"`, with each resource's path rebuilt from its PathPart chain. */
function methodsByRoute(): Map<string, Props> {
  const resources = template.findResources('AWS::ApiGateway::Resource') as Record<string, Resource>;
  const pathOf = (id: string): string => {
    const r = resources[id];
    if (!r) return '';
    const parent = r.Properties['ParentId'] as { Ref?: string };
    return `${parent.Ref ? pathOf(parent.Ref) : ''}/${String(r.Properties['PathPart'])}`;
  };
  const methods = template.findResources('AWS::ApiGateway::Method') as Record<string, Resource>;
  const byRoute = new Map<string, Props>();
  for (const m of Object.values(methods)) {
    const resourceId = (m.Properties['ResourceId'] as { Ref: string }).Ref;
    byRoute.set(`${String(m.Properties['HttpMethod'])} ${pathOf(resourceId)}`, m.Properties);
  }
  return byRoute;
}

const methods = methodsByRoute();
const method = (key: string): Props => {
  const m = methods.get(key);
  if (!m) throw new Error(`no method ${key}; have ${[...methods.keys()].join(', ')}`);
  return m;
};
const integrationTarget = (m: Props): string => JSON.stringify((m['Integration'] as Props)['Uri']);
const onlyId = (type: string): string => {
  const ids = Object.keys(template.findResources(type));
  expect(ids).toHaveLength(1);
  return ids[0] as string;
};

describe('REST API', () => {
  it('is a regional REST API that takes the usage-plan key from the authorizer', () => {
    template.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    template.hasResourceProperties('AWS::ApiGateway::RestApi', {
      ApiKeySourceType: 'AUTHORIZER',
      EndpointConfiguration: { Types: ['REGIONAL'] },
    });
  });

  it('has exactly the route table’s methods plus one OPTIONS per path', () => {
    const expected = [...ROUTES.map((r) => `${r.method} ${r.path}`), ...RESOURCE_PATHS.map((p) => `OPTIONS ${p}`)];
    expect([...methods.keys()].sort()).toEqual(expected.sort());
  });

  it.each(browserRoutes.map((r) => [`${r.method} ${r.path}`, r] as const))('guards %s with the Supabase authorizer and an API key', (key, route) => {
    const m = method(key);
    expect(m['AuthorizationType']).toBe('CUSTOM');
    expect(m['AuthorizerId']).toEqual({ Ref: onlyId('AWS::ApiGateway::Authorizer') });
    expect(m['ApiKeyRequired']).toBe(true);
    expect(m['Integration']).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
    expect(integrationTarget(m)).toContain(`"${fnId[route.fn]}"`);
  });

  it.each(RESOURCE_PATHS.map((p) => [p]))('answers preflight on %s without authorizer or API key, through the route’s own function', (path) => {
    const m = method(`OPTIONS ${path}`);
    const route = ROUTES.find((r) => r.path === path);
    expect(m['AuthorizationType']).toBe('NONE');
    expect(m['ApiKeyRequired']).toBe(false);
    expect(m['AuthorizerId']).toBeUndefined();
    expect(m['Integration']).toMatchObject({ Type: 'AWS_PROXY' });
    expect(integrationTarget(m)).toContain(`"${fnId[route?.fn ?? 'token']}"`);
  });

  it('makes API Gateway refuse GET /api/twilio/voice without a callSid, before the function runs', () => {
    const m = method('GET /api/twilio/voice');
    expect(m['RequestParameters']).toEqual({ 'method.request.querystring.callSid': true });
    expect(m['RequestValidatorId']).toEqual({ Ref: onlyId('AWS::ApiGateway::RequestValidator') });
    expect(integrationTarget(m)).toContain(`"${fnId.voice}"`);
  });

  it('guards DELETE /api/twilio/token (ending the voice session) with the authorizer, served by the token function', () => {
    const m = method('DELETE /api/twilio/token');
    expect(m).toMatchObject({ AuthorizationType: 'CUSTOM', ApiKeyRequired: true, AuthorizerId: { Ref: onlyId('AWS::ApiGateway::Authorizer') } });
    expect(integrationTarget(m)).toContain(`"${fnId.token}"`);
  });

  it('serves POST /api/twilio/status to Twilio with no authorizer and no API key, through the status function', () => {
    const m = method(`POST ${STATUS_CALLBACK_PATH}`);
    expect(m['AuthorizationType']).toBe('NONE');
    expect(m['AuthorizerId']).toBeUndefined();
    expect(m['ApiKeyRequired']).toBe(false);
    expect(m['Integration']).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
    expect(integrationTarget(m)).toContain(`"${fnId.status}"`);
  });

  it('answers no preflight on the status path: no browser may call it', () => {
    expect(methods.has(`OPTIONS ${STATUS_CALLBACK_PATH}`)).toBe(false);
    expect([...methods.keys()].filter((k) => k.endsWith(STATUS_CALLBACK_PATH))).toEqual([`POST ${STATUS_CALLBACK_PATH}`]);
  });

  it('does not use the built-in CORS preflight (a MOCK integration cannot refuse foreign origins)', () => {
    const mocks = [...methods.values()].filter((m) => (m['Integration'] as Props)['Type'] === 'MOCK');
    expect(mocks).toEqual([]);
  });
});

describe('authorizer', () => {
  it('is a REQUEST authorizer on the Authorization header, cached for the configured TTL, backed by the authorizer function', () => {
    template.resourceCountIs('AWS::ApiGateway::Authorizer', 1);
    template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
      Type: 'REQUEST',
      IdentitySource: 'method.request.header.Authorization',
      AuthorizerResultTtlInSeconds: 60,
    });
    const authorizer = Object.values(template.findResources('AWS::ApiGateway::Authorizer'))[0] as Resource;
    expect(JSON.stringify(authorizer.Properties['AuthorizerUri'])).toContain(`"${fnId.authorizer}"`);
  });

  it('uses the authorizerCacheTtlSeconds from config', () => {
    const { template: t } = synthesize({ config: { authorizerCacheTtlSeconds: 0 } });
    t.hasResourceProperties('AWS::ApiGateway::Authorizer', { AuthorizerResultTtlInSeconds: 0 });
  });
});

describe('request validation', () => {
  it('validates bodies with one request validator', () => {
    template.resourceCountIs('AWS::ApiGateway::RequestValidator', 1);
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true });
  });

  it.each([
    ['POST /api/twilio/voice', 'VoiceRequest'],
    ['POST /api/twilio/hangup', 'HangupRequest'],
  ])('checks the %s body against the %s model', (key, modelName) => {
    const models = template.findResources('AWS::ApiGateway::Model', { Properties: { Name: modelName } });
    const [modelId] = Object.keys(models);
    expect(modelId).toBeDefined();
    expect(method(key)['RequestModels']).toEqual({ 'application/json': { Ref: modelId } });
    expect(method(key)['RequestValidatorId']).toEqual({ Ref: onlyId('AWS::ApiGateway::RequestValidator') });
  });

  it('leaves the token body to the handler (it may be empty)', () => {
    expect(method('POST /api/twilio/token')['RequestModels']).toBeUndefined();
    expect(method('POST /api/twilio/token')['RequestValidatorId']).toBeUndefined();
  });

  it('defines the VoiceRequest and HangupRequest models as strict draft-4 JSON Schemas', () => {
    template.resourceCountIs('AWS::ApiGateway::Model', 2);
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      Name: 'VoiceRequest',
      ContentType: 'application/json',
      Schema: {
        $schema: 'http://json-schema.org/draft-04/schema#',
        type: 'object',
        required: ['to'],
        additionalProperties: false,
        properties: { to: { type: 'string', pattern: '^\\+[1-9][0-9]{6,14}$' } },
      },
    });
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      Name: 'HangupRequest',
      ContentType: 'application/json',
      Schema: {
        $schema: 'http://json-schema.org/draft-04/schema#',
        type: 'object',
        required: ['callSid'],
        additionalProperties: false,
        properties: { callSid: { type: 'string', pattern: '^CA[0-9a-f]{32}$' } },
      },
    });
  });

  it('accepts E.164 numbers and rejects others in the VoiceRequest pattern', () => {
    const e164 = /^\+[1-9][0-9]{6,14}$/;
    expect(REQUEST_SCHEMAS.VoiceRequest?.properties?.['to']?.pattern).toBe(e164.source);
    for (const ok of ['+14155550123', '+442071838750', '+1234567']) expect(e164.test(ok)).toBe(true);
    for (const bad of ['14155550123', '+04155550123', '+1415555012345678', '+1 415 555 0123', '+123456']) expect(e164.test(bad)).toBe(false);
  });

  it('accepts Twilio call SIDs and rejects others in the HangupRequest pattern', () => {
    const callSid = /^CA[0-9a-f]{32}$/;
    expect(REQUEST_SCHEMAS.HangupRequest?.properties?.['callSid']?.pattern).toBe(callSid.source);
    expect(callSid.test(`CA${'0123456789abcdef'.repeat(2)}`)).toBe(true);
    for (const bad of [`CA${'0123456789ABCDEF'.repeat(2)}`, `SM${'0'.repeat(32)}`, `CA${'0'.repeat(31)}`, `CA${'0'.repeat(33)}`]) {
      expect(callSid.test(bad)).toBe(false);
    }
  });
});

describe('stage', () => {
  it('is named from config, traced, throttled, with ERROR execution logs and no data trace', () => {
    template.resourceCountIs('AWS::ApiGateway::Stage', 1);
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'prod',
      TracingEnabled: true,
      MethodSettings: [
        {
          HttpMethod: '*',
          ResourcePath: '/*',
          ThrottlingRateLimit: 10,
          ThrottlingBurstLimit: 20,
          LoggingLevel: 'ERROR',
          DataTraceEnabled: false,
          MetricsEnabled: true,
        },
        {
          HttpMethod: 'POST',
          ResourcePath: '/~1api~1twilio~1status',
          ThrottlingRateLimit: 20,
          ThrottlingBurstLimit: 40,
          LoggingLevel: 'ERROR',
          DataTraceEnabled: false,
          MetricsEnabled: true,
        },
      ],
    });
  });

  it('throttles the status callback method with statusThrottle from config (it has no usage plan)', () => {
    expect(methodSettingsKey({ method: 'POST', path: STATUS_CALLBACK_PATH })).toBe('/api/twilio/status/POST');
    const { template: t } = synthesize({ config: { statusThrottle: { rateLimit: 5, burstLimit: 6 } } });
    t.hasResourceProperties('AWS::ApiGateway::Stage', {
      MethodSettings: Match.arrayWith([Match.objectLike({ HttpMethod: 'POST', ResourcePath: '/~1api~1twilio~1status', ThrottlingRateLimit: 5, ThrottlingBurstLimit: 6 })]),
    });
  });

  it('writes JSON access logs with who, where from, what and why it failed', () => {
    const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0] as Resource;
    const setting = stage.Properties['AccessLogSetting'] as { Format: string; DestinationArn: unknown };
    expect(JSON.parse(setting.Format)).toEqual({
      requestId: '$context.requestId',
      ip: '$context.identity.sourceIp',
      caller: '$context.identity.caller',
      user: '$context.authorizer.principalId',
      requestTime: '$context.requestTime',
      httpMethod: '$context.httpMethod',
      resourcePath: '$context.resourcePath',
      status: '$context.status',
      protocol: '$context.protocol',
      responseLength: '$context.responseLength',
      errorType: '$context.error.responseType',
      authorizerError: '$context.authorizer.error',
      integrationError: '$context.integrationErrorMessage',
    });
    expect(JSON.stringify(setting.DestinationArn)).toContain(`"${logicalId(stack, stack.api.accessLogs)}"`);
  });

  it('keeps access logs for the configured retention, and keeps the log group on teardown', () => {
    expect(template.toJSON()['Resources'][logicalId(stack, stack.api.accessLogs)]).toMatchObject({
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
    });
  });

  it('has the account-level CloudWatch role that execution logging needs', () => {
    template.resourceCountIs('AWS::ApiGateway::Account', 1);
  });

  it('takes throttling from config', () => {
    const { template: t } = synthesize({ config: { throttle: { rateLimit: 3, burstLimit: 7 } } });
    t.hasResourceProperties('AWS::ApiGateway::Stage', {
      MethodSettings: Match.arrayWith([Match.objectLike({ HttpMethod: '*', ThrottlingRateLimit: 3, ThrottlingBurstLimit: 7 })]),
    });
    t.hasResourceProperties('AWS::ApiGateway::UsagePlan', { Throttle: { RateLimit: 3, BurstLimit: 7 } });
  });
});

describe('usage plan', () => {
  it('throttles and sets a quota for the stage', () => {
    template.resourceCountIs('AWS::ApiGateway::UsagePlan', 1);
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: 10, BurstLimit: 20 },
      Quota: { Limit: 100_000, Period: 'DAY' },
      ApiStages: [{ ApiId: { Ref: onlyId('AWS::ApiGateway::RestApi') }, Stage: { Ref: onlyId('AWS::ApiGateway::Stage') } }],
    });
  });

  it('binds the API key to the plan', () => {
    template.hasResourceProperties('AWS::ApiGateway::UsagePlanKey', {
      KeyId: { Ref: onlyId('AWS::ApiGateway::ApiKey') },
      KeyType: 'API_KEY',
      UsagePlanId: { Ref: onlyId('AWS::ApiGateway::UsagePlan') },
    });
  });

  it('takes the API key value from the usage-key secret by dynamic reference, never as a literal', () => {
    template.hasResourceProperties('AWS::ApiGateway::ApiKey', {
      Enabled: true,
      Value: { 'Fn::Join': ['', ['{{resolve:secretsmanager:', { Ref: logicalId(stack, stack.secrets.usageKey) }, ':SecretString:::}}']] },
    });
  });
});

describe('gateway responses', () => {
  it('defines exactly one response per entry of GATEWAY_RESPONSES', () => {
    template.resourceCountIs('AWS::ApiGateway::GatewayResponse', GATEWAY_RESPONSES.length);
  });

  it.each(GATEWAY_RESPONSES.map((d) => [d.type, d] as const))('answers %s with the contract’s JSON error, security headers and CORS from the authorizer', (type, d) => {
    const found = template.findResources('AWS::ApiGateway::GatewayResponse', { Properties: { ResponseType: type } });
    const [response] = Object.values(found) as Resource[];
    expect(response).toBeDefined();
    const props = (response as Resource).Properties;

    expect(props['StatusCode']).toBe(d.statusCode);
    const body = JSON.parse((props['ResponseTemplates'] as Record<string, string>)['application/json'] ?? '');
    expect(body).toEqual({ error: { code: d.code, message: ERRORS[d.code].message } });

    const headers = props['ResponseParameters'] as Record<string, string>;
    for (const [name, value] of Object.entries({ ...SECURITY_HEADERS, ...(d.headers ?? {}) })) {
      expect(headers[`gatewayresponse.header.${name}`]).toBe(`'${value}'`);
    }
    expect(headers['gatewayresponse.header.Access-Control-Allow-Origin']).toBe('context.authorizer.corsOrigin');
    expect(headers['gatewayresponse.header.Vary']).toBe("'Origin'");
  });

  it('answers a rejected session with 401 and throttling with 429 and Retry-After', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', { ResponseType: 'ACCESS_DENIED', StatusCode: '401' });
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'THROTTLED',
      StatusCode: '429',
      ResponseParameters: Match.objectLike({ 'gatewayresponse.header.Retry-After': "'1'" }),
    });
  });
});
