/**
 * `zrs promote`: turn a secondary into a writable primary (zrs spec §3.5).
 *
 *   zrs promote --admin ADDRESS [NAME] [LISTEN-ADDRESS]   online, through the running server's admin socket
 *   zrs promote -C CONFIG [NAME]                           offline: remove replicate-from from the
 *                                                          configuration (then restart the server)
 */
import net from 'node:net';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { parseAddress, connectArgs } from '@zeo-ts/zrs';

export interface PromoteIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const PROMOTE_USAGE = 'Usage: zrs promote (--admin ADDRESS [NAME] [LISTEN-ADDRESS] | -C CONFIG [NAME])\n';

/** Send one admin command and return the JSON answer. */
export function adminCommand(address: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(connectArgs(parseAddress(address, 'connect')));
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(line + '\n'));
    s.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        s.end();
        try {
          resolve(JSON.parse(buf.slice(0, i)));
        } catch (e) {
          reject(e);
        }
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('admin connection closed without an answer')));
  });
}

/**
 * Offline promotion: comment out `replicate-from` (and legacy `address` in <secondary>) inside
 * the named <zrs> section (or every one when no name is given). A secondary without
 * replicate-to then needs one to serve other secondaries; we say so.
 */
export function promoteConfigText(text: string, name: string | null): { text: string; changed: number; warnings: string[] } {
  const lines = text.split('\n');
  let depth = 0;
  let inTarget = false;
  let hasTo = false;
  let changed = 0;
  const warnings: string[] = [];
  let sectionStart = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    const open = /^<\s*(zrs|secondary)(?:\s+([^>\s]+))?\s*>$/i.exec(l);
    if (open && depth === 0) {
      inTarget = name === null || (open[2] ?? '1').toLowerCase() === name.toLowerCase();
      hasTo = false;
      sectionStart = i;
      depth = 1;
      continue;
    }
    if (depth > 0) {
      if (/^<\s*\//.test(l)) {
        depth--;
        if (depth === 0 && inTarget && !hasTo) warnings.push(`section at line ${sectionStart + 1} has no replicate-to: other secondaries cannot replicate from it until one is added`);
        continue;
      }
      if (/^<[^/]/.test(l)) {
        depth++;
        continue;
      }
      if (depth === 1 && inTarget) {
        if (/^replicate-to\s/i.test(l)) hasTo = true;
        if (/^(replicate-from|address)\s/i.test(l)) {
          lines[i] = `# ${lines[i]}   # removed by zrs promote ${new Date().toISOString()}`;
          changed++;
        }
      }
    }
  }
  return { text: lines.join('\n'), changed, warnings };
}

export async function promoteMain(argv: string[], io: PromoteIO): Promise<number> {
  const rest: string[] = [];
  let admin: string | null = null;
  let config: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--admin') admin = argv[++i] ?? null;
    else if (a === '-C' || a === '--configure') config = argv[++i] ?? null;
    else if (a === '-h' || a === '--help') {
      io.stdout(PROMOTE_USAGE);
      return 0;
    } else rest.push(a);
  }
  if ((admin === null) === (config === null)) {
    io.stderr(PROMOTE_USAGE);
    return 2;
  }
  if (admin !== null) {
    try {
      const r = await adminCommand(admin, ['promote', rest[0] ?? '1', ...(rest[1] ? [rest[1]] : [])].join(' '));
      if (!r.ok) {
        io.stderr(`promote failed: ${r.error}\n`);
        return 1;
      }
      io.stdout(JSON.stringify(r.status) + '\n');
      return 0;
    } catch (e) {
      io.stderr(`Can't reach the admin socket at ${admin}: ${(e as Error).message}\n`);
      return 2;
    }
  }
  const text = readFileSync(config!, 'utf8');
  const r = promoteConfigText(text, rest[0] ?? null);
  if (r.changed === 0) {
    io.stderr(`${config}: no replicate-from found${rest[0] ? ` in storage ${rest[0]}` : ''}; nothing to promote\n`);
    return 1;
  }
  writeFileSync(config + '.tmp', r.text);
  renameSync(config + '.tmp', config!);
  for (const w of r.warnings) io.stderr(`warning: ${w}\n`);
  io.stdout(`${config}: replicate-from removed (${r.changed}); restart the server to run as a primary\n`);
  return 0;
}
