// Deadlines as AbortSignals: every DCS call and PostgreSQL command gets one.

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
  const onParentAbort = (): void => {
    clearTimeout(timer);
    controller.abort(parent?.reason);
  };
  const timer = setTimeout(
    () => {
      parent?.removeEventListener('abort', onParentAbort);
      controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    },
    Math.max(1, Math.round(ms)),
  );
  // A pending deadline must not keep a stopping process alive; while the process runs, the timer fires.
  timer.unref();
  parent?.addEventListener('abort', onParentAbort, { once: true });
  return controller.signal;
}
