import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';

/**
 * The project's OpenAPI 3.1 document (docs/openapi.json) as a checker of real answers: every answer must be
 * documented for its path, method and status, its body must match the documented schema (JSON Schema
 * 2020-12, as OpenAPI 3.1 uses it) and every required documented header must be present and match.
 */

export const OPENAPI_PATH = resolve(__dirname, '../../docs/openapi.json');

type Json = Record<string, unknown>;
interface HeaderObject {
  required?: boolean;
  schema: Json;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, HeaderObject | { $ref: string }>;
  content?: Record<string, { schema: Json }>;
}
export interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject | { $ref: string }>; security?: unknown[] }>>;
  components: Json & { schemas: Record<string, Json> };
  [k: string]: unknown;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

export class OpenApiChecker {
  readonly doc: OpenApiDoc;
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();
  /** `METHOD path status` of every answer checked so far. */
  readonly seen = new Set<string>();

  constructor(doc: OpenApiDoc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as OpenApiDoc) {
    this.doc = doc;
    // strictSchema catches misspelt keywords in the document; formats are documentation only (patterns check).
    this.ajv = new Ajv2020({ allErrors: true, strict: true, validateFormats: false });
    this.ajv.addKeyword({ keyword: 'components' });
    this.ajv.addSchema({ $id: 'openapi', components: doc.components });
  }

  /** Follows a local `$ref` (`#/components/...`) in the document. */
  deref<T>(value: T | { $ref: string }): T {
    let v: unknown = value;
    for (let i = 0; i < 10 && typeof v === 'object' && v !== null && '$ref' in v; i++) {
      const ref = (v as { $ref: string }).$ref;
      if (!ref.startsWith('#/')) throw new Error(`non-local $ref ${ref}`);
      v = ref
        .slice(2)
        .split('/')
        .reduce<unknown>((node, key) => (node as Json | undefined)?.[key], this.doc);
      if (v === undefined) throw new Error(`unresolved $ref ${ref}`);
    }
    return v as T;
  }

  /** A validator for a schema that lives in the document (its `$ref`s resolve against the document). */
  validator(schema: Json, key: string): ValidateFunction {
    let fn = this.compiled.get(key);
    if (!fn) {
      fn = this.ajv.compile(rebase(schema));
      this.compiled.set(key, fn);
    }
    return fn;
  }

  /** Every documented (method, path, status) of the API. */
  documented(): string[] {
    return Object.entries(this.doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).flatMap(([method, op]) => Object.keys(op.responses).map((status) => `${method.toUpperCase()} ${path} ${status}`)),
    );
  }

  /** Problems of one answer against the document; an empty list when it conforms. */
  check(method: string, path: string, answer: Answer): string[] {
    const where = `${method} ${path} ${answer.status}`;
    this.seen.add(where);
    const op = this.doc.paths[path]?.[method.toLowerCase()];
    if (!op) return [`${method} ${path} is not documented`];
    const documented = op.responses[String(answer.status)];
    if (!documented) return [`${where}: status not documented (documented: ${Object.keys(op.responses).join(', ')})`];
    const response = this.deref(documented);
    const problems: string[] = [];
    for (const [name, h] of Object.entries(response.headers ?? {})) {
      const header = this.deref<HeaderObject>(h);
      const raw = answer.headers[name.toLowerCase()];
      const value = Array.isArray(raw) ? raw.join(', ') : raw;
      if (value === undefined) {
        if (header.required) problems.push(`${where}: missing header ${name}`);
        continue;
      }
      const validate = this.validator(header.schema, `${where} header ${name}`);
      if (!validate(value)) problems.push(`${where}: header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(validate.errors)}`);
    }
    const content = response.content;
    if (!content) {
      if (answer.text !== '') problems.push(`${where}: documented without a body, got ${answer.text.slice(0, 80)}`);
      return problems;
    }
    const type = String(answer.headers['content-type'] ?? '').split(';')[0]!;
    const media = content[type];
    if (!media) return [...problems, `${where}: content type ${type} not documented`];
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      return [...problems, `${where}: body is not JSON`];
    }
    const validate = this.validator(media.schema, `${where} body`);
    if (!validate(body)) problems.push(`${where}: body ${answer.text.slice(0, 200)}: ${this.ajv.errorsText(validate.errors)}`);
    return problems;
  }
}

/** Points the document's local `$ref`s (`#/components/...`) at the schema registered as `openapi`. */
function rebase(schema: Json): Json {
  return JSON.parse(JSON.stringify(schema).replaceAll('"$ref":"#/', '"$ref":"openapi#/')) as Json;
}
