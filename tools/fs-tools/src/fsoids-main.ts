import { ExitError } from './cli/common.ts';
import { ToolError, type IterWarning } from './fsio.ts';
import { Tracer, parsePyInt } from './fsoids.ts';
import type { Out } from './output.ts';

/** fsoids: trace the oids given as text (command line, then the -f file lines). */
export async function fsoidsTracer(path: string, oidArgs: string[], fileLines: string[], out: Out, warn?: (w: IterWarning) => void): Promise<void> {
  let tracer: Tracer;
  try {
    tracer = new Tracer(path);
    for (const s of [...oidArgs, ...fileLines]) tracer.registerOids(parsePyInt(s));
  } catch (e) {
    if (e instanceof ToolError) throw new ExitError(`ValueError: ${e.message}`);
    throw e;
  }
  if (tracer.oids.size === 0) throw new ExitError('ValueError: no oids specified');
  tracer.run(warn);
  await tracer.report(out);
}
