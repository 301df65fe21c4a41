// Verbs that act through the members' REST APIs: switchover, failover, pause, resume, edit-config.
import { parse, stringify } from 'yaml';
import { summarizeCluster } from '../../core/cluster-summary.js';
import { checkDynamicConfig, mergeConfigPatch } from '../../core/dynamic-config-rules.js';
import type { ClusterView, MemberRecord } from '../../core/types.js';
import { describeError, isPgwardenError, PgwardenError } from '../../util/errors.js';
import { REDACTED, redactSecrets } from '../../util/redact.js';
import type { RestClient } from '../../util/rest-client.js';
import { callApi } from '../api-client.js';
import { renderMemberTable } from '../render.js';

export interface ControlContext {
  readonly scope: string;
  readonly view: ClusterView;
  /** The one REST client: TLS and credentials from ctl/restapi (config/rest-client-settings.ts). */
  readonly rest: RestClient;
  readonly out: (text: string) => void;
  readonly isForced: boolean;
  /** Asks a yes/no question at a terminal; undefined when nobody can answer (not a TTY). */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
}

/** Without --force a destructive verb asks the human at the terminal; scripts (no TTY) must say --force. */
async function requireConfirmation(context: ControlContext, what: string): Promise<void> {
  if (context.isForced) return;
  if (context.confirm === undefined)
    throw new PgwardenError('PGW_CLI_USAGE', `${what}: add --force to confirm (no terminal to ask on)`, {
      context: { scope: context.scope, flag: '--force', hint: 'add --force, or run the command at a terminal to be asked' },
    });
  if (!(await context.confirm(`Are you sure you want to go on with the ${what}? [y/N] `)))
    throw new PgwardenError('PGW_CLI_ABORTED', 'Aborted', {
      context: { scope: context.scope, hint: `nothing was changed: answer y to go on with the ${what}` },
    });
}

function table(context: ControlContext, view: ClusterView): string {
  return renderMemberTable(context.scope, summarizeCluster(view), 'pretty');
}

/** A member answered the REST API call with a refusal: the error names the member, the endpoint and the status. */
function apiRefused(
  message: string,
  reply: { member: MemberRecord; status: number; text: string },
  method: string,
  path: string,
  context: ControlContext,
  hint: string,
): PgwardenError {
  return new PgwardenError('PGW_API_REQUEST_FAILED', message, {
    context: { scope: context.scope, member: reply.member.name, method, path, status: reply.status, answer: reply.text, hint },
  });
}

/** The leader first, then the others: the API call goes to the first member that answers. */
async function callAnyMember(
  context: ControlContext,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ member: MemberRecord; status: number; text: string }> {
  const leader = context.view.leader?.name;
  const ordered = [...context.view.members].sort((a, b) => Number(b.name === leader) - Number(a.name === leader));
  let lastError = 'the cluster has no members';
  let lastCause: unknown;
  let lastMember: string | undefined;
  for (const member of ordered) {
    try {
      const reply = await callApi(member, method, path, body, context.rest, timeoutMs);
      return { member, ...reply };
    } catch (error) {
      // Missing or wrong credentials are the same at every member: say so instead of "no member answered".
      if (isPgwardenError(error) && error.code === 'PGW_API_AUTH') throw error;
      lastError = `${member.name}: ${describeError(error)}`;
      lastCause = error;
      lastMember = member.name;
    }
  }
  throw new PgwardenError('PGW_API_UNREACHABLE', `no member's REST API answered (${lastError})`, {
    isRetryable: true,
    cause: lastCause,
    context: {
      scope: context.scope,
      ...(lastMember !== undefined ? { member: lastMember } : {}),
      members: ordered.map((member) => member.name),
      method,
      path,
      hint:
        ordered.length === 0
          ? 'start the agents first (pgwarden list shows the members in the DCS)'
          : "check that the agents run and that the config file's ctl/restapi authentication and TLS settings match theirs",
    },
  });
}

