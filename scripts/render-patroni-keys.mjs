// Rewrites the counts line and the table of docs/patroni-keys.md from src/config/patroni-keys.ts (after npm run build).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderKeysDoc } from '../dist/src/config/patroni-keys.js';

const path = new URL('../docs/patroni-keys.md', import.meta.url);
writeFileSync(path, renderKeysDoc(readFileSync(path, 'utf8')));
