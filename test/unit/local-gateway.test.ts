import { arnMatches } from '../../local/gateway';

describe('the local gateway matches authorizer policy resources like IAM', () => {
  const arn = 'arn:aws:execute-api:us-east-1:000000000000:local/local/POST/api/twilio/voice';

  test('matches a stage-wide wildcard across slashes', () => {
    expect(arnMatches('arn:aws:execute-api:us-east-1:000000000000:local/local/*', arn)).toBe(true);
  });

  test('matches an exact resource', () => {
    expect(arnMatches(arn, arn)).toBe(true);
  });

  test('rejects another stage, another API and a prefix without wildcard', () => {
    expect(arnMatches('arn:aws:execute-api:us-east-1:000000000000:local/prod/*', arn)).toBe(false);
    expect(arnMatches('arn:aws:execute-api:us-east-1:000000000000:other/local/*', arn)).toBe(false);
    expect(arnMatches('arn:aws:execute-api:us-east-1:000000000000:local/local/POST', arn)).toBe(false);
  });

  test('matches wildcards in the middle', () => {
    expect(arnMatches('arn:aws:execute-api:*:*:local/local/*/api/twilio/*', arn)).toBe(true);
    expect(arnMatches('arn:aws:execute-api:*:*:local/local/GET/*', arn)).toBe(false);
  });
});
