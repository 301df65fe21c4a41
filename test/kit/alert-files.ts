// The shipped alert rules and Grafana dashboard (deploy/prometheus, deploy/grafana) as the tests read them: their
// paths, the alerts issue 18 asks for, each rule's expression, each dashboard query, and the metric names they use.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const RULES_FILE = join(ROOT, 'deploy', 'prometheus', 'pgwarden-alerts.yml');
export const RULE_TESTS_FILE = join(ROOT, 'deploy', 'prometheus', 'pgwarden-alerts.test.yml');
export const DASHBOARD_FILE = join(ROOT, 'deploy', 'grafana', 'pgwarden-dashboard.json');

/** In the order the rules file lists them. */
export const ALERTS = [
  'PgwardenNoLeader',
  'PgwardenNoHealthyStandby',
  'PgwardenReplicationLagBytes',
  'PgwardenReplicationLagSeconds',
  'PgwardenDcsLastSeenStale',
  'PgwardenFailsafeActive',
  'PgwardenSlotRetainingWal',
  'PgwardenWalDiskUsage',
  'PgwardenArchiveFailing',
  'PgwardenArchiveStale',
  'PgwardenLastBackupTooOld',
  'PgwardenFailoverHappened',
] as const;

/**
 * Names a rule may use before any module renders them, each with the work that will add it (the rule ships and stays
 * silent meanwhile; no placeholder value is exported). Empty: every name used is rendered.
 */
export const PENDING_METRICS: Readonly<Record<string, string>> = {};

/** Every identifier starting with patroni_ or pgwarden_ in a PromQL expression (no label or function name starts so). */
export function metricNamesIn(expression: string): string[] {
  return [...expression.matchAll(/(?<![A-Za-z0-9_:$])(?:patroni|pgwarden)_[A-Za-z0-9_:]*/g)].map((match) => match[0]);
}

/** Each alert's expr (a `expr: |` block or a one-line expr), by a small reader of the rules file's layout. */
export async function ruleExpressions(file = RULES_FILE): Promise<Map<string, string>> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const byAlert = new Map<string, string>();
  let alert: string | undefined;
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!;
    const alertMatch = /^\s*- alert: (\S+)/.exec(line);
    if (alertMatch !== null) alert = alertMatch[1]!;
    const exprMatch = /^(\s*)expr: ?(.*)$/.exec(line);
    if (exprMatch === null || alert === undefined) continue;
    if (exprMatch[2] !== '|' && exprMatch[2] !== '>') {
      byAlert.set(alert, exprMatch[2]!);
      continue;
    }
    const indent = exprMatch[1]!.length;
    const body: string[] = [];
    while (index + 1 < lines.length) {
      const next = lines[index + 1]!;
      if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
      body.push(next.trim());
      index += 1;
    }
    byAlert.set(alert, body.join(' ').trim());
  }
  return byAlert;
}

interface DashboardPanel {
  readonly title?: string;
  readonly targets?: readonly { readonly expr?: string }[];
  readonly panels?: readonly DashboardPanel[];
}

export interface DashboardQuery {
  /** The panel's title, or 'variable' for a template variable's query. */
  readonly title: string;
  readonly expr: string;
}

export async function dashboardQueries(file = DASHBOARD_FILE): Promise<DashboardQuery[]> {
  const dashboard = JSON.parse(await readFile(file, 'utf8')) as {
    panels: DashboardPanel[];
    templating: { list: { definition?: string }[] };
  };
  const found: DashboardQuery[] = [];
  const visit = (panel: DashboardPanel): void => {
    for (const target of panel.targets ?? []) if (target.expr !== undefined) found.push({ title: panel.title ?? '', expr: target.expr });
    for (const inner of panel.panels ?? []) visit(inner);
  };
  dashboard.panels.forEach(visit);
  for (const variable of dashboard.templating.list)
    if (variable.definition !== undefined) found.push({ title: 'variable', expr: variable.definition });
  return found;
}

/** Every metric name the rules and the dashboard use, with where. */
export async function metricUses(): Promise<{ where: string; name: string }[]> {
  const uses: { where: string; name: string }[] = [];
  for (const [alert, expr] of await ruleExpressions()) for (const name of metricNamesIn(expr)) uses.push({ where: `rule ${alert}`, name });
  for (const { title, expr } of await dashboardQueries())
    for (const name of metricNamesIn(expr)) uses.push({ where: `dashboard panel '${title}'`, name });
  return uses;
}
