/**
 * The logging sections (operations spec §3.5): `<eventlog>`, `<logger>` and the handler types
 * implementing 'zconfig.logger.handler'. Component name: 'ZConfig.components.logger'.
 */
import { pyRepr, ValueConversionError, type SourcePos } from '../errors.ts';
import type { ConfigSection } from '../matcher.ts';
import type { KeyDef, SectionTypeDef } from '../schema.ts';
import type { LogFormatStyle, SocketAddress } from '../datatypes.ts';

export const HANDLER_ABSTRACT = 'zconfig.logger.handler';
export const LOG_ABSTRACT = 'zconfig.logger.log';

/** Fields a Python LogRecord offers to format strings (the spec's list plus the other record attributes). */
export const LOG_RECORD_FIELDS: readonly string[] = [
  'name', 'levelno', 'levelname', 'pathname', 'filename', 'module', 'lineno', 'created', 'asctime', 'msecs',
  'relativeCreated', 'thread', 'message', 'process', 'funcName',
  'msg', 'args', 'exc_info', 'exc_text', 'stack_info', 'threadName', 'processName', 'taskName',
];

interface BaseHandler {
  /** Handler section type. */
  type: string;
  level: number;
  format: string;
  dateformat: string;
  style: LogFormatStyle;
  arbitrary_fields: boolean;
  formatter: string | null;
  /** Fields referenced by `format` (validated against LOG_RECORD_FIELDS unless arbitrary_fields). */
  fields: string[];
  /** Where the handler section starts. */
  pos: SourcePos;
}

export interface LogFileHandler extends BaseHandler {
  type: 'logfile';
  path: string;
  /** 'stdout'/'stderr' for `path STDOUT` / `path STDERR`, else null. */
  stream: 'stdout' | 'stderr' | null;
  old_files: number;
  max_size: number;
  when: string;
  /** Rotation interval in `when` units (1 when `when` is set and the key is 0). */
  interval: number;
  encoding: string | null;
  delay: boolean;
  rotation: 'none' | 'size' | 'time';
}

export interface SyslogHandler extends BaseHandler {
  type: 'syslog';
  facility: string;
  address: SocketAddress;
}

export interface OtherHandler extends BaseHandler {
  type: 'win32-eventlog' | 'http-logger' | 'email-notifier';
  options: Record<string, unknown>;
}

export type LogHandlerConfig = LogFileHandler | SyslogHandler | OtherHandler;

export interface EventLogConfig {
  /** Threshold of the whole log (default info = 20). */
  level: number;
  /** Handlers in file order; empty means the log is silent (§3.5.1). */
  handlers: LogHandlerConfig[];
}

export interface LoggerConfig extends EventLogConfig {
  name: string | null;
  propagate: boolean;
}

function bad(msg: string): never {
  throw new ValueConversionError(msg);
}

