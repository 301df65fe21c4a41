// A data dir that cannot work is one clear error before anything is tried: a file, under a file, /proc, a read-only
// mount, a parent the postgres user cannot reach; and pgwarden never chowns or removes what it did not create.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkDataDirUsable, checkDirectoryUsable, DataDir } from '../../src/postgres/data-dir.js';

const isRoot = process.getuid?.() === 0;
const OTHER = { uid: 54321, gid: 54321 };
const root = mkdtempSync(join(tmpdir(), 'pgw-datadir-'));
chmodSync(root, 0o755);
const mounts: string[] = [];

after(() => {
  for (const mount of mounts) execFileSync('umount', [mount]);
  rmSync(root, { recursive: true, force: true });
});

function dataDirAt(path: string, runAs?: { uid: number; gid: number }): DataDir {
  return new DataDir({
    member: 'node1',
    scope: 'batman',
    dataDir: path,
    listenHost: '127.0.0.1',
    port: 5432,
    socketDir: root,
    superuser: { username: 'postgres', password: 'x' },
    replication: { username: 'replicator', password: 'y' },
    pgHba: [],
    pgpassPath: join(root, 'pgpass'),
    runAs,
  });
}

describe('checkDataDirUsable', () => {
  it('accepts a missing data dir under a usable parent, and an existing empty one', async () => {
    assert.equal(await checkDataDirUsable(join(root, 'fresh', 'data'), undefined), undefined);
    mkdirSync(join(root, 'empty'));
    assert.equal(await checkDataDirUsable(join(root, 'empty'), undefined), undefined);
  });

  it('refuses a regular file, and a path under one (ENOTDIR)', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    assert.match((await checkDataDirUsable(file, undefined)) ?? '', /^data_dir .*a-file is a regular file, not a directory/);
    assert.match((await checkDataDirUsable(join(file, 'data'), undefined)) ?? '', /cannot be created: .*a-file is a file, not a directory/);
  });

  it('refuses a pseudo file system such as /proc', async () => {
    assert.match((await checkDataDirUsable('/proc/pgwarden-data', undefined)) ?? '', /is on the proc pseudo file system \(\/proc\)/);
    assert.match((await checkDataDirUsable('/sys/fs/pgwarden', undefined)) ?? '', /pseudo file system/);
  });

  it('refuses a read-only file system (a tmpfs mounted ro)', { skip: !isRoot && 'needs root to mount' }, async () => {
    const mount = join(root, 'ro');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mount]);
    mounts.push(mount);
    assert.match((await checkDataDirUsable(join(mount, 'data'), undefined)) ?? '', /is on a read-only file system \(.*ro\): remount it/);
  });

  it('refuses a parent the postgres user cannot traverse, naming it, its mode and owner', { skip: !isRoot && 'needs root' }, async () => {
    const closed = join(root, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(closed, 0o700);
    const problem = await checkDataDirUsable(join(closed, 'data'), OTHER);
    assert.match(problem ?? '', /the postgres user \(uid 54321\) cannot reach it: .*closed is mode 0700 owned by uid 0/);
    assert.equal(await checkDataDirUsable(join(closed, 'data'), undefined), undefined, 'root itself can');
  });

  it('refuses an existing cluster owned by someone else than the postgres user', { skip: !isRoot && 'needs root' }, async () => {
    const cluster = join(root, 'foreign');
    mkdirSync(cluster);
    writeFileSync(join(cluster, 'PG_VERSION'), '15\n');
    assert.match((await checkDataDirUsable(cluster, OTHER)) ?? '', /holds a cluster owned by uid 0, not the postgres user \(uid 54321\)/);
  });
});

describe('checkDirectoryUsable (pgwarden local start --dir)', () => {
  it('names the setting: a file, under a file, /proc; accepts a new directory', async () => {
    const file = join(root, 'dir-file');
    writeFileSync(file, 'x');
    assert.match((await checkDirectoryUsable(file, '--dir')) ?? '', /^--dir .*dir-file is a file, not a directory/);
    assert.match((await checkDirectoryUsable(join(file, 'sub'), '--dir')) ?? '', /^--dir .*sub cannot be created: .*dir-file is a file/);
    assert.match(
      (await checkDirectoryUsable('/proc/pgwarden-local', '--dir')) ?? '',
      /^--dir \/proc\/pgwarden-local is on the proc pseudo file system \(\/proc\), which cannot hold a cluster/,
    );
    assert.equal(await checkDirectoryUsable(join(root, 'new', 'cluster'), '--dir'), undefined);
  });
});

describe('DataDir', () => {
  it('chowns only the directories it creates, never an existing parent', { skip: !isRoot && 'needs root to chown' }, async () => {
    const parent = join(root, 'owned-by-root');
    mkdirSync(parent, { mode: 0o700 });
    const dataDir = dataDirAt(join(parent, 'sub', 'data'), OTHER);
    await dataDir.ensureDir(join(parent, 'sub', 'data'), 0o700);
    assert.equal(statSync(parent).uid, 0, 'the existing parent keeps its owner');
    assert.equal(statSync(join(parent, 'sub')).uid, OTHER.uid);
    assert.equal(statSync(join(parent, 'sub', 'data')).uid, OTHER.uid);
    const existing = join(root, 'existing');
    mkdirSync(existing);
    chownSync(existing, 0, 0);
    await dataDir.ensureDir(existing, 0o755);
    assert.equal(statSync(existing).uid, 0);
  });

  it('writes an owned file whole (renamed into place, mode set), and through a symlink the operator made', async () => {
    const dataDir = dataDirAt(join(root, 'owned-files'));
    const path = join(root, 'owned.conf');
    writeFileSync(path, 'old', { mode: 0o644 });
    await dataDir.writeOwnedFile(path, 'new', 0o600);
    assert.equal(readFileSync(path, 'utf8'), 'new');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const real = join(root, 'real.conf');
    const link = join(root, 'link.conf');
    writeFileSync(real, 'old');
    symlinkSync(real, link);
    await dataDir.writeOwnedFile(link, 'through the link', 0o600);
    assert.equal(lstatSync(link).isSymbolicLink(), true, 'the symlink stays');
    assert.equal(readFileSync(real, 'utf8'), 'through the link');
    assert.deepEqual(
      readdirSync(root).filter((name) => name.includes('.pgwarden-')),
      [],
      'no temporary file left',
    );
  });

  it('never removes a regular file data_dir points to', async () => {
    const file = join(root, 'precious');
    writeFileSync(file, 'data');
    await assert.rejects(dataDirAt(file).remove(), /is not a directory: not removing it/);
    assert.equal(statSync(file).isFile(), true);
    await dataDirAt(join(root, 'absent')).remove();
  });
});
