// Bundles each process entry (CLI, agent, fence, config worker) into one file in place of tsc's output, so a process
// starts by reading one module instead of resolving and linking about 330 (our modules, zod's 95, pg, yaml, commander):
// `pgwarden list` took 0.62 s of CPU unbundled and 0.33 s bundled on this machine, and every agent and fence start pays
// the same. The bundles stay at dist/src/bin/, so every path they compute from import.meta.url is unchanged.
// tsc still builds every module (tests import them one by one) and type-checks; esbuild only joins.
import { build } from 'esbuild';

const ENTRIES = ['pgwarden', 'agent', 'fence', 'config-worker'];

await build({
  entryPoints: ENTRIES.map((name) => `src/bin/${name}.ts`),
  outdir: 'dist/src/bin',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // Loaded from their own directories at run time: libpg-query reads its WebAssembly file beside itself, pg-native is
  // pg's optional native binding (absent), playwright-core only runs in tests.
  external: ['libpg-query', 'pg-native', 'playwright-core'],
  // CommonJS dependencies bundled into an ES module still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __pgwardenCreateRequire } from 'node:module'; const require = __pgwardenCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
