// Deadlines as AbortSignals: every DCS call and PostgreSQL command gets one.

interface Follower {
  readonly controller: AbortController;
  readonly timer: NodeJS.Timeout;
}

/**
 * The deadlines that follow each parent signal, behind one 'abort' listener per parent: a busy agent makes dozens of
 * deadlines under its stop signal a second (heartbeats, confirmations, cycle calls), and one listener each would keep
 * them all on the parent until their timers fire (Node warns from 11).
 */
const followers = new WeakMap<AbortSignal, Set<Follower>>();

/** How to retire a deadline whose call has finished: its timer cleared and its parent's entry dropped. */
const retirements = new WeakMap<AbortSignal, () => void>();

/**
 * The reason every deadline that runs out aborts with. One instance: a DOMException captures a stack trace when built,
 * and an idle agent's finished calls would otherwise build one per deadline (about half its idle CPU), for a stack
 * that only ever shows the timer list.
 */
let timeoutReason: DOMException | undefined;
const timedOut = (): DOMException => (timeoutReason ??= new DOMException('The operation was aborted due to timeout', 'TimeoutError'));

function follow(parent: AbortSignal, follower: Follower): () => void {
  let set = followers.get(parent);
  if (set === undefined) {
    const created = new Set<Follower>();
    set = created;
    followers.set(parent, created);
    parent.addEventListener(
      'abort',
      () => {
        for (const each of created) {
          clearTimeout(each.timer);
          each.controller.abort(parent.reason);
        }
        created.clear();
      },
      { once: true },
    );
  }
  const members = set;
  members.add(follower);
  return () => members.delete(follower);
}

/**
 * A signal that aborts after `ms` or when `parent` aborts, whichever is first. Built on a plain timer rather than
 * AbortSignal.timeout + AbortSignal.any: the timer list holds the controller strongly, so the deadline fires even when
 * nothing else references the signal (composite signals of AbortSignal.any hold their sources weakly, and a request
 * whose deadline was collected waited for etcd for seconds: a leader's heartbeat stalled through an etcd election).
 */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  const controller = new AbortController();
  if (parent?.aborted === true) {
    controller.abort(parent.reason);
    return controller.signal;
  }
  let unfollow: () => void = () => undefined;
  const timer = setTimeout(
    () => {
      unfollow();
      retirements.delete(controller.signal);
      controller.abort(timedOut());
    },
    Math.max(1, Math.round(ms)),
  );
  // A pending deadline must not keep a stopping process alive; while the process runs, the timer fires.
  timer.unref();
  if (parent !== undefined) unfollow = follow(parent, { controller, timer });
  retirements.set(controller.signal, () => {
    clearTimeout(timer);
    unfollow();
  });
  return controller.signal;
}

/**
 * Runs `call` under the deadline `signal`, then retires the deadline: a call that finished early leaves no timer to
 * fire and no abort to dispatch later (a leader's heartbeat makes four such calls a second). The signal must belong to
 * this one call. A signal not made by `deadline` (a fake clock's) is passed through unchanged.
 */
export async function within<T>(signal: AbortSignal, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  try {
    return await call(signal);
  } finally {
    retirements.get(signal)?.();
    retirements.delete(signal);
  }
}
