/**
 * zdaemon's `<runner>` (operations spec §3.6, §8.3) and `<environment>` sections.
 * Component name: 'zdaemon'.
 */
import type { ConfigSection } from '../matcher.ts';
import type { SchemaDef, SectionTypeDef } from '../schema.ts';
import { LOGGER_COMPONENT } from './logger.ts';
import type { EventLogConfig } from './logger.ts';

export interface RunnerConfig {
  program: string[];
  python: string | null;
  zdrun: string | null;
  socket_name: string;
  daemon: boolean;
  directory: string | null;
  backoff_limit: number;
  forever: boolean;
  exit_codes: number[];
  start_test_program: string[] | null;
  start_timeout: number;
  stop_timeout: number;
  user: string | null;
  umask: number;
  hang_around: boolean;
  default_to_interactive: boolean;
  logfile: string | null;
  transcript: string;
  prompt: string | null;
  eventlog: EventLogConfig | null;
}

export const runnerType: SectionTypeDef = {
  name: 'runner',
  keys: [
    { name: 'program', datatype: 'string-list', required: true },
    // [D] accepted without the existence check upstream does, and ignored (§8.3)
    { name: 'python' },
    { name: 'zdrun' },
    { name: 'socket-name', datatype: 'existing-dirpath', default: 'zdsock' },
    { name: 'daemon', datatype: 'boolean', default: 'on' },
    { name: 'directory', datatype: 'existing-dirpath' },
    { name: 'backoff-limit', datatype: 'integer', default: '10' },
    { name: 'forever', datatype: 'boolean', default: 'false' },
    { name: 'exit-codes', datatype: 'list-of-ints', default: '0,2' },
    { name: 'start-test-program', datatype: 'string-list' },
    { name: 'start-timeout', datatype: 'integer', default: '300' },
    { name: 'stop-timeout', datatype: 'integer', default: '300' },
    { name: 'user' },
    { name: 'umask', datatype: 'octal', default: '022' },
    { name: 'hang-around', datatype: 'boolean', default: 'false' },
    { name: 'default-to-interactive', datatype: 'boolean', default: 'true' },
    { name: 'logfile', datatype: 'existing-dirpath' },
    { name: 'transcript', datatype: 'existing-dirpath', default: '/dev/null' },
    { name: 'prompt' },
  ],
  sections: [{ type: 'eventlog', name: '*', attribute: 'eventlog' }],
  convert: (s: ConfigSection): RunnerConfig => s.values as unknown as RunnerConfig,
};

export const environmentType: SectionTypeDef = {
  name: 'environment',
  // Environment variable names keep their case (NAME value lines exported to the program).
  keytype: 'identifier',
  arbitraryKeys: { attribute: 'mapping' },
  convert: (s: ConfigSection): Record<string, string> => s.values['mapping'] as Record<string, string>,
};

export const ZDAEMON_COMPONENT = 'zdaemon';

/** The generic zdaemon schema of `zdctl -C` (§8.2–§8.4, E5): <runner> required, <eventlog>, <environment>. */
export function zdctlSchema(): SchemaDef {
  return {
    name: 'zdctl',
    components: [LOGGER_COMPONENT, ZDAEMON_COMPONENT],
    sections: [
      { type: 'runner', name: '*', required: true, attribute: 'runner' },
      { type: 'eventlog', name: '*', attribute: 'eventlog' },
      { type: 'environment', name: '*', attribute: 'environment' },
    ],
  };
}

export interface ZdctlConfig {
  url: string;
  runner: RunnerConfig;
  eventlog: EventLogConfig | null;
  /** Variables for the program's environment (names as written). */
  environment: Record<string, string>;
}

export const zdaemonComponent = { imports: [LOGGER_COMPONENT], types: [runnerType, environmentType] };
