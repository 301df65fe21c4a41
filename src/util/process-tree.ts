// A process and all its descendants, read from /proc: freezing or killing a postmaster must reach its backends too.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

/**
 * `root` first, then its descendants depth-first; PIDs that exit meanwhile may still be listed. Read synchronously from
 * each process's children lists (/proc/<pid>/task/<tid>/children): a few reads, so a fence freezes a postmaster's
 * backends within a millisecond of freezing the postmaster. Kernels without those lists get a scan of all of /proc.
 */
export async function processTree(root: number): Promise<number[]> {
  if (!existsSync(`/proc/${root}/task/${root}/children`)) return scanTree(root);
  const tree: number[] = [];
  const visit = (pid: number): void => {
    tree.push(pid);
    for (const child of childrenOf(pid)) visit(child);
  };
  visit(root);
  return tree;
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return children;
  }
  for (const task of tasks) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const item of text.split(' ')) if (/^\d+$/.test(item)) children.push(Number(item));
  }
  return children;
}

async function scanTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // The parent PID is the second field after the command name, which may itself contain spaces and parentheses.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(parent)) children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const tree: number[] = [];
  const visit = (pid: number): void => {
    tree.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return tree;
}
