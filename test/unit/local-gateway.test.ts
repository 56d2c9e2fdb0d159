import { arnMatches } from '../../local/gateway';
import { send } from '../support/http';

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

describe('the local AWS stand-ins answer only this run’s own clients', () => {
  let stop: () => Promise<void>;
  let port: number;
  beforeAll(async () => {
    const { awsStandInServer, close, listen } = await import('../../local/http-util');
    const server = awsStandInServer('LOCALKEY123', (_req, res) => res.end('served'));
    port = await listen(server, 0);
    stop = () => close(server);
  });
  afterAll(() => stop());

  const call = (headers: Record<string, string>) => send(`http://127.0.0.1:${port}/`, { headers });
  const signed = (key: string) => `AWS4-HMAC-SHA256 Credential=${key}/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00`;

  test('serves a request signed with the run’s access key id', async () => {
    expect((await call({ Authorization: signed('LOCALKEY123') })).text).toBe('served');
  });

  test('rejects an unsigned request, another key and a foreign Host (DNS rebinding)', async () => {
    expect((await call({})).status).toBe(403);
    expect((await call({ Authorization: signed('OTHERKEY') })).status).toBe(403);
    expect((await call({ Authorization: signed('LOCALKEY123'), Host: 'attacker.example' })).status).toBe(403);
  });
});
