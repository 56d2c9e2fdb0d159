import { ENV } from '../../lambdas/shared/config';
import { STATUS_CALLBACK_PATH } from '../../lib/routes';
import { logicalId, synthesize, type Synthesized } from './support';

/** Twilio's status callback: where the URL comes from, and that wiring it in makes no dependency cycle. */

const envOf = (s: Synthesized, fn: Parameters<typeof logicalId>[1]): Record<string, unknown> =>
  (s.template.toJSON()['Resources'][logicalId(s.stack, fn)] as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables;

describe('STATUS_CALLBACK_URL', () => {
  it('is publicBaseUrl plus the status path when configured, for the voice and status functions', () => {
    const s = synthesize({ config: { publicBaseUrl: 'https://voice.example.com' } });
    for (const fn of [s.stack.functions.handlers.voice, s.stack.functions.handlers.status]) {
      expect(envOf(s, fn)[ENV.STATUS_CALLBACK_URL]).toBe(`https://voice.example.com${STATUS_CALLBACK_PATH}`);
    }
    expect(s.template.toJSON()['Outputs']['StatusCallbackUrl'].Value).toBe('https://voice.example.com/api/twilio/status');
  });

  it('keeps a base path of publicBaseUrl', () => {
    const s = synthesize({ stage: 'staging', config: { publicBaseUrl: 'https://api.example.com/voice' } });
    expect(envOf(s, s.stack.functions.handlers.status)[ENV.STATUS_CALLBACK_URL]).toBe('https://api.example.com/voice/api/twilio/status');
  });

  it.each(['dev', 'prod'])('defaults to the %s stage URL plus the status path', (stage) => {
    const s = synthesize({ stage });
    const value = envOf(s, s.stack.functions.handlers.status)[ENV.STATUS_CALLBACK_URL] as { 'Fn::Join': [string, unknown[]] };
    const parts = value['Fn::Join'][1];
    expect(value['Fn::Join'][0]).toBe('');
    expect(parts[0]).toBe('https://');
    expect(parts).toContainEqual({ Ref: logicalId(s.stack, s.stack.api.restApi) });
    expect(parts).toContainEqual({ Ref: 'AWS::Region' });
    expect(parts[parts.length - 1]).toBe(`/${stage}${STATUS_CALLBACK_PATH}`);
    expect(envOf(s, s.stack.functions.handlers.voice)[ENV.STATUS_CALLBACK_URL]).toEqual(value);
    expect(s.template.toJSON()['Outputs']['StatusCallbackUrl'].Value).toEqual(value);
  });

  it('does not refer to the Stage resource (the stage depends on the functions through the deployment)', () => {
    const s = synthesize();
    const text = JSON.stringify(envOf(s, s.stack.functions.handlers.status));
    expect(text).not.toContain(logicalId(s.stack, s.stack.api.restApi.deploymentStage));
    expect(text).not.toContain(logicalId(s.stack, s.stack.api.restApi.latestDeployment!));
  });

  it('is not given to the token and hangup functions, nor the authorizer', () => {
    const s = synthesize();
    for (const fn of [s.stack.functions.authorizer, s.stack.functions.handlers.token, s.stack.functions.handlers.hangup]) {
      expect(envOf(s, fn)).not.toHaveProperty(ENV.STATUS_CALLBACK_URL);
    }
  });
});

/** Logical ids each resource refers to (Ref, Fn::GetAtt, Fn::Sub `${X}` / `${X.Attr}`, DependsOn). */
function edges(template: Record<string, unknown>): Map<string, Set<string>> {
  const resources = template['Resources'] as Record<string, { DependsOn?: string | string[] }>;
  const ids = new Set(Object.keys(resources));
  const graph = new Map<string, Set<string>>();
  const walk = (node: unknown, out: Set<string>): void => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, out));
    if (typeof node !== 'object' || node === null) return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'Ref' && typeof v === 'string' && ids.has(v)) out.add(v);
      else if (k === 'Fn::GetAtt' && Array.isArray(v) && ids.has(String(v[0]))) out.add(String(v[0]));
      else if (k === 'Fn::Sub') for (const m of JSON.stringify(v).matchAll(/\$\{([A-Za-z0-9]+)/g)) if (ids.has(m[1]!)) out.add(m[1]!);
      walk(v, out);
    }
  };
  for (const [id, resource] of Object.entries(resources)) {
    const out = new Set<string>();
    walk({ ...resource, DependsOn: undefined }, out);
    for (const d of [resource.DependsOn ?? []].flat()) out.add(d);
    graph.set(id, out);
  }
  return graph;
}

/** A dependency cycle among the template's resources, as a path of logical ids, or undefined. */
function findCycle(template: Record<string, unknown>): string[] | undefined {
  const graph = edges(template);
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const next of graph.get(id) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of graph.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('the template with the callback URL wired in', () => {
  it.each(['dev', 'staging', 'prod'])('has no dependency cycle among the %s resources (CloudFormation would refuse it)', (stage) => {
    const s = synthesize({ stage });
    expect(findCycle(s.template.toJSON() as Record<string, unknown>)).toBeUndefined();
  });

  it('finds a cycle when there is one (guards against a check that cannot fail)', () => {
    const s = synthesize();
    const json = s.template.toJSON() as { Resources: Record<string, { Properties: { Environment?: { Variables: Record<string, unknown> } } }> };
    const statusId = logicalId(s.stack, s.stack.functions.handlers.status);
    // What referring to the Stage resource (stage.stageName) would have written.
    json.Resources[statusId]!.Properties.Environment!.Variables[ENV.STATUS_CALLBACK_URL] = { Ref: logicalId(s.stack, s.stack.api.restApi.deploymentStage) };
    expect(findCycle(json as unknown as Record<string, unknown>)).toEqual(expect.arrayContaining([statusId]));
  });
});
