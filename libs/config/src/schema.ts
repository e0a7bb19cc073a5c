/**
 * Declarative schemas (operations spec §2.7) and the registry of named components that
 * `%import NAME` makes available (§2.5).
 *
 * A schema is built from section types. A section type lists its keys (with datatype, default,
 * required, multi) and its section slots (which nested section types it accepts, how many,
 * and whether they must be named). A slot may name a concrete type, an abstract type (any
 * section type that `implements` it fits, e.g. 'zodb.storage'), or carry its own private
 * section type definition (how `<ssl>` means one thing inside `<zeo>` and another inside
 * `<clientstorage>`).
 *
 * All type names are lowercase in this module's tables (ZConfig lowercases them).
 */
import { ConfigError, pyRepr } from './errors.ts';
import { getDatatype, type Datatype } from './datatypes.ts';
import type { ConfigSection } from './matcher.ts';

export interface KeyDef {
  /** Key name as written in files (lowercase, e.g. 'read-only'). */
  name: string;
  /** Datatype name (see datatypes.ts) or a conversion function. Default 'string'. */
  datatype?: string | Datatype;
  /** Raw default text(s), converted with the datatype when the key is absent. */
  default?: string | string[];
  required?: boolean;
  /** Several lines allowed; the value is an array in file order. */
  multi?: boolean;
  /** Attribute name in the section value (default: name with '-' → '_'). */
  attribute?: string;
}

export interface SectionSlot {
  /** Concrete type name, abstract type name, or a private section type definition. */
  type: string | SectionTypeDef;
  /** '*': name optional, '+': name required. */
  name?: '*' | '+';
  /** At least one required. */
  required?: boolean;
  /** Any number allowed (value is an array). */
  multi?: boolean;
  /** Attribute name in the section value. */
  attribute: string;
}

export interface SectionTypeDef {
  /** Type name (lowercase), e.g. 'filestorage'. */
  name: string;
  /** Abstract types this type implements (lowercase), e.g. ['zodb.storage']. */
  implements?: string[];
  keys?: KeyDef[];
  sections?: SectionSlot[];
  /** How keys are read: 'basic-key' (default: letters first, lowercased) or 'identifier' (case kept). */
  keytype?: 'basic-key' | 'identifier';
  /** Accept any key (e.g. zdaemon's <environment>); values are collected into `arbitraryAttribute`. */
  arbitraryKeys?: { datatype?: string | Datatype; attribute: string };
  /**
   * Turns the matched, converted section into the application value (ZConfig's section
   * "datatype"). May throw ConfigError / ValueConversionError; the position of the section
   * is added. Default: the ConfigSection itself.
   */
  convert?: (section: ConfigSection) => unknown;
  /** For storage types: the opener kind logged as `opening storage '<name>' using <Kind>` (§3.4). */
  kind?: string;
}

export interface Component {
  /** Section types the component defines. */
  types: SectionTypeDef[];
  /** Abstract type names the component defines. */
  abstracts?: string[];
  /** Other components loaded with this one. */
  imports?: string[];
}

/** A schema: the top-level "section" plus the components it starts with. */
export interface SchemaDef {
  /** Name used in messages. */
  name: string;
  keys?: KeyDef[];
  sections?: SectionSlot[];
  /** Components available from the start (their types are known without %import). */
  components: string[];
}

// ---------------------------------------------------------------- registry

const components = new Map<string, Component | (() => Component)>();

/**
 * Register (or extend) a component that `%import NAME` loads. `types` may be a function so the
 * definitions are built lazily. Registering a name twice merges the type lists.
 */
export function registerImport(name: string, component: Component | SectionTypeDef[] | (() => Component)): void {
  const comp: Component | (() => Component) = Array.isArray(component) ? { types: component } : component;
  const prev = components.get(name);
  if (!prev) {
    components.set(name, comp);
    return;
  }
  const a = typeof prev === 'function' ? prev() : prev;
  const b = typeof comp === 'function' ? comp() : comp;
  components.set(name, {
    types: [...a.types, ...b.types],
    abstracts: [...(a.abstracts ?? []), ...(b.abstracts ?? [])],
    imports: [...(a.imports ?? []), ...(b.imports ?? [])],
  });
}

