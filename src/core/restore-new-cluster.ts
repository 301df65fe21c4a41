// `pgwarden restore --scope NEW`: point-in-time recovery into a new cluster, the source left as it is. Pure: what the
// members' config files must hold for it to be safe, and the `bootstrap:` section written into them.
//
// Why these checks: the new cluster's first member restores the source's stanza (bootstrap.method pgbackrest) and is
// promoted, so it has the source's system identifier. Archiving into the source's stanza would then mix two
// clusters' WAL under one identifier (pgBackRest cannot tell them apart: a split brain in the archive), so the new
// cluster must have a stanza of its own in the same repository. A scope already in the DCS (an initialize key or
// members) is another cluster: its agents would never bootstrap. A data dir that holds files would not be restored
// into (pgwarden bootstraps only into an empty one), so the agent would start the old data instead.
import { describeRestoreTarget, type RestoreTarget } from './restore-target.js';
import type { ClusterView } from './types.js';

/** What a member config file of the new cluster says (read by the composition root). */
export interface NewClusterMemberConfig {
  readonly path: string;
  readonly name: string;
  readonly scope: string;
  readonly dataDir: string;
  readonly dataDirState: 'missing' | 'empty' | 'not-empty';
  /** Its backup: section; undefined without one. */
  readonly backup: { readonly repository: string; readonly stanza: string } | undefined;
}

export interface NewClusterRestoreInput {
  readonly sourceScope: string;
  /** The source cluster's backup: section (from the -c config file): the stanza to restore from. */
  readonly sourceBackup: { readonly repository: string; readonly stanza: string } | undefined;
  readonly newScope: string;
  readonly members: readonly NewClusterMemberConfig[];
  /** The DCS view of the new scope, as the first member's config reaches it. */
  readonly newView: ClusterView;
  readonly target: RestoreTarget;
}

export interface NewClusterRestorePlan {
  /** The `bootstrap:` keys written into every member's config (any of them may win the bootstrap race). */
  readonly bootstrap: { readonly method: 'pgbackrest'; readonly pgbackrest: Readonly<Record<string, string | number | boolean>> };
  /** One line per step, for the plan printed before the confirmation. */
  readonly steps: readonly string[];
}

/** The plan, or every problem found (each names the file or key and what to change); nothing is written on problems. */
export function planNewClusterRestore(input: NewClusterRestoreInput): NewClusterRestorePlan | { readonly problems: readonly string[] } {
  const { sourceBackup, newScope, members, newView, target } = input;
  const problems: string[] = [];
  if (newScope === input.sourceScope)
    problems.push(`--scope ${newScope} is the source cluster's own scope: leave --scope out to restore in place`);
  if (!/^[A-Za-z0-9_.-]+$/.test(newScope)) problems.push(`--scope "${newScope}" may contain letters, digits, _ . and - only`);
  if (sourceBackup === undefined)
    problems.push(`the source cluster's config (-c) has no backup: section: the stanza to restore from is not known`);
  if (members.length === 0) problems.push('give the new cluster its members: --member-config <file> for each (its agent config)');
  const seen = new Map<string, string>();
  for (const member of members) {
    const where = `${member.path} (member ${member.name})`;
    if (member.scope !== newScope) problems.push(`${where} has scope ${member.scope}, not ${newScope}: set scope: ${newScope} in it`);
    const twin = seen.has(member.name) ? member.name : [...seen.entries()].find(([, dir]) => dir === member.dataDir)?.[0];
    if (twin !== undefined) problems.push(`${where} has the name or data dir of member ${twin}: each member needs its own`);
    seen.set(member.name, member.dataDir);
    if (member.dataDirState === 'not-empty')
      problems.push(`${where}: its data dir ${member.dataDir} is not empty: a member is restored into an empty or missing data dir only`);
    if (member.backup === undefined) {
      problems.push(
        `${where} has no backup: section: add one with repository ${sourceBackup?.repository ?? '<the source repository>'} (the new cluster archives there)`,
      );
      continue;
    }
    if (sourceBackup === undefined) continue;
    if (member.backup.repository !== sourceBackup.repository)
      problems.push(
        `${where}: backup.repository is ${member.backup.repository}, the source's is ${sourceBackup.repository}: restore from (and archive into) the same repository`,
      );
    if (member.backup.stanza === sourceBackup.stanza)
      problems.push(
        `${where}: backup.stanza ${member.backup.stanza} is the source cluster's: the restored copy keeps the source's system identifier, and two clusters archiving into one stanza is a split brain in the archive; remove backup.stanza (default: the scope ${newScope})`,
      );
  }
  const stanzas = new Set(members.flatMap((member) => (member.backup === undefined ? [] : [member.backup.stanza])));
  if (stanzas.size > 1) problems.push(`the members archive into different stanzas (${[...stanzas].sort().join(', ')}): give them one`);
  const isInUse = newView.initialize !== undefined || newView.leader !== undefined || newView.members.length > 0;
  if (isInUse)
    problems.push(
      `cluster ${newScope} already exists in the DCS (${newView.members.map((member) => member.name).join(', ') || 'its initialize key'}): choose another scope, or remove it first (pgwarden remove)`,
    );
  if (problems.length > 0) return { problems };
  const pgbackrest: Record<string, string | number | boolean> = { stanza: sourceBackup!.stanza };
  if (target.type === 'time') pgbackrest.target_time = target.target;
  if (target.type === 'lsn') pgbackrest.target_lsn = target.target;
  if (target.type === 'name') pgbackrest.target_name = target.target;
  if (target.type === 'immediate') pgbackrest.immediate = true;
  if (target.timeline !== undefined) pgbackrest.target_timeline = target.timeline;
  const [first, ...others] = members.map((member) => member.name);
  return {
    bootstrap: { method: 'pgbackrest', pgbackrest },
    steps: [
      `write bootstrap.method: pgbackrest (stanza ${sourceBackup!.stanza}, ${describeRestoreTarget(target)}) into ${members.map((member) => member.path).join(', ')}`,
      `start the agents of ${newScope}: the first to bootstrap (e.g. ${first!}) restores the stanza to the target and is promoted`,
      ...(others.length > 0 ? [`${others.join(', ')} clone${others.length === 1 ? 's' : ''} from it`] : []),
      `${newScope} archives into stanza ${[...stanzas][0]!}; ${input.sourceScope} is not touched`,
    ],
  };
}
