import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { captureLogChunk } from './log-capture';

/** `npm start` as a child process (tsx local/start.ts) on a free port, with its whole output captured. */
export interface LocalProcess {
  readonly url: string;
  readonly port: number;
  readonly localDir: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(): Promise<number | null>;
}

const root = resolve(__dirname, '../..');

export async function startLocalProcess(env: Record<string, string> = {}): Promise<LocalProcess> {
  const localDir = mkdtempSync(join(tmpdir(), 'voice-token-local-'));
  const child: ChildProcess = spawn(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'local/start.ts')], {
    cwd: root,
    env: { ...process.env, PORT: '0', LOCAL_DIR: localDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  // Also into the whole-run log scan (test/support/log-scan.ts).
  child.stdout!.on('data', captureLogChunk);
  child.stderr!.on('data', captureLogChunk);
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`local mode did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(Number(m[1]));
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => rej(new Error(`local mode exited with ${code}:\n${out}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    localDir,
    output: () => out,
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res(child.exitCode);
        child.once('exit', (code) => res(code));
        child.kill('SIGINT');
      }),
  };
}