export async function switchoverCommand(
  kind: 'switchover' | 'failover',
  options: { leader?: string; candidate?: string; scheduled?: string },
  context: ControlContext,
): Promise<void> {
  const { view, out } = context;
  const leader = kind === 'switchover' ? (options.leader ?? view.leader?.name) : options.leader;
  if (kind === 'switchover' && leader === undefined)
    throw new PgwardenError('PGW_CLI_NO_MEMBER', 'This cluster has no leader: use failover --candidate <member> instead', {
      context: { command: ['pgwarden', kind], scope: context.scope, role: 'leader', hint: 'use failover --candidate <member> instead' },
    });
  if (kind === 'failover' && options.candidate === undefined)
    throw new PgwardenError('PGW_CLI_USAGE', 'failover needs --candidate <member>', {
      context: { command: ['pgwarden', kind], flag: '--candidate', hint: 'name the member to promote: failover --candidate <member>' },
    });
  if (kind === 'switchover' && options.candidate === undefined && view.members.filter((member) => member.name !== leader).length === 0)
    throw new PgwardenError('PGW_CLI_NO_MEMBER', 'No candidates found to switchover to', {
      context: {
        command: ['pgwarden', kind],
        scope: context.scope,
        ...(leader !== undefined ? { member: leader } : {}),
        role: 'replica',
        hint: 'the leader is the only member: start a replica first',
      },
    });
  out('Current cluster topology');
  out(table(context, view));
  await requireConfirmation(context, `${kind} of cluster ${context.scope}`);
  const body = {
    ...(leader !== undefined ? { leader } : {}),
    ...(options.candidate !== undefined ? { candidate: options.candidate } : {}),
    ...(options.scheduled !== undefined && options.scheduled !== 'now' ? { scheduled_at: options.scheduled } : {}),
  };
  const reply = await callAnyMember(context, 'POST', `/${kind}`, body, 60_000);
  if (reply.status !== 200 && reply.status !== 202) {
    throw apiRefused(
      `${kind === 'switchover' ? 'Switchover' : 'Failover'} failed, details: ${reply.status}, ${reply.text}`,
      reply,
      'POST',
      `/${kind}`,
      context,
      'the answer gives the reason: check with pgwarden list that the candidate is a healthy, streaming replica',
    );
  }
  out(`${new Date().toISOString()} ${reply.text}`);
}

