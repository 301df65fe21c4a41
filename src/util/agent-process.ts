// Process-level settings of a long-running agent, shared by every launcher (the agent's shebang, the local cluster,
// the startup check): an agent does a few small things per loop, so it needs neither Node's default thread pools
// nor a large young generation.

/**
 * Node flags of an agent process:
 * - --max-semi-space-size=1: a 1 MB young generation (default up to 16 MB); an idle agent allocates little.
 * - --optimize-for-size: V8 grows the old generation in smaller steps and collects it earlier (about 2 MB less
 *   resident heap at the same idle CPU).
 * - --v8-pool-size=1: one V8 background thread for concurrent GC and compilation instead of four.
 * Not used: --jitless and --lite-mode save ~7 MB RSS (mostly the compiler's pages of the node binary) at the same idle
 * CPU, but double the CPU of each REST request, and they remove WebAssembly, so anything that touches fetch (undici
 * compiles its HTTP parser to wasm) kills the process; --max-old-space-size would turn a leak into a crash of the
 * agent while PostgreSQL keeps running unsupervised.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--optimize-for-size', '--v8-pool-size=1'];

/**
 * Environment of an agent process, read by libuv and glibc at start-up (too late to set from JavaScript once an ES
 * module entry has been loaded: the module loader already started the thread pool):
 * - UV_THREADPOOL_SIZE=2: libuv's pool serves file system calls and DNS lookups; 2 instead of 4 threads, so one
 *   stuck call (a hung disk) still leaves one lane.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '2' };

/** The settings above that this process was started without (a flag counts as set whatever its value). */
export function missingAgentSettings(execArgv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].map((flag) => flag.split('=')[0]!.replace(/_/g, '-'));
  const missingFlags = AGENT_NODE_FLAGS.filter((flag) => !given.includes(flag.split('=')[0]!));
  const missingEnv = Object.entries(AGENT_ENV)
    .filter(([name]) => env[name] === undefined)
    .map(([name, value]) => `${name}=${value}`);
  return [...missingEnv, ...missingFlags];
}
