// `pgwarden dcs snapshot`'s file handling: a new 0600 file with every blob, etcd's trailing SHA-256 checked, a bad or
// cut-off stream leaves no file behind, and an existing file is never overwritten.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EtcdGateway } from '../../src/dcs/etcd/gateway.js';
import { saveEtcdSnapshot } from '../../src/dcs/etcd/snapshot.js';

/** A gateway that streams `blobs` (or fails after them) and answers revisions in turn. */
function fakeGateway(blobs: readonly Buffer[], revisions: readonly string[], failure?: Error): EtcdGateway {
  let call = 0;
  return {
    currentEndpoint: 'http://127.0.0.1:2379',
    revisionAt: () => Promise.resolve(revisions[call++]),
    snapshot: (_signal: AbortSignal, onBlob: (blob: Buffer) => void) => {
      for (const blob of blobs) onBlob(blob);
      return failure === undefined ? Promise.resolve('http://127.0.0.1:2379') : Promise.reject(failure);
    },
  } as unknown as EtcdGateway;
}

describe('pgwarden dcs snapshot writes the file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgw-dcs-snapshot-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const database = Buffer.from('bolt database bytes '.repeat(500));
  const checksum = createHash('sha256').update(database).digest();
  const signal = (): AbortSignal => AbortSignal.timeout(5000);

  it('writes every blob (the checksum split across blobs too) to a new 0600 file and reports size and revisions', async () => {
    const path = join(dir, 'good.db');
    const blobs = [database.subarray(0, 3000), Buffer.concat([database.subarray(3000), checksum.subarray(0, 10)]), checksum.subarray(10)];
    const result = await saveEtcdSnapshot(fakeGateway(blobs, ['41', '42']), path, signal());
    assert.deepEqual(result, {
      path,
      bytes: database.length + 32,
      endpoint: 'http://127.0.0.1:2379',
      revisionBefore: '41',
      revisionAfter: '42',
    });
    assert.deepEqual(await readFile(path), Buffer.concat([database, checksum]));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it('refuses a stream whose checksum does not match, and deletes what it wrote', async () => {
    const path = join(dir, 'bad.db');
    const wrong = Buffer.alloc(32, 7);
    await assert.rejects(saveEtcdSnapshot(fakeGateway([database, wrong], ['1', '1']), path, signal()), /does not match its checksum/);
    await assert.rejects(stat(path));
  });

  it('deletes a partial file when the stream breaks off', async () => {
    const path = join(dir, 'cut.db');
    await assert.rejects(
      saveEtcdSnapshot(
        fakeGateway([database.subarray(0, 100)], ['1'], new Error('connection closed before the snapshot ended')),
        path,
        signal(),
      ),
      /connection closed/,
    );
    await assert.rejects(stat(path));
  });

  it('never overwrites an existing file, and names a missing directory', async () => {
    const path = join(dir, 'existing.db');
    await writeFile(path, 'an older snapshot');
    await assert.rejects(saveEtcdSnapshot(fakeGateway([database, checksum], ['1']), path, signal()), /already exists/);
    assert.equal(await readFile(path, 'utf8'), 'an older snapshot');
    await assert.rejects(saveEtcdSnapshot(fakeGateway([], []), join(dir, 'nope', 'x.db'), signal()), /its directory does not exist/);
  });
});