export async function pauseCommand(
  isPause: boolean,
  options: { wait?: boolean },
  context: ControlContext,
  reload: () => Promise<ClusterView>,
): Promise<void> {
  const isPaused = context.view.config?.pause === true;
  const verb = isPause ? 'pause' : 'resume';
  if (isPause && isPaused)
    throw new PgwardenError('PGW_CLI_CLUSTER_STATE', 'Cluster is already paused', {
      context: { command: ['pgwarden', verb], scope: context.scope, hint: 'nothing to do; pgwarden resume leaves maintenance mode' },
    });
  if (!isPause && !isPaused)
    throw new PgwardenError('PGW_CLI_CLUSTER_STATE', 'Cluster is not paused', {
      context: { command: ['pgwarden', verb], scope: context.scope, hint: 'nothing to do; pgwarden pause enters maintenance mode' },
    });
  const reply = await callAnyMember(context, 'PATCH', '/config', { pause: isPause ? true : null }, 10_000);
  if (reply.status !== 200)
    throw apiRefused(
      `${verb} failed, details: ${reply.status}, ${reply.text}`,
      reply,
      'PATCH',
      '/config',
      context,
      'the answer gives the reason; retry once the member is healthy',
    );
  if (options.wait === true) {
    context.out(`'${isPause ? 'pause' : 'resume'}' request sent, waiting until it is recognized by all nodes`);
    const deadlineAt = Date.now() + 60_000;
    for (;;) {
      const view = await reload();
      if (view.members.every((member) => (member.pause === true) === isPause)) break;
      if (Date.now() > deadlineAt)
        throw new PgwardenError('PGW_CLI_TIMEOUT', 'not every member acknowledged the change within 60 s', {
          context: {
            command: ['pgwarden', verb, '--wait'],
            scope: context.scope,
            members: view.members.filter((member) => (member.pause === true) !== isPause).map((member) => member.name),
            hint: 'the change is stored in the DCS; check the listed members (pgwarden list) and their agent logs',
          },
        });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  context.out(`Success: cluster management is ${isPause ? 'paused' : 'resumed'}`);
}

/** `--set a.b=c`: YAML-typed values, `null` deletes (Patroni's edit-config -s). */
export function patchFromSettings(settings: readonly string[], pgSettings: readonly string[]): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  const assign = (path: string[], raw: string): void => {
    let node = patch;
    for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    const value: unknown =
      raw === 'null' ? null : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw === 'true' ? true : raw === 'false' ? false : raw;
    node[path[path.length - 1]!] = value;
  };
  for (const setting of settings) {
    const index = setting.indexOf('=');
    if (index <= 0)
      throw new PgwardenError('PGW_CLI_USAGE', `--set expects key.path=value, got "${setting}"`, {
        context: { flag: '--set', value: setting, hint: 'e.g. --set ttl=20 or --set postgresql.parameters.work_mem=8MB' },
      });
    assign(setting.slice(0, index).split('.'), setting.slice(index + 1));
  }
  for (const setting of pgSettings) {
    const index = setting.indexOf('=');
    if (index <= 0)
      throw new PgwardenError('PGW_CLI_USAGE', `--pg expects parameter=value, got "${setting}"`, {
        context: { flag: '--pg', value: setting, hint: 'e.g. --pg work_mem=8MB' },
      });
    assign(['postgresql', 'parameters', setting.slice(0, index)], setting.slice(index + 1));
  }
  return patch;
}

/** A minimal unified-style diff of two YAML documents: removed lines with '-', added with '+'. */
/** The changed lines, compared on the real values and shown redacted: a changed password shows as a changed "******". */
export function configDiff(before: unknown, after: unknown): string[] {
  const linesOf = (document: unknown): { raw: string[]; shown: string[] } => {
    const raw = stringify(document, { sortMapEntries: true }).split('\n');
    const shown = stringify(redactSecrets(document), { sortMapEntries: true }).split('\n');
    return { raw, shown: shown.length === raw.length ? shown : raw.map(() => REDACTED) };
  };
  const a = linesOf(before);
  const b = linesOf(after);
  const lines = ['---', '+++'];
  a.raw.forEach((line, index) => b.raw.includes(line) || lines.push(`-${a.shown[index]!}`));
  b.raw.forEach((line, index) => a.raw.includes(line) || lines.push(`+${b.shown[index]!}`));
  return lines;
}

/** The change as the API would store it, checked by the same rules first: an invalid config is refused before any write. */
function refuseInvalidConfig(next: Record<string, unknown>): void {
  const problems = checkDynamicConfig(next);
  if (problems.length > 0)
    throw new PgwardenError('PGW_CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, {
      context: { command: ['pgwarden', 'edit-config'], hint: 'nothing was changed: fix the values named and run edit-config again' },
    });
}

