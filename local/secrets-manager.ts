import type { Server } from 'node:http';
import { awsStandInServer, readBody } from './http-util';

/**
 * A loopback stand-in for Secrets Manager's GetSecretValue (AWS JSON 1.1 protocol), so the functions use
 * the real AWS SDK client, pointed here with AWS_ENDPOINT_URL_SECRETS_MANAGER. Serves in-memory values, and
 * only to requests signed with this run's access key id.
 */
export function secretsManagerStandIn(values: Map<string, string>, accessKeyId: string): Server {
  return awsStandInServer(accessKeyId, (req, res) => {
    void (async () => {
      const body = await readBody(req, 64 * 1024);
      const target = req.headers['x-amz-target'];
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      if (req.method !== 'POST' || target !== 'secretsmanager.GetSecretValue' || !body) {
        return reply(400, { __type: 'InvalidRequestException', message: 'Only GetSecretValue is supported by the local stand-in.' });
      }
      let id: unknown;
      try {
        id = (JSON.parse(body.toString('utf8')) as { SecretId?: unknown }).SecretId;
      } catch {
        return reply(400, { __type: 'InvalidRequestException', message: 'Malformed request.' });
      }
      const value = typeof id === 'string' ? values.get(id) : undefined;
      if (value === undefined) return reply(400, { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
      return reply(200, {
        ARN: `arn:aws:secretsmanager:us-east-1:000000000000:secret:${String(id)}`,
        Name: id,
        SecretString: value,
        VersionId: '00000000-0000-4000-8000-000000000000',
        VersionStages: ['AWSCURRENT'],
        CreatedDate: 0,
      });
    })();
  });
}
