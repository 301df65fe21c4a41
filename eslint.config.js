// Lint rules: type-aware checks for promise misuse plus the layer rules of docs/architecture.md.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeAndNpm = ['node:*', 'pg', 'pino', 'yaml', 'zod', 'commander', 'prom-client'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // Port implementations are async by contract even when an adapter (memory DCS) answers synchronously.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports only.' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: [...nodeAndNpm, '../*/**', '!../core/**'], message: 'core/ is pure: it imports only core/.' }] },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'core/ gets time from the Observation.' },
        { object: 'Math', property: 'random', message: 'core/ is deterministic.' },
      ],
    },
  },
  {
    files: ['src/agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../dcs/*', '../postgres/*', '../api/*', '../cli/*', 'pg'],
              message: 'agent/ receives adapters through core/ports.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/dcs/**/*.ts', 'src/postgres/**/*.ts', 'src/config/**/*.ts', 'src/obs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../agent/*', '../api/*', '../cli/*', '../bin/*'], message: 'adapters must not import higher layers.' }] },
      ],
    },
  },
  {
    files: ['src/proxy/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../dcs/*', '../postgres/*', '../agent/*', '../api/*', '../cli/*', '../bin/*', 'pg'],
              message: 'proxy/ receives the DCS and the probe from its composition root.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/proxy/routing.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: [...nodeAndNpm, '../*/**', '!../core/**'], message: 'routing is pure: it imports only core/ types.' }] },
      ],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'routing gets time from its input.' }],
    },
  },
  {
    files: ['src/api/**/*.ts', 'src/cli/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../postgres/*', 'pg'], message: 'api/ and cli/ never touch PostgreSQL directly.' }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'src/dcs/conformance.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
      // node:test's describe/it return promises the runner tracks itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', name: ['describe', 'it', 'test', 'before', 'after'], package: 'node:test' }] },
      ],
    },
  },
);
