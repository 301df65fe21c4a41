// IP address literals: the proxy's kernel data path and its config check both need to tell IPv4 from the rest.
import { isIP } from 'node:net';

export const isIpv4Literal = (host: string): boolean => isIP(host) === 4;
