import tseslint from 'typescript-eslint';
import security from 'eslint-plugin-security';

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', '.local/**', 'coverage/**', 'test-artifacts/**', 'jest.config.js', 'eslint.config.mjs'] },
  ...tseslint.configs.recommended,
  security.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Object keys here come from our own route table and typed config, never from user input.
      'security/detect-object-injection': 'off',
    },
  },
  {
    files: ['test/**/*.ts', 'local/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      // Tests and the local stand-ins read files under paths they build themselves.
      'security/detect-non-literal-fs-filename': 'off',
    },
  },
  // The demo page's plain browser JavaScript: outside the TypeScript project, so no type-aware rules.
  { files: ['local/demo/**/*.js'], ...tseslint.configs.disableTypeChecked },
);