/** Collect the fields a format string references, checking its syntax for the style. */
export function formatFields(format: string, style: LogFormatStyle): string[] {
  const fields: string[] = [];
  if (style === 'classic') {
    const rx = /%(?:%|(?:\(([^)]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa])/y;
    for (let i = 0; i < format.length; ) {
      const p = format.indexOf('%', i);
      if (p < 0) break;
      rx.lastIndex = p;
      const m = rx.exec(format);
      if (!m) bad(`Invalid log format string ${format}`);
      if (m![1] !== undefined) fields.push(m![1]);
      i = p + m![0].length;
    }
  } else if (style === 'format') {
    const rx = /\{\{|\}\}|\{([^{}!:]*)(?:![rsa])?(?::[^{}]*)?\}|[{}]/g;
    let m: RegExpExecArray | null;
    while ((m = rx.exec(format))) {
      if (m[0] === '{{' || m[0] === '}}') continue;
      if (m[0] === '{' || m[0] === '}') bad(`Invalid log format string ${format}`);
      const f = m[1]!.split(/[.[]/)[0]!;
      if (f === '' || /^\d+$/.test(f)) bad('format formats cannot use positional placeholders');
      fields.push(f);
    }
  } else {
    const rx = /\$(?:\$|([_a-zA-Z][_a-zA-Z0-9]*)|\{([_a-zA-Z][_a-zA-Z0-9]*)\}|)/g;
    let m: RegExpExecArray | null;
    while ((m = rx.exec(format))) {
      if (m[0] === '$$') continue;
      const f = m[1] ?? m[2];
      if (f === undefined) {
        if (style === 'template') bad(`Invalid placeholder in string: ${format}`);
        continue;
      }
      fields.push(f);
    }
  }
  return fields;
}

function baseHandler(type: string, s: ConfigSection): BaseHandler {
  const v = s.values;
  const style = v['style'] as LogFormatStyle;
  const format = v['format'] as string;
  const arbitrary = v['arbitrary_fields'] as boolean;
  const fields = formatFields(format, style);
  if (!arbitrary && style !== 'safe-template') {
    for (const f of fields) {
      // [D] upstream crashes at startup; we report a configuration error (§3.5.2).
      if (!LOG_RECORD_FIELDS.includes(f)) {
        bad(`log format refers to unknown field ${pyRepr(f)} (known fields: ${LOG_RECORD_FIELDS.slice(0, 15).join(', ')}; set arbitrary-fields true to allow others)`);
      }
    }
  }
  return {
    type,
    level: v['level'] as number,
    format,
    dateformat: v['dateformat'] as string,
    style,
    arbitrary_fields: arbitrary,
    formatter: (v['formatter'] as string | null) ?? null,
    fields,
    pos: s.pos,
  };
}

function convertLogfile(s: ConfigSection): LogFileHandler {
  const v = s.values;
  const path = v['path'] as string;
  const maxSize = v['max_size'] as number;
  const oldFiles = v['old_files'] as number;
  const when = v['when'] as string;
  let interval = v['interval'] as number;
  const encoding = (v['encoding'] as string | null) ?? null;
  const delay = v['delay'] as boolean;
  let stream: LogFileHandler['stream'] = null;
  let rotation: LogFileHandler['rotation'] = 'none';
  if (path === 'STDOUT' || path === 'STDERR') {
    stream = path === 'STDOUT' ? 'stdout' : 'stderr';
    if (maxSize || oldFiles || when) bad(`cannot rotate ${path}`);
    if (delay) bad(`cannot delay opening ${path}`);
    if (encoding) bad(`cannot specify encoding for ${path}`);
  } else if (when || maxSize || oldFiles || interval) {
    if (!oldFiles) bad('old-files must be set for log rotation');
    if (when) {
      if (maxSize) bad("can't set *both* max_bytes and when");
      if (!interval) interval = 1;
      rotation = 'time';
    } else if (maxSize) {
      rotation = 'size';
    } else {
      bad('max-bytes or when must be set for log rotation');
    }
  }
  return {
    ...baseHandler('logfile', s),
    type: 'logfile',
    path,
    stream,
    old_files: oldFiles,
    max_size: maxSize,
    when,
    interval,
    encoding,
    delay,
    rotation,
  };
}

function convertSyslog(s: ConfigSection): SyslogHandler {
  return {
    ...baseHandler('syslog', s),
    type: 'syslog',
    facility: s.values['facility'] as string,
    address: s.values['address'] as SocketAddress,
  };
}

function convertOther(type: OtherHandler['type']) {
  return (s: ConfigSection): OtherHandler => {
    if (type === 'email-notifier') {
      const u = s.values['smtp_username'] as string;
      const p = s.values['smtp_password'] as string;
      if (Boolean(u) !== Boolean(p)) bad('both smtp-username and smtp-password or none must be given');
    }
    return { ...baseHandler(type, s), type, options: { ...s.values } };
  };
}

const httpUrl = (v: string): string => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return bad('url must be an http url');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad('url must be an http url');
  if (!u.host) bad('url must specify a location');
  if (!u.pathname) bad('url must specify a path');
  return v;
};

const getOrPost = (v: string): string => {
  const u = v.toUpperCase();
  if (u !== 'GET' && u !== 'POST') bad(`method must be "GET" or "POST", instead received: ${pyRepr(v)}`);
  return u;
};

const BASE_HANDLER_KEYS: KeyDef[] = [
  { name: 'formatter', datatype: 'dotted-name' },
  { name: 'dateformat', default: '%Y-%m-%dT%H:%M:%S' },
  { name: 'level', datatype: 'logging-level', default: 'notset' },
  { name: 'style', datatype: 'log-format-style', default: 'classic' },
  { name: 'arbitrary-fields', datatype: 'boolean', default: 'false' },
];

const fmt = (d: string): KeyDef => ({ name: 'format', datatype: 'escaped-string', default: d });

export const logfileType: SectionTypeDef = {
  name: 'logfile',
  implements: [HANDLER_ABSTRACT],
  keys: [
    ...BASE_HANDLER_KEYS,
    { name: 'path', required: true },
    { name: 'old-files', datatype: 'integer', default: '0' },
    { name: 'max-size', datatype: 'byte-size', default: '0' },
    { name: 'when', default: '' },
    { name: 'interval', datatype: 'integer', default: '0' },
    fmt('------\\n%(asctime)s %(levelname)s %(name)s %(message)s'),
    { name: 'encoding' },
    { name: 'delay', datatype: 'boolean', default: 'false' },
  ],
  convert: convertLogfile,
};

export const syslogType: SectionTypeDef = {
  name: 'syslog',
  implements: [HANDLER_ABSTRACT],
  keys: [
    ...BASE_HANDLER_KEYS,
    { name: 'facility', datatype: 'syslog-facility', default: 'user' },
    { name: 'address', datatype: 'socket-address', default: 'localhost:514' },
    fmt('%(name)s %(message)s'),
  ],
  convert: convertSyslog,
};

const win32Type: SectionTypeDef = {
  name: 'win32-eventlog',
  implements: [HANDLER_ABSTRACT],
  keys: [...BASE_HANDLER_KEYS, { name: 'appname', default: 'Zope' }, fmt('%(levelname)s %(name)s %(message)s')],
  convert: convertOther('win32-eventlog'),
};

const httpType: SectionTypeDef = {
  name: 'http-logger',
  implements: [HANDLER_ABSTRACT],
  keys: [
    ...BASE_HANDLER_KEYS,
    { name: 'url', datatype: httpUrl, default: 'http://localhost/' },
    { name: 'method', datatype: getOrPost, default: 'GET' },
    fmt('%(asctime)s %(levelname)s %(name)s %(message)s'),
  ],
  convert: convertOther('http-logger'),
};

const emailType: SectionTypeDef = {
  name: 'email-notifier',
  implements: [HANDLER_ABSTRACT],
  keys: [
    ...BASE_HANDLER_KEYS,
    { name: 'from', required: true, attribute: 'fromaddr' },
    { name: 'to', required: true, multi: true, attribute: 'toaddrs' },
    { name: 'subject', default: 'Message from Zope' },
    { name: 'smtp-server', datatype: 'inet-address', default: 'localhost' },
    { name: 'smtp-username', default: '' },
    { name: 'smtp-password', default: '' },
    fmt('%(asctime)s %(levelname)s %(name)s %(message)s'),
  ],
  convert: convertOther('email-notifier'),
};

const LOGGER_BASE = {
  keys: [{ name: 'level', datatype: 'logging-level', default: 'info' }] as KeyDef[],
  sections: [{ type: HANDLER_ABSTRACT, name: '*' as const, multi: true, attribute: 'handlers' }],
};

export const eventlogType: SectionTypeDef = {
  name: 'eventlog',
  implements: [LOG_ABSTRACT],
  ...LOGGER_BASE,
  convert: (s): EventLogConfig => ({ level: s.values['level'] as number, handlers: s.values['handlers'] as LogHandlerConfig[] }),
};

export const loggerType: SectionTypeDef = {
  name: 'logger',
  implements: [LOG_ABSTRACT],
  keys: [...LOGGER_BASE.keys, { name: 'propagate', datatype: 'boolean', default: 'true' }, { name: 'name', datatype: 'dotted-name' }],
  sections: LOGGER_BASE.sections,
  convert: (s): LoggerConfig => ({
    level: s.values['level'] as number,
    handlers: s.values['handlers'] as LogHandlerConfig[],
    name: (s.values['name'] as string | null) ?? null,
    propagate: s.values['propagate'] as boolean,
  }),
};

export const LOGGER_COMPONENT = 'ZConfig.components.logger';

export const loggerComponent = {
  abstracts: [HANDLER_ABSTRACT, LOG_ABSTRACT],
  types: [eventlogType, loggerType, logfileType, syslogType, win32Type, httpType, emailType],
};
