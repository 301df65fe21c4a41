// Patroni's member-name -> replication-slot-name rule, so slots match what Patroni users expect.

export function slotNameForMember(name: string): string {
  let out = '';
  for (const char of name.toLowerCase()) {
    if (/[a-z0-9_]/.test(char)) out += char;
    else if (char === '-' || char === '.') out += '_';
    else out += `u${char.codePointAt(0)!.toString(16).padStart(4, '0')}`;
  }
  return out.slice(0, 63);
}
