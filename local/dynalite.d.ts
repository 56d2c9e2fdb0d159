declare module 'dynalite' {
  import type { Server } from 'node:http';
  /** Embedded DynamoDB (https://github.com/architect/dynalite); in memory unless `path` is given. */
  export default function dynalite(options?: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number; path?: string }): Server;
}
