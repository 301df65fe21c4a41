// Every live process of a local cluster directory, found from the disk and /proc rather than from a state file: pid files
// (postmaster.pid, the fence's, agent.pid, proxy.pid, etcd pid files) and command lines that reference the directory,
// so a member restarted by hand, or a start that was interrupted before it wrote its state, is still found and stopped.
import { readdirSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fencePidPathOf } from '../fence/fence-paths.js';
import { postmasterPidFrom } from '../postgres/postmaster-pid.js';
import { isAlive, killPid, stopPid } from './process.js';

export type ClusterProcessKind = 'supervisor' | 'proxy' | 'agent' | 'postgres' | 'fence' | 'etcd';

export interface ClusterProcess {
  readonly pid: number;
  readonly kind: ClusterProcessKind;
  /** node1, etcd2, proxy1; `local` for a `pgwarden local start` supervising the cluster. */
  readonly member: string;
  /** How it was found: its pid file, or its command line naming the directory. */
  readonly foundBy: 'pid file' | 'command line';
}

/** File names of the pid files the local cluster writes beside each process's data (the others are PostgreSQL's and the fence's). */
export const AGENT_PID_FILE = 'agent.pid';
export const PROXY_PID_FILE = 'proxy.pid';
export const etcdPidFileOf = (etcdDir: string, member: string): string => join(etcdDir, `${member}.pid`);

async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0]?.trim() ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function commandLineOf(pid: number): Promise<string[] | undefined> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (raw === undefined || raw === '') return undefined;
  return raw.replace(/\0$/, '').split('\0');
}

/** What kind of cluster process a command line is; undefined for anything else (a `tail -f` of a log is no member). */
export function classifyCommandLine(argv: readonly string[]): ClusterProcessKind | undefined {
  const program = basename(argv[0] ?? '');
  if (program === 'postgres' || program === 'postmaster') return 'postgres';
  if (program === 'etcd') return 'etcd';
  if (argv.some((arg) => arg.endsWith('/agent.js') || arg === 'agent.js')) return 'agent';
  if (argv.some((arg) => arg.endsWith('/fence.js') || arg === 'fence.js')) return 'fence';
  const cli = argv.findIndex((arg) => arg.endsWith('pgwarden.js') || basename(arg) === 'pgwarden');
  if (cli === -1) return undefined;
  const verbs = argv.slice(cli + 1).filter((arg) => !arg.startsWith('-'));
  if (verbs[0] === 'proxy') return 'proxy';
  // `pgwarden local start` (or bare `local`) supervises a cluster; `local status`, `stop`... are short-lived commands.
  if (verbs[0] === 'local' && (verbs[1] === undefined || verbs[1] === 'start' || !isLocalVerb(verbs[1]))) return 'supervisor';
  return undefined;
}

const isLocalVerb = (word: string): boolean => ['stop', 'status', 'kill', 'restart'].includes(word);

/** The member a path inside the cluster directory belongs to (node1/data -> node1, etcd/etcd2 -> etcd2). */
export function memberOfPath(dir: string, path: string): string | undefined {
  const inside = relative(dir, path);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) return inside === '' ? 'local' : undefined;
  const [first, second] = inside.split(sep);
  if (first === 'etcd' && second !== undefined) return second.replace(/\.(pid|log)$/, '');
  // Only the layout of a local cluster counts: with --dir /tmp, another cluster in /tmp/pgw-x/node1 is not ours.
  return first !== undefined && MEMBER_DIRECTORY.test(first) ? first : undefined;
}

/** The directories of a local cluster's members: node1..., proxy1... (etcd members live under etcd/). */
const MEMBER_DIRECTORY = /^(node|proxy)\d+$/;

/** The member a command line refers to inside `dir` (arguments relative to the process's working directory count too). */
function memberOfCommandLine(dir: string, argv: readonly string[], cwd: string | undefined): string | undefined {
  for (const arg of argv.slice(1)) {
    for (const part of arg.split('=')) {
      if (part === '' || (!isAbsolute(part) && cwd === undefined)) continue;
      if (!part.includes('/') && !part.startsWith('.')) continue;
      const member = memberOfPath(dir, isAbsolute(part) ? part : resolve(cwd!, part));
      if (member !== undefined) return member;
    }
  }
  return undefined;
}

/** This process and its ancestors (npm, the shell): they may name the directory too and are never cluster members. */
async function selfAndAncestors(): Promise<Set<number>> {
  const pids = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Fields after the command name (which may hold spaces and parentheses): state, then the parent pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!Number.isInteger(parent)) break;
    pid = parent;
  }
  return pids;
}

