// Imported before anything that imports pg. pg 8 decides at import time whether it runs on Cloudflare Workers:
// without a `navigator` global (Node 20 has none; Node 21+ does) it probes `new Response(...)`, and touching `Response`
// loads undici, Node's fetch implementation, with web streams, http2 and zlib: ~5 MB of RSS in an agent that never
// fetches. A navigator like Node 21's answers pg's question; it is removed once pg has been evaluated.
const scope = globalThis as { navigator?: unknown };
if (scope.navigator === undefined) {
  scope.navigator = { userAgent: `Node.js/${process.versions.node.split('.')[0]}` };
  try {
    await import('pg');
  } finally {
    delete scope.navigator;
  }
}
export {};
