// Three projects: fast unit tests, CDK template tests, and end-to-end tests over real HTTP.
// middy and jose are ESM-only, so @swc/jest compiles our TypeScript and those packages to CommonJS.
const transform = { '^.+\\.(t|j|mj)s$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] };
const common = {
  testEnvironment: 'node',
  transform,
  transformIgnorePatterns: ['/node_modules/(?!(@middy|jose)/)'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  setupFiles: ['<rootDir>/test/support/env.ts', '<rootDir>/test/support/log-capture-setup.ts'],
  // Every structured log line of the run is scanned afterwards for tokens, secrets and phone numbers.
  globalSetup: '<rootDir>/test/support/log-scan-setup.ts',
  globalTeardown: '<rootDir>/test/support/log-scan-teardown.ts',
};
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'infra', testMatch: ['<rootDir>/test/infra/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
    // Real Chromium (Debian's, driven by playwright-core) against local mode: skipped if /usr/bin/chromium is absent.
    { ...common, displayName: 'browser', testMatch: ['<rootDir>/test/browser/**/*.test.ts'] },
    // The long security suites at full size (npm run test:security); npm test runs the same files, smaller.
    {
      ...common,
      displayName: 'security',
      setupFiles: [...common.setupFiles, '<rootDir>/test/support/security-env.ts'],
      testMatch: ['<rootDir>/test/unit/security-*.test.ts', '<rootDir>/test/e2e/security-*.test.ts'],
    },
  ],
};
