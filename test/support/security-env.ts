// The `security` jest project runs the long suites at full size (see test/support/scale.ts).
process.env['SECURITY_SCALE'] ??= 'full';
