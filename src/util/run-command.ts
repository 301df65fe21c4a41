// Runs a short system command (nft, ip, tc, mount...) with optional stdin and a timeout; the error carries the
// command line and the first lines of its stderr.
import { execFile } from 'node:child_process';
import { PgwardenError } from './errors.js';

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
        if (error !== null) {
          const tail = (stderr || error.message).trim().split('\n').slice(0, 4).join(' | ');
          const timeoutMs = options.timeoutMs ?? 10_000;
          const isMissing = error.code === 'ENOENT';
          const isTimedOut = error.killed === true && error.signal !== null && error.signal !== undefined;
          reject(
            new PgwardenError('PGW_SYSTEM_COMMAND_FAILED', `${command} ${args.join(' ')} failed: ${tail}`, {
              cause: error,
              context: {
                command: [command, ...args],
                exitCode: typeof error.code === 'number' ? error.code : null,
                ...(error.signal !== null && error.signal !== undefined ? { signal: error.signal } : {}),
                stderrTail: tail,
                hint: isMissing
                  ? `${command} is not installed or not on PATH: install it or fix PATH`
                  : isTimedOut
                    ? `${command} did not finish within ${timeoutMs} ms and was killed`
                    : `run the command by hand to see the whole error (it may need root)`,
              },
            }),
          );
        } else resolve(stdout);
      },
    );
    // A command that reads no input may exit before we write it: that is not an error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}
