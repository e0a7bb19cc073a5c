/**
 * Shared CLI plumbing: run a tool's main, map errors to Python-like exit statuses
 * (sys.exit(message) → message on stderr, status 1).
 */
import { StreamOut } from '../output.ts';

/** An error whose message is printed alone on stderr with exit status `status` (Python's sys.exit(msg)). */
export class ExitError extends Error {
  override name = 'ExitError';
  constructor(message: string, readonly status = 1) {
    super(message);
  }
}

export async function runCli(main: (argv: string[], out: StreamOut) => Promise<number | void>): Promise<void> {
  const out = new StreamOut(process.stdout);
  let status = 0;
  try {
    status = (await main(process.argv.slice(2), out)) ?? 0;
  } catch (e) {
    await out.flush().catch(() => {});
    if (e instanceof ExitError) {
      if (e.message) process.stderr.write(e.message + '\n');
      status = e.status;
    } else {
      const err = e as NodeJS.ErrnoException;
      process.stderr.write(`${err?.name ?? 'Error'}: ${err?.message ?? String(e)}\n`);
      status = 1;
    }
  }
  await out.flush();
  process.exitCode = status;
}
