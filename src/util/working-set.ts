// Gives back the resident pages that only start-up needed. Most of an idle agent's RSS (about 40 MB) is the node
// binary's own code and read-only data, touched once while V8 and Node boot and never again; the optional addon in
// native/linux unmaps this process's clean pages of read-only file mappings, and the kernel maps back in, from
// the page cache, whatever is used later. The page cache itself is not freed: what shrinks is this process's
// resident set (and with it the memory the kernel must keep mapped for it), not the host's cached files.
import { nativeAddon } from './native-addon.js';

export type WorkingSetTrim = { readonly rssBeforeMb: number; readonly rssAfterMb: number } | { readonly unavailable: string };

/**
 * After start-up has settled, once more when a replica has usually been cloned and started, then now and then: pages
 * used once since (a bootstrap, a base backup) go back too.
 */
const TRIM_AFTER_MS = [10_000, 60_000];
const TRIM_EVERY_MS = 5 * 60_000;

export function trimWorkingSet(): WorkingSetTrim {
  const loaded = nativeAddon();
  if (typeof loaded === 'string') return { unavailable: loaded };
  const rssMb = (): number => Math.round(process.memoryUsage.rss() / 1048576);
  const rssBeforeMb = rssMb();
  loaded.trimReadOnlyFilePages();
  return { rssBeforeMb, rssAfterMb: rssMb() };
}

/** Trims after start-up and then periodically; timers never keep the process alive. Reports only the first result. */
export function scheduleWorkingSetTrims(onFirst: (result: WorkingSetTrim) => void): void {
  setTimeout(() => {
    const first = trimWorkingSet();
    onFirst(first);
    if ('unavailable' in first) return;
    setTimeout(() => {
      trimWorkingSet();
      setInterval(trimWorkingSet, TRIM_EVERY_MS).unref();
    }, TRIM_AFTER_MS[1]! - TRIM_AFTER_MS[0]!).unref();
  }, TRIM_AFTER_MS[0]).unref();
}
