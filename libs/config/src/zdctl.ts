/**
 * The generic zdaemon controller file (`zdctl -C`, operations spec §8.2–§8.4, example E5).
 */
import { loadConfig, type ConfigSource, type LoadOptions } from './load.ts';
import { zdctlSchema, type RunnerConfig, type ZdctlConfig } from './components/zdaemon.ts';
import type { EventLogConfig } from './components/logger.ts';

/** Load a zdctl configuration: `<runner>` (required), optional `<eventlog>` and `<environment>`. */
export function loadZdctlConfig(source: ConfigSource, opts: LoadOptions = {}): ZdctlConfig {
  const { top, tree } = loadConfig(source, zdctlSchema(), opts);
  return {
    url: tree.url,
    runner: top.values['runner'] as RunnerConfig,
    eventlog: (top.values['eventlog'] as EventLogConfig | null) ?? null,
    environment: (top.values['environment'] as Record<string, string> | null) ?? {},
  };
}
