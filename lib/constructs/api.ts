import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { ServiceConfig } from '../config';
import { GATEWAY_RESPONSES, gatewayResponseHeaders, gatewayResponseTemplate } from '../gateway-responses';
import { RESOURCE_PATHS, ROUTES, type FunctionName, type Route } from '../routes';
import { retentionFor } from './base-function';

type ModelName = NonNullable<Route['model']>;

/**
 * JSON Schemas (draft 4, the version API Gateway supports) for bodies API Gateway can check before a
 * Lambda runs. There is deliberately no `TokenRequest` schema: the `/token` body may be absent, and
 * API Gateway's body validation rejects an absent body against an object schema, so the token handler
 * validates that body itself. The handlers re-validate every body anyway (zod), so these are a cheap
 * first filter, not the only check.
 */
export const REQUEST_SCHEMAS: Readonly<Partial<Record<ModelName, apigateway.JsonSchema>>> = {
  VoiceRequest: {
    schema: apigateway.JsonSchemaVersion.DRAFT4,
    title: 'VoiceRequest',
    type: apigateway.JsonSchemaType.OBJECT,
    required: ['to'],
    additionalProperties: false,
    properties: { to: { type: apigateway.JsonSchemaType.STRING, pattern: '^\\+[1-9][0-9]{6,14}$' } },
  },
  HangupRequest: {
    schema: apigateway.JsonSchemaVersion.DRAFT4,
    title: 'HangupRequest',
    type: apigateway.JsonSchemaType.OBJECT,
    required: ['callSid'],
    additionalProperties: false,
    properties: { callSid: { type: apigateway.JsonSchemaType.STRING, pattern: '^CA[0-9a-f]{32}$' } },
  },
};

/**
 * Access-log line, one JSON object per request. Bodies and headers are never logged; `user` is the
 * authorizer's principal id (the Supabase user id), `ip` is API Gateway's view of the source address.
 */
export const ACCESS_LOG_FIELDS: Readonly<Record<string, string>> = {
  requestId: apigateway.AccessLogField.contextRequestId(),
  ip: apigateway.AccessLogField.contextIdentitySourceIp(),
  caller: apigateway.AccessLogField.contextIdentityCaller(),
  user: apigateway.AccessLogField.contextAuthorizerPrincipalId(),
  requestTime: apigateway.AccessLogField.contextRequestTime(),
  httpMethod: apigateway.AccessLogField.contextHttpMethod(),
  resourcePath: apigateway.AccessLogField.contextResourcePath(),
  status: apigateway.AccessLogField.contextStatus(),
  protocol: apigateway.AccessLogField.contextProtocol(),
  responseLength: apigateway.AccessLogField.contextResponseLength(),
  errorType: apigateway.AccessLogField.contextErrorResponseType(),
  authorizerError: apigateway.AccessLogField.contextAuthorizerError(),
  integrationError: apigateway.AccessLogField.contextIntegrationErrorMessage(),
};

export interface ApiProps {
  readonly config: ServiceConfig;
  readonly authorizer: lambda.IFunction;
  /** Route handlers by the names used in `lib/routes.ts`. */
  readonly handlers: Readonly<Record<FunctionName, lambda.IFunction>>;
  /** Secret holding the usage-plan API key value (the authorizer returns the same value). */
  readonly usageKeySecret: secretsmanager.ISecret;
}

/**
 * API Gateway's key for one method's deployment settings: `/<resource path>/<METHOD>` (CDK escapes it into
 * the stage's `MethodSettings`), e.g. `/api/twilio/status/POST`.
 */
export const methodSettingsKey = (route: Pick<Route, 'method' | 'path'>): string => `${route.path}/${route.method}`;

/**
 * The REST API, built from the route table: every browser route behind the Supabase REQUEST authorizer
 * and the usage plan, an unauthenticated `OPTIONS` per browser path answered by the route's own function
 * (its CORS middleware does the exact allowlist; `defaultCorsPreflightOptions` cannot refuse a foreign
 * origin), Twilio's status callback without authorizer or API key but with its own method throttling, the
 * contract's gateway responses, JSON access logs, tracing and stage throttling.
 */
