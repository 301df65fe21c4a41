// The agent's and the proxy's log line about their resident-set trim (util/working-set.ts).
import type { Log } from '../util/log.js';
import { scheduleWorkingSetTrims } from '../util/working-set.js';

export function trimWorkingSetLater(log: Log): void {
  scheduleWorkingSetTrims((result) => {
    if ('unavailable' in result) log.info({ reason: result.unavailable }, 'resident set not trimmed');
    else log.info({ rss_before_mb: result.rssBeforeMb, rss_after_mb: result.rssAfterMb }, 'start-up pages unmapped from the resident set');
  });
}
