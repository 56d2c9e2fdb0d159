import { type IncomingMessage, type RequestListener, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Reads a request body up to `limit` bytes; resolves `undefined` when it is larger. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Listens on 127.0.0.1 (loopback only) and resolves the port. */
export function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/**
 * Wraps a stand-in AWS service so that only our own processes reach it: requests must be signed with this
 * run's random access key id (AWS SigV4 names it in `Authorization`), and carry `Host: 127.0.0.1:<port>`,
 * which also defeats DNS rebinding from a web page. Anything else gets 403 and never reaches the service.
 */
export function awsStandInServer(accessKeyId: string, inner: RequestListener): Server {
  const server: Server = createServer((req, res) => {
    const port = (server.address() as AddressInfo | null)?.port;
    const signed = (req.headers.authorization ?? '').includes(`Credential=${accessKeyId}/`);
    if (!signed || req.headers.host !== `127.0.0.1:${port}`) {
      res.writeHead(403, { 'Content-Type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify({ __type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' }));
      return;
    }
    inner(req, res);
  });
  return server;
}
