// The PostgreSQL side of a logical major upgrade: facts for core/logical-upgrade.ts to judge, and the commands it
// orders (roles, schema copy by pg_dump | psql, publication, subscription, write fence, sequences, clean-up). It
// decides nothing: every call does one thing on one server and reports.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  subscriptionName,
  UPGRADE_PUBLICATION,
  type FenceMark,
  type LogicalUpgradeDatabases,
  type PgAddress,
  type SequenceFacts,
  type SequenceTarget,
  type SourceFacts,
  type SubscriptionProgress,
  type TableFacts,
  type TargetFacts,
} from '../core/logical-upgrade.js';
import { PgwardenError } from '../util/errors.js';
import { renderConninfo, securityEnvironment, securityPairs, type PgAuth } from './conninfo.js';
import { parseLsn } from '../core/lsn.js';
import { withSession, type SqlClient } from './sql-session.js';

export interface LogicalUpgradeSide {
  /** Names the cluster in messages (its scope). */
  readonly name: string;
  /** The superuser (postgresql.authentication.superuser of that cluster's config). */
  readonly superuser: PgAuth;
}

export interface PgLogicalUpgradeOptions {
  readonly source: LogicalUpgradeSide;
  readonly target: LogicalUpgradeSide;
  /** Where pg_dump and psql are (the old major's tools: pg_dump of the old major can dump it, psql restores anywhere). */
  readonly toolsBinDir: string;
}

const CONNECT_MS = 5000;
/** The queries here are catalog reads and DDL on an empty schema: a minute is generous; the copy itself is waited for elsewhere. */
const QUERY_MS = 60_000;
/** How long terminated sessions may take to exit before the fence is declared not holding. */
const TERMINATE_MS = 10_000;

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/**
 * What DDL during the copy would change: relations, columns, constraints and indexes of user schemas, hashed. Object
 * oids are left out (a dump and restore keeps none), names and definitions are in.
 */
const FINGERPRINT_SQL = `
SELECT md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) AS fingerprint FROM (
  SELECT format('rel %s.%s %s %s %s', n.nspname, c.relname, c.relkind, c.relpersistence, c.relreplident) AS line
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'i', 'f') AND ${USER_SCHEMAS}
  UNION ALL
  SELECT format('col %s.%s.%s %s %s %s', n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND ${USER_SCHEMAS}
  UNION ALL
  SELECT format('con %s.%s %s %s', n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE ${USER_SCHEMAS}
) lines`;

function failed(message: string, side: string, hint: string, extra: Record<string, unknown> = {}): PgwardenError {
  return new PgwardenError('PGW_UPGRADE_FAILED', message, { context: { command: ['pgwarden', 'upgrade'], cluster: side, ...extra, hint } });
}

export class PgLogicalUpgrade implements LogicalUpgradeDatabases {
  readonly #options: PgLogicalUpgradeOptions;

  constructor(options: PgLogicalUpgradeOptions) {
    this.#options = options;
  }

