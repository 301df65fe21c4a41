// Runs a short system command (nft, ip, tc, mount...) with optional stdin and a timeout; the error carries the
// command line and the first lines of its stderr.
import { execFile } from 'node:child_process';

export function runCommand(
  command: string,
  args: readonly string[],
  options: { readonly input?: string; readonly timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      [...args],
      { timeout: options.timeoutMs ?? 10_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null)
          reject(new Error(`${command} ${args.join(' ')} failed: ${(stderr || error.message).trim().split('\n').slice(0, 4).join(' | ')}`));
        else resolve(stdout);
      },
    );
    // A command that reads no input may exit before we write it: that is not an error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}
