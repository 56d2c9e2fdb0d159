#!/usr/bin/env node
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';

// Every stage of cdk.json (`voiceTokenStages`), or only the one `-c stage=<stage>` names: a stack per stage.
// Config errors are the operator's to fix: print the message (it names the key and the fix), not a stack trace.
try {
  buildApp().app.synth();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}
