/**
 * AWS SDK client options: every attempt is bounded, so a DynamoDB or Secrets Manager that hangs fails closed
 * (503) well inside the functions' timeouts (authorizer 5 s, handlers 10 s) instead of the function timing out.
 * Two attempts of at most 2 s each (plus the SDK's short backoff) keep one retry for a transient error.
 * A module of its own so the authorizer can use it without importing the handlers' adapters.
 */
export const AWS_CLIENT_OPTIONS = {
  maxAttempts: 2,
  // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes, and keeps waiting.
  requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true },
} as const;