/** Pid files of the cluster: each one names a process of a known kind, checked against /proc (a reused pid is not ours). */
async function pidFileCandidates(dir: string): Promise<{ pid: number; kind: ClusterProcessKind; member: string }[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: { pid: number; kind: ClusterProcessKind; member: string }[] = [];
  const add = async (path: string, kind: ClusterProcessKind, member: string): Promise<void> => {
    const pid = await readPidFile(path);
    if (pid !== undefined) found.push({ pid, kind, member });
  };
  for (const entry of entries) {
    if (!entry.isDirectory() || !(entry.name === 'etcd' || MEMBER_DIRECTORY.test(entry.name))) continue;
    const path = join(dir, entry.name);
    if (entry.name === 'etcd') {
      for (const file of await readdir(path).catch(() => []))
        if (file.endsWith('.pid')) await add(join(path, file), 'etcd', file.slice(0, -'.pid'.length));
      continue;
    }
    await add(join(path, AGENT_PID_FILE), 'agent', entry.name);
    await add(join(path, PROXY_PID_FILE), 'proxy', entry.name);
    await add(fencePidPathOf(join(path, 'data')), 'fence', entry.name);
    const postmaster = postmasterPidFrom(await readFile(join(path, 'data', 'postmaster.pid'), 'utf8').catch(() => ''));
    if (postmaster !== undefined) found.push({ pid: postmaster, kind: 'postgres', member: entry.name });
  }
  return found;
}

/** Every live process of the cluster in `dir`, one entry per pid, sorted by member then kind. */
export async function findClusterProcesses(directory: string): Promise<ClusterProcess[]> {
  const dir = resolve(directory);
  const excluded = await selfAndAncestors();
  const found = new Map<number, ClusterProcess>();
  for (const candidate of await pidFileCandidates(dir)) {
    if (excluded.has(candidate.pid) || !isAlive(candidate.pid)) continue;
    const argv = await commandLineOf(candidate.pid);
    // A pid file left behind by a process that is gone, whose pid now belongs to something else, is not ours.
    if (argv === undefined || classifyCommandLine(argv) !== candidate.kind) continue;
    found.set(candidate.pid, { ...candidate, foundBy: 'pid file' });
  }
  for (const name of await readdir('/proc').catch(() => [])) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || excluded.has(pid) || found.has(pid)) continue;
    const argv = await commandLineOf(pid);
    if (argv === undefined) continue;
    const kind = classifyCommandLine(argv);
    if (kind === undefined) continue;
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
    // A supervisor started without --dir runs on the default directory of its working directory.
    const member =
      memberOfCommandLine(dir, argv, cwd) ??
      (kind === 'supervisor' && cwd !== undefined && !argv.includes('--dir') && resolve(cwd, '.pgwarden/local') === dir
        ? 'local'
        : undefined);
    if (member === undefined) continue;
    // A supervisor names the directory itself (--dir); a member process names its own subdirectory.
    found.set(pid, { pid, kind, member: kind === 'supervisor' ? 'local' : member, foundBy: 'command line' });
  }
  return [...found.values()].sort((a, b) => a.member.localeCompare(b.member) || a.kind.localeCompare(b.kind) || a.pid - b.pid);
}

/** The PostgreSQL member names of a cluster directory (node1, node2...), from its node directories. */
export function memberNamesOf(directory: string): string[] {
  try {
    return readdirSync(directory, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && /^node\d+$/.test(entry.name))
      .map((entry) => entry.name)
      .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  } catch {
    return [];
  }
}

/** Stop order: whoever restarts others first (a supervisor, the agents), PostgreSQL after its agent, etcd last. */
const STOP_ORDER: readonly { kind: ClusterProcessKind; signal: NodeJS.Signals; graceMs: number }[] = [
  // A foreground `local start` stops its own cluster on SIGTERM: give it the time agents need to stop PostgreSQL.
  { kind: 'supervisor', signal: 'SIGTERM', graceMs: 60_000 },
  { kind: 'proxy', signal: 'SIGTERM', graceMs: 10_000 },
  // An agent stops its PostgreSQL (fast shutdown) before it exits.
  { kind: 'agent', signal: 'SIGTERM', graceMs: 30_000 },
  // SIGINT = fast shutdown.
  { kind: 'postgres', signal: 'SIGINT', graceMs: 10_000 },
  { kind: 'fence', signal: 'SIGTERM', graceMs: 2000 },
  { kind: 'etcd', signal: 'SIGTERM', graceMs: 5000 },
];

/**
 * Stops every process of the cluster in `dir`, kind by kind (escalating to SIGKILL after each kind's grace period), and
 * looks again after each step for processes that appeared meanwhile. Returns what it stopped and what survived.
 */
export async function stopClusterProcesses(
  dir: string,
  report: (process: ClusterProcess) => void = () => undefined,
): Promise<{ readonly stopped: ClusterProcess[]; readonly survivors: ClusterProcess[] }> {
  const stopped: ClusterProcess[] = [];
  for (const step of STOP_ORDER) {
    const targets = (await findClusterProcesses(dir)).filter((process) => process.kind === step.kind);
    await Promise.all(
      targets.map(async (target) => {
        report(target);
        await stopPid(target.pid, { signal: step.signal, graceMs: step.graceMs });
        stopped.push(target);
      }),
    );
  }
  // Anything left (started while we stopped the rest): SIGKILL, then look once more.
  const left = await findClusterProcesses(dir);
  for (const target of left) killPid(target.pid, 'SIGKILL');
  if (left.length > 0) await new Promise((resolveWait) => setTimeout(resolveWait, 500));
  const survivors = (await findClusterProcesses(dir)).filter((process) => isAlive(process.pid));
  return { stopped: [...stopped, ...left.filter((process) => !survivors.some((survivor) => survivor.pid === process.pid))], survivors };
}
