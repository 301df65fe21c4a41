// Free TCP ports on 127.0.0.1 chosen at run time, below the ephemeral range so a restarting server can rebind them.
import { createServer } from 'node:net';
import { PgwardenError } from '../util/errors.js';

const LOW = 15000;
const HIGH = 32000;

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Distinct ports that were free a moment ago; random so parallel sessions on one machine rarely collide. */
export async function pickFreePorts(count: number): Promise<number[]> {
  const chosen = new Set<number>();
  for (let attempt = 0; chosen.size < count && attempt < count * 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (chosen.has(port)) continue;
    if (await canBind(port)) chosen.add(port);
  }
  if (chosen.size < count)
    throw new PgwardenError('PGW_LOCAL_PROCESS', `could not find ${count} free ports between ${LOW} and ${HIGH}`, {
      context: { found: chosen.size, hint: 'stop leftover test clusters (pgwarden local stop) or free ports in that range' },
    });
  return [...chosen];
}

/**
 * `count` consecutive ports from `first` (a fixed layout chosen with --port-base), each checked free now; the error
 * names the port that is taken and what it was meant for.
 */
export async function fixedPorts(first: number, count: number, purpose: string): Promise<number[]> {
  const ports = Array.from({ length: count }, (_unused, index) => first + index);
  for (const port of ports) {
    if (!(port > 0 && port < 65536))
      throw new PgwardenError('PGW_LOCAL_PROCESS', `port ${port} (${purpose}) is outside 1-65535`, {
        context: { port, purpose, hint: 'choose a lower --port-base' },
      });
    if (!(await canBind(port)))
      throw new PgwardenError('PGW_LOCAL_PROCESS', `port ${port} (${purpose}) is already in use on 127.0.0.1`, {
        context: { port, purpose, hint: 'choose another --port-base, or stop what listens there (ss -ltnp)' },
      });
  }
  return ports;
}
