/**
 * @zeo-ts/config — the ZConfig configuration language and the ZEO/ZODB schemas
 * (operations spec §2–§4).
 *
 *   loadServerConfig(path | { text }, { overrides })  → typed zeo.conf (ServerConfig)
 *   loadClientConfig(path | { text }, opts)           → typed <zodb>/<zeoclient>/<clientstorage>
 *   parseConfig(text, url, opts)                      → the language as a tree (pure)
 *   matchConfig(tree, schema, opts)                   → a tree checked against a schema
 *   registerSectionType / registerImport              → plugins add section types (<zrs>, <raidstorage>…)
 *
 * Every problem is a ConfigError whose message names file and line (§2.8).
 */
export { ConfigError, ValueConversionError, pyRepr, type SourcePos, type ConfigErrorStyle } from './errors.ts';
export { substitute, isSubstitutionName, SubstitutionError, type Environment } from './substitution.ts';
export {
  parseConfig,
  resolveUrl,
  type ConfigTree,
  type ConfigNode,
  type KeyNode,
  type SectionNode,
  type ImportNode,
  type ParseOptions,
  type IncludedSource,
} from './parser.ts';
export { readSource, normalizeSourceUrl } from './source.ts';
export * as datatypes from './datatypes.ts';
export {
  getDatatype,
  registerDatatype,
  datatypeNames,
  formatAddress,
  levelName,
  LOG_LEVELS,
  type Datatype,
  type DatatypeContext,
  type SocketAddress,
  type LogFormatStyle,
} from './datatypes.ts';
export {
  registerImport,
  registerSectionType,
  isRegisteredImport,
  registeredImports,
  EXTRA_COMPONENT,
  type KeyDef,
  type SectionSlot,
  type SectionTypeDef,
  type SchemaDef,
  type Component,
} from './schema.ts';
export {
  matchConfig,
  parseOverride,
  defaultStorageConvert,
  STORAGE_ABSTRACT,
  type ConfigSection,
  type StorageSection,
  type Override,
  type MatchOptions,
  type MatchResult,
} from './matcher.ts';
export { registerProvider, getProvider, hasProvider, unregisterProvider, type ProviderKind, type StorageOpener, type StorageOpenContext } from './providers.ts';
export { findInstalledPlugins, loadInstalledPlugins, type InstalledPlugin } from './plugins.ts';
export { loadConfig, parseSource, type ConfigSource, type LoadOptions } from './load.ts';
export {
  loadServerConfig,
  serverSchema,
  fileStorageFromPath,
  OVERRIDES_WITHOUT_CONFIG,
  effectiveMsgpack,
  effectivePidFile,
  type ServerConfig,
  type ServerLoadOptions,
  type ZeoConfig,
  type ServerSslConfig,
  type ServedStorage,
} from './server.ts';
export {
  loadClientConfig,
  clientSchema,
  clientOptions,
  defaultClientName,
  isClientStorage,
  type ClientConfig,
  type ClientOptions,
  type ClientSslConfig,
} from './client.ts';
export {
  DATABASE_ABSTRACT,
  ZODB_COMPONENT,
  storageOptions,
  type FileStorageOptions,
  type MappingStorageOptions,
  type DemoStorageOptions,
  type BlobStorageOptions,
  type ZeoClientSectionOptions,
  type ZodbDatabaseConfig,
} from './components/zodb.ts';
export { ZEO_COMPONENT, ZEO_SERVER_COMPONENT } from './components/zeo.ts';
export {
  LOGGER_COMPONENT,
  HANDLER_ABSTRACT,
  LOG_RECORD_FIELDS,
  formatFields,
  type EventLogConfig,
  type LoggerConfig,
  type LogHandlerConfig,
  type LogFileHandler,
  type SyslogHandler,
  type OtherHandler,
} from './components/logger.ts';
export { ZDAEMON_COMPONENT, zdctlSchema, type RunnerConfig, type ZdctlConfig } from './components/zdaemon.ts';
export { loadZdctlConfig } from './zdctl.ts';
export { formatLogRecord, strftime, type LogRecordFields, type FormatSpec } from './logformat.ts';