  #session<T>(side: LogicalUpgradeSide, at: PgAddress, database: string, work: (client: SqlClient) => Promise<T>): Promise<T> {
    return withSession(
      {
        host: at.host,
        port: at.port,
        user: side.superuser.username,
        password: side.superuser.password,
        database,
        connectTimeoutMs: CONNECT_MS,
        queryTimeoutMs: QUERY_MS,
        member: `${side.name} ${at.host}:${at.port}`,
        security: side.superuser,
      },
      AbortSignal.timeout(QUERY_MS * 2),
      work,
    );
  }

  #source<T>(at: PgAddress, database: string, work: (client: SqlClient) => Promise<T>): Promise<T> {
    return this.#session(this.#options.source, at, database, work);
  }

  #target<T>(at: PgAddress, database: string, work: (client: SqlClient) => Promise<T>): Promise<T> {
    return this.#session(this.#options.target, at, database, work);
  }

  async sourceFacts(at: PgAddress): Promise<SourceFacts> {
    const instance = await this.#source(at, 'postgres', async (client) => {
      const settings = await client.query<{ wal_level: string; version: string; slots: string; used: string }>(
        `SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num') AS version,
                current_setting('max_replication_slots') AS slots, (SELECT count(*) FROM pg_replication_slots)::text AS used`,
      );
      const databases = await client.query<{ datname: string; oid: number }>(
        'SELECT datname, oid::int AS oid FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname',
      );
      return { settings: settings.rows[0]!, databases: databases.rows };
    });
    const databases = [];
    for (const database of instance.databases)
      databases.push(
        await this.#source(at, database.datname, async (client) => {
          const tables = await client.query<{ schema: string; name: string; persistence: string; identity: string; has_pk: boolean }>(
            `SELECT n.nspname AS schema, c.relname AS name, c.relpersistence AS persistence, c.relreplident AS identity,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND ${USER_SCHEMAS} ORDER BY 1, 2`,
          );
          const largeObjects = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_largeobject_metadata');
          const fingerprint = await client.query<{ fingerprint: string }>(FINGERPRINT_SQL);
          return {
            name: database.datname,
            oid: database.oid,
            tables: tables.rows.map((row): TableFacts => ({
              schema: row.schema,
              name: row.name,
              persistence: row.persistence,
              replicaIdentity: row.identity,
              hasPrimaryKey: row.has_pk,
            })),
            largeObjects: largeObjects.rows[0]!.n,
            fingerprint: fingerprint.rows[0]!.fingerprint,
          };
        }),
      );
    return {
      serverVersionNum: Number(instance.settings.version),
      walLevel: instance.settings.wal_level,
      maxReplicationSlots: Number(instance.settings.slots),
      usedReplicationSlots: Number(instance.settings.used),
      databases,
    };
  }

  async targetFacts(at: PgAddress, databases: readonly string[]): Promise<TargetFacts> {
    const { version, existing } = await this.#target(at, 'postgres', async (client) => {
      const settings = await client.query<{ version: string }>(`SELECT current_setting('server_version_num') AS version`);
      const names = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn');
      return { version: Number(settings.rows[0]!.version), existing: new Set(names.rows.map((row) => row.datname)) };
    });
    const existingTables: string[] = [];
    for (const database of databases) {
      if (!existing.has(database)) continue;
      const tables = await this.#target(at, database, (client) =>
        client.query<{ name: string }>(
          `SELECT format('%s.%s', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND ${USER_SCHEMAS} ORDER BY 1`,
        ),
      );
      existingTables.push(...tables.rows.map((row) => `${database}.${row.name}`));
    }
    return { serverVersionNum: version, existingTables };
  }

  /**
   * Roles the new cluster lacks, with their attributes, password hashes and memberships. Roles it has already (its
   * superuser, replication user) are left as they are: their passwords are that cluster's own.
   */
  async copyRoles(from: PgAddress, to: PgAddress): Promise<readonly string[]> {
    const { roles, memberships } = await this.#source(from, 'postgres', async (client) => {
      const rows = await client.query<{
        rolname: string;
        rolsuper: boolean;
        rolinherit: boolean;
        rolcreaterole: boolean;
        rolcreatedb: boolean;
        rolcanlogin: boolean;
        rolreplication: boolean;
        rolbypassrls: boolean;
        rolconnlimit: number;
        rolpassword: string | null;
      }>(
        `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
                rolconnlimit, rolpassword FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY rolname`,
      );
      const grants = await client.query<{ role: string; member: string }>(
        `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a
           JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname !~ '^pg_'`,
      );
      return { roles: rows.rows, memberships: grants.rows };
    });
    return this.#target(to, 'postgres', async (client) => {
      const present = new Set((await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows.map((row) => row.rolname));
      const created: string[] = [];
      for (const role of roles) {
        if (present.has(role.rolname)) continue;
        const flag = (isSet: boolean, name: string): string => (isSet ? name : `NO${name}`);
        const attributes = [
          flag(role.rolsuper, 'SUPERUSER'),
          flag(role.rolinherit, 'INHERIT'),
          flag(role.rolcreaterole, 'CREATEROLE'),
          flag(role.rolcreatedb, 'CREATEDB'),
          flag(role.rolcanlogin, 'LOGIN'),
          flag(role.rolreplication, 'REPLICATION'),
          flag(role.rolbypassrls, 'BYPASSRLS'),
          `CONNECTION LIMIT ${role.rolconnlimit}`,
          ...(role.rolpassword === null ? [] : [`PASSWORD ${client.escapeLiteral(role.rolpassword)}`]),
        ];
        await client.query(`CREATE ROLE ${client.escapeIdentifier(role.rolname)} WITH ${attributes.join(' ')}`);
        created.push(role.rolname);
      }
      for (const grant of memberships)
        if (created.includes(grant.member))
          await client.query(`GRANT ${client.escapeIdentifier(grant.role)} TO ${client.escapeIdentifier(grant.member)}`);
      return created;
    });
  }

  /** Creates the database on the new cluster (same owner) unless it exists, then pg_dump --schema-only | psql into it. */
  async copySchema(from: PgAddress, to: PgAddress, database: string): Promise<void> {
    const owner = await this.#source(from, 'postgres', async (client) => {
      const rows = await client.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [
        database,
      ]);
      return rows.rows[0]?.owner;
    });
    await this.#target(to, 'postgres', async (client) => {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (exists.rowCount === 0)
        await client.query(
          `CREATE DATABASE ${client.escapeIdentifier(database)}${owner === undefined ? '' : ` OWNER ${client.escapeIdentifier(owner)}`}`,
        );
    });
    const { source, target, toolsBinDir } = this.#options;
    const dump = this.#tool(
      ['--schema-only', '--no-publications', '--no-subscriptions', `--dbname=${this.#conninfo(source, from, database)}`],
      source,
    );
    const restore = this.#tool(
      ['--no-psqlrc', '--quiet', '--single-transaction', '-v', 'ON_ERROR_STOP=1', `--dbname=${this.#conninfo(target, to, database)}`],
      target,
    );
    const dumpChild = spawn(join(toolsBinDir, 'pg_dump'), dump.args, { env: dump.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const restoreChild = spawn(join(toolsBinDir, 'psql'), restore.args, { env: restore.env, stdio: ['pipe', 'ignore', 'pipe'] });
    // psql failing first closes its stdin: the pipe's error is psql's exit, reported below, not a crash of the CLI.
    restoreChild.stdin.on('error', () => undefined);
    dumpChild.stdout.pipe(restoreChild.stdin);
    const [dumped, restored] = await Promise.all([exitOf(dumpChild), exitOf(restoreChild)]);
    if (dumped.code !== 0 || restored.code !== 0)
      throw failed(
        `the schema copy of database ${database} failed: ${dumped.code !== 0 ? `pg_dump exited ${dumped.code}: ${dumped.stderr}` : `psql exited ${restored.code}: ${restored.stderr}`}`,
        target.name,
        'nothing of this database was restored (one transaction); fix the cause, run pgwarden upgrade --major --method logical --abort, then start again',
        { database, tool: dumped.code !== 0 ? join(toolsBinDir, 'pg_dump') : join(toolsBinDir, 'psql') },
      );
  }

  #conninfo(side: LogicalUpgradeSide, at: PgAddress, database: string): string {
    return renderConninfo([
      ['host', at.host],
      ['port', String(at.port)],
      ['user', side.superuser.username],
      ['dbname', database],
      ...securityPairs(side.superuser),
    ]);
  }

  /** The password goes by environment, never on a command line (ps would show it). */
  #tool(args: string[], side: LogicalUpgradeSide): { args: string[]; env: NodeJS.ProcessEnv } {
    const env: NodeJS.ProcessEnv = { ...process.env, ...securityEnvironment(side.superuser) };
    if (side.superuser.password !== undefined) env.PGPASSWORD = side.superuser.password;
    return { args, env };
  }

  /** The publication of every table, with the schema fingerprint the copy began from as its comment (read at cutover). */
  async startPublication(at: PgAddress, database: string, fingerprint: string): Promise<void> {
    await this.#source(at, database, async (client) => {
      const exists = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [UPGRADE_PUBLICATION]);
      if (exists.rowCount === 0) await client.query(`CREATE PUBLICATION ${UPGRADE_PUBLICATION} FOR ALL TABLES`);
      await client.query(`COMMENT ON PUBLICATION ${UPGRADE_PUBLICATION} IS ${client.escapeLiteral(fingerprint)}`);
    });
  }

  async publishedFingerprints(at: PgAddress, databases: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const fingerprints = new Map<string, string>();
    for (const database of databases) {
      const comment = await this.#source(at, database, async (client) => {
        const rows = await client.query<{ comment: string | null }>(
          `SELECT obj_description(oid, 'pg_publication') AS comment FROM pg_publication WHERE pubname = $1`,
          [UPGRADE_PUBLICATION],
        );
        return rows.rows[0]?.comment;
      });
      if (comment !== undefined) fingerprints.set(database, comment ?? '');
    }
    return fingerprints;
  }

  async subscribe(at: PgAddress, database: string, databaseOid: number, publisher: PgAddress): Promise<void> {
    const name = subscriptionName(databaseOid);
    const { source } = this.#options;
    const conninfo = renderConninfo([
      ['host', publisher.host],
      ['port', String(publisher.port)],
      ['user', source.superuser.username],
      ...(source.superuser.password === undefined ? [] : ([['password', source.superuser.password]] as [string, string][])),
      ['dbname', database],
      ...securityPairs(source.superuser),
    ]);
    await this.#target(at, database, async (client) => {
      const exists = await client.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name]);
      if (exists.rowCount !== 0) return;
      await client.query(
        `CREATE SUBSCRIPTION ${name} CONNECTION ${client.escapeLiteral(conninfo)} PUBLICATION ${UPGRADE_PUBLICATION} WITH (slot_name = ${client.escapeLiteral(name)}, copy_data = true)`,
      );
    });
  }

  async progress(
    source: PgAddress,
    target: PgAddress,
    databases: readonly { readonly name: string; readonly oid: number }[],
  ): Promise<SubscriptionProgress[]> {
    const confirmed = await this.#source(source, 'postgres', async (client) => {
      const rows = await client.query<{ slot_name: string; lsn: string | null }>(
        `SELECT slot_name, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgwarden\\_upgrade\\_%'`,
      );
      return new Map(rows.rows.map((row) => [row.slot_name, row.lsn === null ? undefined : parseLsn(row.lsn)]));
    });
    const progress: SubscriptionProgress[] = [];
    for (const database of databases) {
      const name = subscriptionName(database.oid);
      const notReady = await this.#target(target, database.name, async (client) => {
        const rows = await client.query<{ rel: string }>(
          `SELECT r.srrelid::regclass::text AS rel FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
            WHERE s.subname = $1 AND r.srsubstate <> 'r' ORDER BY 1`,
          [name],
        );
        return rows.rows.map((row) => row.rel);
      });
      progress.push({ database: database.name, tablesNotReady: notReady, confirmedLsn: confirmed.get(name) });
    }
    return progress;
  }

  async currentLsn(at: PgAddress): Promise<bigint> {
    return this.#source(at, 'postgres', async (client) => {
      const rows = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      return parseLsn(rows.rows[0]!.lsn);
    });
  }

  async hasSlots(at: PgAddress, databaseOids: readonly number[]): Promise<boolean> {
    return this.#source(at, 'postgres', async (client) => {
      const rows = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = ANY($1)', [
        databaseOids.map((oid) => subscriptionName(oid)),
      ]);
      return rows.rowCount === databaseOids.length;
    });
  }

  /**
   * The write fence: every new session read-only by default (ALTER SYSTEM, so a restart keeps it), proved by a fresh
   * session seeing it, then every other client session ended and gone. What it cannot stop: a session that opens after
   * this and turns read-only off itself; the mark's next transaction ID lets the cutover see that it happened.
   */
  async fence(at: PgAddress): Promise<FenceMark> {
    await this.#source(at, 'postgres', async (client) => {
      await client.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await client.query('SELECT pg_reload_conf()');
    });
    // The postmaster reloads asynchronously: a session forked before it did would start read-write.
    const deadlineMs = performance.now() + TERMINATE_MS;
    for (;;) {
      const setting = await this.#source(at, 'postgres', async (client) => {
        const rows = await client.query<{ value: string }>(`SELECT current_setting('default_transaction_read_only') AS value`);
        return rows.rows[0]!.value;
      });
      if (setting === 'on') break;
      if (performance.now() > deadlineMs)
        throw failed(
          'the old primary did not take default_transaction_read_only = on after pg_reload_conf()',
          this.#options.source.name,
          'look at its server log',
        );
      await pause(20);
    }
    return this.#source(at, 'postgres', async (client) => {
      // Listed first, then ended: in one WHERE clause the planner may run pg_terminate_backend before the pid test.
      const sessions = await client.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      const pids = sessions.rows.map((row) => row.pid);
      await client.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      for (;;) {
        const left = await client.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids]);
        if (left.rowCount === 0) break;
        if (performance.now() > deadlineMs)
          throw failed(
            `${left.rowCount} session(s) of the old primary did not end after pg_terminate_backend`,
            this.#options.source.name,
            'the fence does not hold yet: run the cutover again',
          );
        await pause(20);
      }
      const rows = await client.query<{ lsn: string; xid: string }>(
        'SELECT pg_current_wal_lsn()::text AS lsn, pg_snapshot_xmax(pg_current_snapshot())::text AS xid',
      );
      return { lsn: parseLsn(rows.rows[0]!.lsn), nextXid: BigInt(rows.rows[0]!.xid) };
    });
  }

  async nextXid(at: PgAddress): Promise<bigint> {
    return this.#source(at, 'postgres', async (client) => {
      const rows = await client.query<{ xid: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xid');
      return BigInt(rows.rows[0]!.xid);
    });
  }

  async unfence(at: PgAddress): Promise<void> {
    await this.#source(at, 'postgres', async (client) => {
      await client.query('ALTER SYSTEM RESET default_transaction_read_only');
      await client.query('SELECT pg_reload_conf()');
    });
  }

  async sequences(at: PgAddress, database: string): Promise<SequenceFacts[]> {
    return this.#source(at, database, async (client) => {
      const rows = await client.query<{ schema: string; name: string; last: string | null; inc: string; min: string; max: string }>(
        `SELECT schemaname AS schema, sequencename AS name, last_value::text AS last, increment_by::text AS inc,
                min_value::text AS min, max_value::text AS max FROM pg_sequences ORDER BY 1, 2`,
      );
      return rows.rows.map((row) => ({
        schema: row.schema,
        name: row.name,
        lastValue: row.last === null ? undefined : BigInt(row.last),
        incrementBy: BigInt(row.inc),
        minValue: BigInt(row.min),
        maxValue: BigInt(row.max),
      }));
    });
  }

  async setSequences(at: PgAddress, database: string, targets: readonly SequenceTarget[]): Promise<void> {
    if (targets.length === 0) return;
    await this.#target(at, database, async (client) => {
      for (const target of targets)
        await client.query(`SELECT setval(format('%I.%I', $1::text, $2::text)::regclass, $3::bigint, true)`, [
          target.schema,
          target.name,
          target.value.toString(),
        ]);
    });
  }

  /** Drops the subscriptions (which drops their slots on the old primary when it answers). */
  async dropSubscriptions(at: PgAddress, databases: readonly { readonly name: string; readonly oid: number }[]): Promise<void> {
    for (const database of databases) {
      const name = subscriptionName(database.oid);
      await this.#target(at, database.name, async (client) => {
        const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = current_database()');
        if (exists.rowCount === 0) return;
        const subscription = await client.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name]);
        if (subscription.rowCount === 0) return;
        await client.query(`ALTER SUBSCRIPTION ${name} DISABLE`);
        await client.query(`DROP SUBSCRIPTION ${name}`);
      }).catch((error: unknown) => {
        // A database never created on the new cluster has no subscription to drop.
        if (error instanceof PgwardenError && /does not exist/.test(error.message)) return;
        throw error;
      });
    }
  }

  async dropPublications(at: PgAddress, databases: readonly { readonly name: string; readonly oid: number }[]): Promise<void> {
    // After a cutover the old primary is fenced: this clean-up is the one write that may still run there.
    for (const database of databases)
      await this.#source(at, database.name, async (client) => {
        await client.query('SET default_transaction_read_only = off');
        await client.query(`DROP PUBLICATION IF EXISTS ${UPGRADE_PUBLICATION}`);
      });
    // A slot left behind (its subscription dropped while this server did not answer) would hold WAL for ever.
    await this.#source(at, 'postgres', async (client) => {
      await client.query('SET default_transaction_read_only = off');
      await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active`, [
        databases.map((database) => subscriptionName(database.oid)),
      ]);
    });
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function exitOf(child: ReturnType<typeof spawn>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.on('error', (error) => resolve({ code: -1, stderr: error.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr: stderr.trim() }));
  });
}