export class Api extends Construct {
  public readonly restApi: apigateway.RestApi;
  public readonly accessLogs: logs.LogGroup;
  public readonly usagePlan: apigateway.UsagePlan;
  /** Stage URL without a trailing slash: append a route path such as `/api/twilio/token`. */
  public readonly url: string;
  /**
   * The same URL built from the API id and the configured stage name rather than the Stage resource, for
   * the functions' environment: the stage depends on the deployment, the deployment on the methods, the
   * methods on the functions, so a function referring to the Stage would close a dependency cycle.
   */
  public readonly baseUrlForFunctions: string;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const { config } = props;

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: retentionFor(config.logRetentionDays),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.restApi = new apigateway.RestApi(this, 'RestApi', {
      restApiName: `${Stack.of(this).stackName}-api`,
      description: 'Server-side Twilio Voice token service',
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      // The authorizer returns the usage-plan key, so browsers never carry an API key.
      apiKeySourceType: apigateway.ApiKeySourceType.AUTHORIZER,
      // Execution logging needs the account-level CloudWatch role (one per account and region). Retained
      // on teardown because other APIs in the account may depend on the same setting.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: config.stageName,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS)),
        throttlingRateLimit: config.throttle.rateLimit,
        throttlingBurstLimit: config.throttle.burstLimit,
        tracingEnabled: true,
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        // Full request/response logging would write session tokens and phone numbers to the logs.
        dataTraceEnabled: false,
        metricsEnabled: true,
        // Twilio's callback has no usage plan (no API key), so it gets its own method throttle instead. A
        // method's settings replace the stage-wide ones for that method, so the logging settings are repeated.
        methodOptions: Object.fromEntries(
          ROUTES.filter((r) => !r.authorized).map((r) => [
            methodSettingsKey(r),
            {
              throttlingRateLimit: config.statusThrottle.rateLimit,
              throttlingBurstLimit: config.statusThrottle.burstLimit,
              loggingLevel: apigateway.MethodLoggingLevel.ERROR,
              dataTraceEnabled: false,
              metricsEnabled: true,
            },
          ]),
        ),
      },
    });
    const cloudWatchRole = this.restApi.node.findChild('CloudWatchRole');
    Validations.of(cloudWatchRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        'The account-level role API Gateway uses to write execution logs for every API in the region; AWS maintains this policy for exactly that purpose, and a hand-written copy could not be narrower without breaking other APIs.',
    });
    const stage = this.restApi.deploymentStage;
    Validations.of(stage).acknowledge({
      id: 'AwsSolutions-APIG3',
      reason:
        'No web ACL yet: in this design WAF is an optional coarse backstop (its rate rules cannot go below 10 requests per minute). The exact limits are the per-IP and per-user DynamoDB counters, backed by the usage plan and stage throttling.',
    });
    // RestApi always adds an `Endpoint` output (the same URL with a trailing slash); the stack's single
    // ApiUrl output replaces it, so operators do not see two spellings of one URL.
    this.restApi.node.tryRemoveChild('Endpoint');
    const host = `https://${this.restApi.restApiId}.execute-api.${Stack.of(this).region}.${Stack.of(this).urlSuffix}`;
    this.url = `${host}/${stage.stageName}`;
    this.baseUrlForFunctions = `${host}/${config.stageName}`;

    const authorizer = new apigateway.RequestAuthorizer(this, 'Authorizer', {
      handler: props.authorizer,
      // Only Authorization: identity sources are mandatory, so adding Origin would turn every request
      // without one into a 401. The cache key is therefore the token alone, and a cached decision keeps
      // the `corsOrigin` of the request that produced it: a later request with the same token from another
      // origin gets a CORS header naming the first origin, which its browser rejects. Nothing leaks to a
      // foreign site; at worst an allowed origin cannot read a cached 401 until the TTL runs out.
      identitySources: [apigateway.IdentitySource.header('Authorization')],
      resultsCacheTtl: Duration.seconds(config.authorizerCacheTtlSeconds),
    });

    // Parameters too: none are declared as required today, so this costs nothing, and any added later
    // is enforced (cdk-nag AwsSolutions-APIG2 also asks for both).
    const validator = this.restApi.addRequestValidator('RequestValidator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const models = new Map<ModelName, apigateway.Model>();
    const modelFor = (name: ModelName | undefined): apigateway.Model | undefined => {
      const schema = name && REQUEST_SCHEMAS[name];
      if (!name || !schema) return undefined;
      if (!models.has(name)) {
        models.set(name, this.restApi.addModel(name, { modelName: name, contentType: 'application/json', schema }));
      }
      return models.get(name);
    };

    // Test-invoke permissions are for the console's "Test" button; leaving them out keeps each function's
    // resource policy to the methods that really call it.
    const integrations = new Map<FunctionName, apigateway.LambdaIntegration>();
    const integrationFor = (fn: FunctionName): apigateway.LambdaIntegration => {
      let integration = integrations.get(fn);
      if (!integration) {
        integration = new apigateway.LambdaIntegration(props.handlers[fn], { allowTestInvoke: false });
        integrations.set(fn, integration);
      }
      return integration;
    };

    for (const route of ROUTES) {
      const resource = this.restApi.root.resourceForPath(route.path);
      if (!route.authorized) {
        // Twilio's status callback: Twilio can carry neither a Supabase session nor our usage key, and no
        // browser may call it (no OPTIONS). The function verifies X-Twilio-Signature on every request.
        const callback = resource.addMethod(route.method, integrationFor(route.fn), {
          authorizationType: apigateway.AuthorizationType.NONE,
          apiKeyRequired: false,
        });
        const reason =
          "Called by Twilio, which cannot present a Supabase session or an API key: Twilio proves each request with X-Twilio-Signature (HMAC-SHA1 of the exact URL and parameters under the account's auth token), which the function checks before reading anything, answering 403 otherwise; the method has its own throttle, and forged requests a per-IP limit.";
        Validations.of(callback).acknowledge({ id: 'AwsSolutions-APIG4', reason });
        Validations.of(callback).acknowledge({ id: 'AwsSolutions-COG4', reason });
        continue;
      }
      const model = modelFor(route.model);
      const query = route.query ?? [];
      const method = resource.addMethod(route.method, integrationFor(route.fn), {
        authorizer,
        authorizationType: apigateway.AuthorizationType.CUSTOM,
        apiKeyRequired: true,
        ...(model ? { requestValidator: validator, requestModels: { 'application/json': model } } : {}),
        // Required query parameters: API Gateway refuses a request without them before any Lambda runs.
        ...(query.length ? { requestValidator: validator, requestParameters: Object.fromEntries(query.map((q) => [`method.request.querystring.${q}`, true])) } : {}),
      });
      Validations.of(method).acknowledge({
        id: 'AwsSolutions-COG4',
        reason: 'Users sign in with Supabase, not Cognito; the Lambda REQUEST authorizer verifies the Supabase session on this method.',
      });
    }

    for (const path of RESOURCE_PATHS) {
      const route = ROUTES.find((r) => r.path === path && r.authorized);
      if (!route) continue;
      const preflight = this.restApi.root.resourceForPath(path).addMethod('OPTIONS', integrationFor(route.fn), {
        authorizationType: apigateway.AuthorizationType.NONE,
        apiKeyRequired: false,
      });
      const reason =
        'CORS preflight: browsers send OPTIONS without credentials, so it cannot be authorized. The function answers it from the exact origin allowlist (403 for others) and does nothing else.';
      Validations.of(preflight).acknowledge({ id: 'AwsSolutions-APIG4', reason });
      Validations.of(preflight).acknowledge({ id: 'AwsSolutions-COG4', reason });
    }

    for (const d of GATEWAY_RESPONSES) {
      this.restApi.addGatewayResponse(`${pascalCase(d.type)}Response`, {
        type: apigateway.ResponseType.of(d.type),
        statusCode: d.statusCode,
        responseHeaders: gatewayResponseHeaders(d),
        templates: { 'application/json': gatewayResponseTemplate(d) },
      });
    }

    // CloudFormation resolves the dynamic reference at deploy time, so the template holds
    // `{{resolve:secretsmanager:…}}`, never the value (unsafeUnwrap only turns the reference into a string).
    const apiKey = new apigateway.ApiKey(this, 'UsageKey', {
      description: 'Usage-plan key supplied by the authorizer; its value lives in the UsageKey secret',
      value: props.usageKeySecret.secretValue.unsafeUnwrap(),
      enabled: true,
    });
    this.usagePlan = this.restApi.addUsagePlan('UsagePlan', {
      description: 'Stage-wide throttle and quota, a coarse backstop behind the exact application limits',
      throttle: { rateLimit: config.throttle.rateLimit, burstLimit: config.throttle.burstLimit },
      quota: { limit: config.quota.limit, period: apigateway.Period[config.quota.period] },
      apiStages: [{ api: this.restApi, stage }],
    });
    this.usagePlan.addApiKey(apiKey);
  }
}

/** `DEFAULT_4XX` → `Default4xx`, for stable construct ids. */
function pascalCase(s: string): string {
  return s
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}