export async function editConfigCommand(
  options: {
    set: string[];
    pg: string[];
    apply?: string;
    replace?: string;
    readFile: (path: string) => Promise<string>;
    edit?: ((yaml: string) => Promise<string>) | undefined;
  },
  context: ControlContext,
): Promise<void> {
  let patch = patchFromSettings(options.set, options.pg);
  let method: 'PATCH' | 'PUT' = 'PATCH';
  if (Object.keys(patch).length === 0 && options.apply === undefined && options.replace === undefined && options.edit !== undefined) {
    // Interactive: the whole config in $EDITOR; what comes back replaces it.
    const before = stringify(context.view.config ?? {}, { sortMapEntries: true });
    const after = await options.edit(before);
    if (after.trim() === before.trim()) {
      context.out('Not changed');
      return;
    }
    const document = parse(after) as unknown;
    if (typeof document !== 'object' || document === null || Array.isArray(document))
      throw new PgwardenError('PGW_CONFIG_INVALID', 'the edited config is not a YAML mapping', {
        context: {
          command: ['pgwarden', 'edit-config'],
          hint: 'nothing was changed: edit again and keep the top level as key: value lines',
        },
      });
    refuseInvalidConfig(document as Record<string, unknown>);
    for (const line of configDiff(context.view.config ?? {}, document)) context.out(line);
    await requireConfirmation(context, 'edit-config');
    const reply = await callAnyMember(context, 'PUT', '/config', document, 10_000);
    if (reply.status !== 200)
      throw apiRefused(
        `edit-config failed, details: ${reply.status}, ${reply.text}`,
        reply,
        'PUT',
        '/config',
        context,
        'the answer gives the reason (an invalid value, or a concurrent change: run edit-config again)',
      );
    context.out('Configuration changed');
    return;
  }
  const source = options.replace ?? options.apply;
  if (source !== undefined) {
    // --apply merges a YAML document into the config (null deletes); --replace makes it the whole config.
    const document = parse(await options.readFile(source)) as unknown;
    if (typeof document !== 'object' || document === null || Array.isArray(document))
      throw new PgwardenError('PGW_CONFIG_INVALID', `${source === '-' ? 'stdin' : source} does not hold a YAML mapping`, {
        context: {
          command: ['pgwarden', 'edit-config'],
          flag: options.replace !== undefined ? '--replace' : '--apply',
          path: source,
          hint: 'the document must be a mapping of configuration keys, e.g. "ttl: 20"',
        },
      });
    patch = { ...(document as Record<string, unknown>), ...patch };
    if (options.replace !== undefined) method = 'PUT';
  }
  if (Object.keys(patch).length === 0)
    throw new PgwardenError(
      'PGW_CLI_USAGE',
      'nothing to change: use --set key=value, --pg parameter=value, --apply FILE or --replace FILE',
      {
        context: {
          command: ['pgwarden', 'edit-config'],
          hint: 'use --set key=value, --pg parameter=value, --apply FILE or --replace FILE (or run it at a terminal to edit)',
        },
      },
    );
  refuseInvalidConfig(method === 'PUT' ? patch : mergeConfigPatch({ ...(context.view.config ?? {}) }, patch));
  await requireConfirmation(context, 'edit-config');
  const reply = await callAnyMember(context, method, '/config', patch, 10_000);
  if (reply.status !== 200)
    throw apiRefused(
      `edit-config failed, details: ${reply.status}, ${reply.text}`,
      reply,
      method,
      '/config',
      context,
      'the answer gives the reason (an invalid value, or a concurrent change: run edit-config again)',
    );
  for (const line of configDiff(context.view.config ?? {}, JSON.parse(reply.text))) context.out(line);
  context.out('Configuration changed');
}

function selectMembers(context: ControlContext, given: readonly string[], role: string | undefined): MemberRecord[] {
  const leader = context.view.leader?.name;
  // patronictl habit: `restart <cluster> [members]`. The cluster name first (when no member has that name) is dropped.
  const isClusterFirst = given[0] === context.scope && !context.view.members.some((member) => member.name === context.scope);
  const names = isClusterFirst ? given.slice(1) : given;
  const unknown = names.filter((name) => !context.view.members.some((member) => member.name === name));
  if (unknown.length > 0)
    throw new PgwardenError('PGW_CLI_NO_MEMBER', `${unknown.join(', ')} is not a member of cluster ${context.scope}`, {
      context: {
        member: unknown.join(', '),
        members: unknown,
        scope: context.scope,
        hint: `pgwarden list shows the members of cluster ${context.scope}`,
      },
    });
  return context.view.members.filter((member) => {
    if (names.length > 0 && !names.includes(member.name)) return false;
    if (role === undefined || role === 'any') return true;
    const isLeader = member.name === leader;
    return role === 'leader' || role === 'primary' || role === 'master' ? isLeader : !isLeader;
  });
}

/** The reload, restart and reinit verbs print one line per member and return the names of the members that failed. */
export async function reloadCommand(names: readonly string[], options: { role?: string }, context: ControlContext): Promise<string[]> {
  const members = selectMembers(context, names, options.role);
  if (members.length === 0)
    throw new PgwardenError('PGW_CLI_NO_MEMBER', 'no member matches', {
      context: {
        command: ['pgwarden', 'reload'],
        scope: context.scope,
        ...(options.role !== undefined ? { role: options.role } : {}),
        ...(names.length > 0 ? { members: names } : {}),
        hint: 'no member has that role: pgwarden list shows the members and their roles',
      },
    });
  context.out(table(context, context.view));
  await requireConfirmation(context, `reload of ${members.map((member) => member.name).join(', ')}`);
  const failed: string[] = [];
  for (const member of members) {
    const reply = await callApi(member, 'POST', '/reload', {}, context.rest, 10_000).catch((error: unknown) => ({
      status: 0,
      text: describeError(error),
    }));
    if (reply.status === 202)
      context.out(
        `Reload request received for member ${member.name} and will be processed within ${String(context.view.config?.loop_wait ?? 10)} seconds`,
      );
    else if (reply.status === 200) context.out(`No changes to apply on member ${member.name}`);
    else {
      failed.push(member.name);
      context.out(`Failed: reload for member ${member.name}, status code=${reply.status}, (${reply.text})`);
    }
  }
  return failed;
}

