// Lint rules: type-aware checks for promise misuse, the formatter, import cycles and the layer rules of
// docs/architecture.md. Layer rules are resolved paths (import-x no-restricted-paths), so they hold at any depth.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const nodeAndNpm = ['node:*', 'pg', 'pino', 'yaml', 'zod', 'commander', 'prom-client', 'libpg-query'];

/** A layer may import only itself and the listed layers (paths relative to src/). */
const layer = (target, allowed, message) => ({
  target: `./src/${target}`,
  from: './src',
  except: [`./${target}`, ...allowed.map((path) => `./${path}`)],
  message,
});

const layerZones = [
  layer('core', [], 'core/ is pure: it imports only core/.'),
  layer('util', [], 'util/ is below every layer: it imports nothing from src/.'),
  layer('dcs', ['core', 'util'], 'dcs/ may import core/ and util/ only.'),
  layer('postgres', ['core', 'util'], 'postgres/ may import core/ and util/ only.'),
  layer('config', ['core', 'util'], 'config/ may import core/ and util/ only.'),
  layer('obs', ['core', 'util'], 'obs/ may import core/ and util/ only.'),
  layer('peers', ['core', 'util'], 'peers/ may import core/ and util/ only.'),
  layer('agent', ['core', 'util'], 'agent/ receives adapters through core/ports.ts.'),
  layer('api', ['core', 'util', 'agent/snapshot.ts', 'agent/member-record.ts'], 'api/ reads the agent snapshot and the Dcs port only.'),
  layer('proxy', ['core', 'util', 'config/proxy-config.ts'], 'proxy/ receives the DCS and the probe from its composition root.'),
  layer('cli', ['core', 'util'], 'cli/ reads the cluster through the Dcs port and mutates through HTTP.'),
  layer(
    'fence',
    ['core', 'util', 'postgres/postmaster-pid.ts'],
    'fence/ is a process of its own: it reads postmaster.pid and signals processes, nothing else.',
  ),
  {
    target: ['./src/api', './src/proxy', './src/cli'],
    from: './src/core/rules',
    message: 'HA rules belong to the agent: share what you need through a core module that is not a rule.',
  },
  {
    target: [
      './src/agent',
      './src/api',
      './src/chaos',
      './src/cli',
      './src/config',
      './src/core',
      './src/obs',
      './src/peers',
      './src/proxy',
      './src/util',
      './src/local',
      './src/dcs/memory',
      './src/postgres/memory',
      './src/postgres/!(controller).ts',
    ],
    from: ['./src/dcs/etcd', './src/postgres/controller.ts'],
    message: 'Real adapters are constructed in bin/ only, through src/bin/adapters.ts (local/ uses that factory too).',
  },
  {
    target: ['./src/!(bin)/**', './src/*.ts'],
    from: './src/bin',
    except: ['./adapters.ts'],
    message: 'bin/ is a composition root: only its adapter factory may be imported.',
  },
  { target: './src', from: './test', message: 'src/ never imports test/.' },
  { target: './src', from: './bench', message: 'src/ never imports bench/.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
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
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: nodeAndNpm, message: 'core/ is pure: no Node.js or npm modules.' }] }],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'core/ gets time from the Observation.' },
        { object: 'Math', property: 'random', message: 'core/ is deterministic.' },
      ],
    },
  },
  {
    files: ['src/agent/**/*.ts', 'src/api/**/*.ts', 'src/cli/**/*.ts', 'src/proxy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['pg'], message: 'Only postgres/ talks to PostgreSQL.' }] }],
    },
  },
  {
    files: ['src/proxy/routing.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: nodeAndNpm, message: 'routing is pure: it imports only core/ types.' }] }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'routing gets time from its input.' }],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'src/dcs/conformance.ts', 'src/postgres/conformance.ts'],
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