/**
 * Register a section type. Without `component` it joins the always-loaded component
 * 'zeo-ts.extra' (available in every schema without %import); with `component` it joins that
 * importable component (e.g. registerSectionType(primaryDef, { component: 'zc.zrs' })).
 */
export function registerSectionType(def: SectionTypeDef, opts: { component?: string } = {}): void {
  validateTypeDef(def);
  registerImport(opts.component ?? EXTRA_COMPONENT, { types: [def] });
}

/** The component holding section types registered without a component name. */
export const EXTRA_COMPONENT = 'zeo-ts.extra';

export function getComponent(name: string): Component | undefined {
  const c = components.get(name);
  if (c === undefined) return undefined;
  if (typeof c === 'function') {
    const built = c();
    components.set(name, built);
    return built;
  }
  return c;
}

export function isRegisteredImport(name: string): boolean {
  return components.has(name);
}

export function registeredImports(): string[] {
  return [...components.keys()];
}

/** Check a definition (a programming error, not a configuration error, when it is wrong). */
function validateTypeDef(def: SectionTypeDef): void {
  const lower = (what: string, n: string) => {
    if (n !== n.toLowerCase()) throw new Error(`${what} must be lowercase in section type definitions: ${pyRepr(n)} (in <${def.name}>)`);
  };
  lower('section type names', def.name);
  for (const a of def.implements ?? []) lower('abstract type names', a);
  for (const k of def.keys ?? []) lower('key names', k.name);
  for (const s of def.sections ?? []) {
    if (typeof s.type === 'string') lower('slot types', s.type);
    else validateTypeDef(s.type);
  }
}

// ---------------------------------------------------------------- resolved schema (one per load)

/** The types known while matching one configuration; grows with each %import. */
export class TypeTable {
  readonly types = new Map<string, SectionTypeDef>();
  readonly abstracts = new Set<string>();
  readonly loaded = new Set<string>();
  /** Names of private slot types (e.g. the two kinds of <ssl>). */
  readonly privateNames = new Set<string>();

  constructor(initial: string[]) {
    this.addComponent(EXTRA_COMPONENT, true);
    for (const c of initial) this.addComponent(c, false);
  }

  /** Load a component by name. Returns false when no component of that name exists. */
  addComponent(name: string, optional: boolean): boolean {
    if (this.loaded.has(name)) return true;
    const comp = getComponent(name);
    if (!comp) {
      if (optional) return false;
      throw new Error(`schema component not registered: ${pyRepr(name)}`);
    }
    this.loaded.add(name);
    for (const dep of comp.imports ?? []) this.addComponent(dep, false);
    for (const a of comp.abstracts ?? []) this.abstracts.add(a.toLowerCase());
    for (const t of comp.types) this.addType(t);
    return true;
  }

  private addType(t: SectionTypeDef): void {
    validateTypeDef(t);
    const prev = this.types.get(t.name);
    if (prev && prev !== t) throw new ConfigError(`type name cannot be redefined: ${pyRepr(t.name)}`);
    this.types.set(t.name, t);
    for (const a of t.implements ?? []) this.abstracts.add(a);
    // Private slot types are known names too (an <ssl> in the wrong place is "no matching
    // section", not "unknown type").
    for (const s of t.sections ?? []) {
      if (typeof s.type !== 'string') this.privateNames.add(s.type.name);
    }
  }

  isKnown(name: string): boolean {
    return this.types.has(name) || this.abstracts.has(name) || this.privateNames.has(name);
  }
}

/** Convert a key's default text with its datatype (definitions are trusted). */
export function keyDatatype(k: KeyDef): Datatype {
  const d = k.datatype ?? 'string';
  return typeof d === 'string' ? getDatatype(d) : d;
}

export function keyAttribute(k: KeyDef): string {
  return k.attribute ?? k.name.replace(/-/g, '_');
}