export async function restartCommand(
  names: readonly string[],
  options: { role?: string; pending?: boolean; scheduled?: string },
  context: ControlContext,
): Promise<string[]> {
  const members = selectMembers(context, names, options.role);
  if (members.length === 0)
    throw new PgwardenError('PGW_CLI_NO_MEMBER', 'no member matches', {
      context: {
        command: ['pgwarden', 'restart'],
        scope: context.scope,
        ...(options.role !== undefined ? { role: options.role } : {}),
        ...(names.length > 0 ? { members: names } : {}),
        hint: 'no member has that role: pgwarden list shows the members and their roles',
      },
    });
  context.out(table(context, context.view));
  await requireConfirmation(context, `restart of ${members.map((member) => member.name).join(', ')}`);
  const failed: string[] = [];
  for (const member of members) {
    const body = {
      ...(options.pending === true ? { restart_pending: true } : {}),
      ...(options.scheduled !== undefined && options.scheduled !== 'now' ? { schedule: options.scheduled } : {}),
    };
    try {
      const reply = await callApi(member, 'POST', '/restart', body, context.rest, 180_000);
      if (reply.status === 200) context.out(`Success: restart on member ${member.name}`);
      else if (reply.status === 202) context.out(`Success: restart scheduled on member ${member.name}`);
      else if (reply.status === 409) {
        failed.push(member.name);
        context.out(`Failed: another restart is already scheduled on member ${member.name}`);
      } else {
        failed.push(member.name);
        context.out(`Failed: restart for member ${member.name}, status code=${reply.status}, (${reply.text})`);
      }
    } catch (error) {
      failed.push(member.name);
      context.out(`Failed: restart for member ${member.name}: ${describeError(error)}`);
    }
  }
  return failed;
}

export async function reinitCommand(names: readonly string[], options: { wait?: boolean }, context: ControlContext): Promise<string[]> {
  if (names.length === 0)
    throw new PgwardenError('PGW_CLI_USAGE', 'name the member(s) to reinitialize', {
      context: { command: ['pgwarden', 'reinit'], scope: context.scope, hint: 'pgwarden reinit <member>... (pgwarden list shows them)' },
    });
  const members = selectMembers(context, names, undefined);
  context.out(table(context, context.view));
  await requireConfirmation(context, `reinitialize of ${names.join(', ')}`);
  const failed: string[] = [];
  const started: MemberRecord[] = [];
  for (const member of members) {
    const reply = await callApi(member, 'POST', '/reinitialize', { force: true }, context.rest, 60_000).catch((error: unknown) => ({
      status: 0,
      text: describeError(error),
    }));
    if (reply.status === 200) {
      context.out(`Success: reinitialize for member ${member.name}`);
      started.push(member);
    } else {
      failed.push(member.name);
      context.out(`Failed: reinitialize for member ${member.name}, status code=${reply.status}, (${reply.text})`);
    }
  }
  if (options.wait === true && started.length > 0) {
    context.out(`Waiting for reinitialize to complete on: ${started.map((member) => member.name).join(', ')}`);
    const deadlineAt = Date.now() + 600_000;
    for (const member of started) {
      for (;;) {
        const reply = await callApi(member, 'GET', '/patroni', undefined, context.rest, 5000).catch(() => ({
          status: 0,
          text: '{}',
        }));
        const state = (JSON.parse(reply.text || '{}') as { state?: string }).state;
        if (reply.status === 200 && state === 'running') break;
        if (Date.now() > deadlineAt)
          throw new PgwardenError('PGW_CLI_TIMEOUT', `reinitialize of ${member.name} did not complete within 10 minutes`, {
            context: {
              command: ['pgwarden', 'reinit', '--wait'],
              scope: context.scope,
              member: member.name,
              ...(state !== undefined ? { state } : {}),
              hint: `the copy may still be running: follow it with pgwarden list and the agent log of ${member.name}`,
            },
          });
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    context.out(`Reinitialize is completed on: ${started.map((member) => member.name).join(', ')}`);
  }
  return failed;
}
