/**
 * Matching a parsed configuration tree against a schema (operations spec §2.4, §2.5 %import,
 * §2.7) with command-line overrides (§2.9), producing converted section values.
 */
import { ConfigError, pyRepr, ValueConversionError, type SourcePos } from './errors.ts';
import { basicKey, identifier, type DatatypeContext } from './datatypes.ts';
import type { ConfigNode, ConfigTree, SectionNode } from './parser.ts';
import {
  isRegisteredImport,
  keyAttribute,
  keyDatatype,
  TypeTable,
  type KeyDef,
  type SchemaDef,
  type SectionSlot,
  type SectionTypeDef,
} from './schema.ts';

/** A matched section with its converted values (ZConfig's SectionValue). */
export interface ConfigSection {
  /** Section type (lowercase). For the top level: the schema name. */
  type: string;
  /** Section name (lowercase) or null. */
  name: string | null;
  /** Where the section starts (line 0 for the top level). */
  pos: SourcePos;
  /** Where the section ends. */
  endPos: SourcePos;
  /** Converted values by attribute (`read-only` → `read_only`); nested sections by slot attribute. */
  values: Record<string, unknown>;
  /** Attributes whose keys were given explicitly (file or -X), as opposed to defaulted. */
  given: Set<string>;
}

// ---------------------------------------------------------------- -X overrides

export interface Override {
  /** Path segments (lowercased), the last one a key. */
  path: string[];
  value: string;
  /** The specifier as given (for messages). */
  spec: string;
  pos: SourcePos;
}

/** Parse one `-X path=value` specifier (§2.9). Throws ConfigError for malformed ones. */
export function parseOverride(spec: string): Override {
  const pos: SourcePos = { url: `command-line option -X ${spec}`, line: 0 };
  const eq = spec.indexOf('=');
  if (eq < 0) throw new ConfigError('invalid configuration specifier', pos);
  const path = spec.slice(0, eq).split('/');
  const value = spec.slice(eq + 1);
  if (path.includes('')) throw new ConfigError("'//' is not allowed in an option path", pos);
  const out: string[] = [];
  for (const seg of path) {
    try {
      out.push(basicKey(seg, {}));
    } catch (e) {
      // [D] upstream crashes here; we report a usage error.
      if (e instanceof ValueConversionError) {
        throw new ConfigError(
          `invalid configuration override ${pyRepr(spec)}: path segment ${pyRepr(seg)} must start with a letter ` +
            `(address a section by its type when its name is not a valid key)`,
          pos,
        );
      }
      throw e;
    }
  }
  return { path: out, value, spec, pos };
}

class OptionBag {
  private readonly keypairs = new Map<string, Override[]>();
  private sectitems: Override[] = [];

  constructor(items: Override[]) {
    for (const it of items) {
      if (it.path.length === 1) {
        const k = it.path[0]!;
        const l = this.keypairs.get(k);
        if (l) l.push(it);
        else this.keypairs.set(k, [it]);
      } else {
        this.sectitems.push(it);
      }
    }
  }

  has(key: string): boolean {
    return this.keypairs.has(key);
  }

  /** Take the items addressed to a child section (by name first, else by type). */
  takeSection(type: string, name: string | null): OptionBag | null {
    const mine: Override[] = [];
    const keep: Override[] = [];
    for (const it of this.sectitems) {
      const s = it.path[0]!;
      if ((name && s === name) || s === type) mine.push({ ...it, path: it.path.slice(1) });
      else keep.push(it);
    }
    if (mine.length === 0) return null;
    this.sectitems = keep;
    return new OptionBag(mine);
  }

  takeKeys(): Override[] {
    const all = [...this.keypairs.values()].flat();
    this.keypairs.clear();
    return all;
  }

  finish(pos: SourcePos): void {
    if (this.sectitems.length || this.keypairs.size) {
      const left = [...this.sectitems, ...[...this.keypairs.values()].flat()].map((o) => o.spec);
      // Reason as upstream; the position names the section end and the unused specifiers.
      throw new ConfigError('not all command line options were consumed', { url: `${pos.url}, -X ${left.join(', -X ')}`, line: pos.line });
    }
  }
}

// ---------------------------------------------------------------- matching

export interface MatchOptions {
  /** `-X path=value` specifiers, applied on top of the file. */
  overrides?: string[];
  /** Context for the datatypes (working directory for relative path checks). */
  datatypeContext?: DatatypeContext;
  /**
   * Match the partial tree of a failed parse: open sections and the top level are not
   * finished, so only errors located before the parse error are found.
   */
  partial?: boolean;
}

export interface MatchResult {
  /** The top-level section (after its schema-level conversion, if any). */
  top: ConfigSection;
  /** Components loaded (initial ones and %import-ed). */
  components: string[];
}

interface RawValue {
  text: string;
  pos: SourcePos;
  key: string;
}

interface Ctx {
  table: TypeTable;
  dctx: DatatypeContext;
  partial: boolean;
}

type Body = Pick<SectionTypeDef, 'keys' | 'sections' | 'arbitraryKeys' | 'keytype'>;

class Matcher {
  private readonly rawKeys = new Map<string, RawValue[]>(); // by key name
  private readonly arbitrary = new Map<string, RawValue[]>();
  private readonly slotValues = new Map<SectionSlot, unknown[]>();
  private readonly names = new Set<string>();
  private readonly keyDefs = new Map<string, KeyDef>();

  constructor(
    private readonly ctx: Ctx,
    private readonly body: Body,
    private readonly type: string,
    private readonly name: string | null,
    private readonly pos: SourcePos,
    private readonly bag: OptionBag | null,
  ) {
    for (const k of body.keys ?? []) this.keyDefs.set(k.name, k);
  }

  addValue(key: string, text: string, pos: SourcePos, fromOverride = false): void {
    let real: string;
    try {
      real = this.body.keytype === 'identifier' ? identifier(key, this.ctx.dctx) : basicKey(key, this.ctx.dctx);
    } catch (e) {
      if (e instanceof ValueConversionError) throw new ConfigError(e.message, pos, { key, style: 'conversion' });
      throw e;
    }
    if (!fromOverride && this.bag?.has(real)) return; // -X wins over the file (§2.9)
    const def = this.keyDefs.get(real);
    if (!def) {
      if (this.body.arbitraryKeys) {
        const l = this.arbitrary.get(real);
        if (l) l.push({ text, pos, key });
        else this.arbitrary.set(real, [{ text, pos, key }]);
        return;
      }
      throw new ConfigError(`${pyRepr(key)} is not a known key name`, pos, { key });
    }
    const l = this.rawKeys.get(real);
    if (l && !def.multi) throw new ConfigError(`${pyRepr(key)} does not support multiple values`, pos, { key });
    if (l) l.push({ text, pos, key });
    else this.rawKeys.set(real, [{ text, pos, key }]);
  }

  /** Find the slot accepting a section of `type`; throws the spec's messages. */
  findSlot(type: string, name: string | null, pos: SourcePos): { slot: SectionSlot; def: SectionTypeDef } {
    for (const slot of this.body.sections ?? []) {
      if (typeof slot.type !== 'string') {
        if (slot.type.name === type) return { slot, def: slot.type };
        continue;
      }
      const concrete = this.ctx.table.types.get(type);
      if (slot.type === type && concrete) return { slot, def: concrete };
      if (concrete && (concrete.implements ?? []).includes(slot.type)) return { slot, def: concrete };
    }
    throw new ConfigError(`no matching section defined for type='${type}', name='${name ?? 'None'}'`, pos);
  }

  childBag(type: string, name: string | null): OptionBag | null {
    return this.bag ? this.bag.takeSection(type, name) : null;
  }

  addSection(slot: SectionSlot, name: string | null, value: unknown, pos: SourcePos): void {
    if (name) {
      if (this.names.has(name)) {
        throw new ConfigError(`section names must not be re-used within the same container:${pyRepr(name)}`, pos);
      }
      this.names.add(name);
    }
    const l = this.slotValues.get(slot);
    if (l && !slot.multi) throw new ConfigError(`too many instances of ${pyRepr(slotTypeName(slot))} section`, pos);
    if (l) l.push(value);
    else this.slotValues.set(slot, [value]);
  }

  finish(endPos: SourcePos): ConfigSection {
    if (this.bag) {
      for (const o of this.bag.takeKeys()) this.addValue(o.path[0]!, o.value, o.pos, true);
      this.bag.finish(endPos);
    }
    const values: Record<string, unknown> = {};
    const given = new Set<string>();
    // Presence checks first (ZConfig reports missing things before bad values).
    for (const k of this.body.keys ?? []) {
      if (k.required && !this.rawKeys.has(k.name) && k.default === undefined) {
        throw new ConfigError(`no values for ${pyRepr(k.name)}; 1 required`, endPos, { key: k.name });
      }
    }
    for (const s of this.body.sections ?? []) {
      const got = this.slotValues.get(s) ?? [];
      if (s.required && !s.multi && got.length === 0) {
        throw new ConfigError(`no values for section type ${pyRepr(slotTypeName(s))}; 1 required`, endPos);
      }
      if (s.required && s.multi && got.length < 1) {
        throw new ConfigError(`not enough values for section type ${pyRepr(slotTypeName(s))}; ${got.length} found, 1 required`, endPos);
      }
    }
    for (const k of this.body.keys ?? []) {
      const attr = keyAttribute(k);
      const conv = keyDatatype(k);
      const raw = this.rawKeys.get(k.name);
      if (raw) {
        given.add(attr);
        const out = raw.map((r) => this.convert(conv, r));
        values[attr] = k.multi ? out : out[0];
      } else if (k.default !== undefined) {
        const defs = Array.isArray(k.default) ? k.default : [k.default];
        const out = defs.map((d) => conv(d, this.ctx.dctx));
        values[attr] = k.multi ? out : out[0];
      } else {
        values[attr] = k.multi ? [] : null;
      }
    }
    if (this.body.arbitraryKeys) {
      const ak = this.body.arbitraryKeys;
      const conv = keyDatatype({ name: '+', datatype: ak.datatype });
      const m: Record<string, unknown> = {};
      for (const [k, raws] of this.arbitrary) m[k] = this.convert(conv, raws[raws.length - 1]!);
      values[ak.attribute] = m;
      if (this.arbitrary.size) given.add(ak.attribute);
    }
    for (const s of this.body.sections ?? []) {
      const got = this.slotValues.get(s);
      if (got) given.add(s.attribute);
      values[s.attribute] = s.multi ? (got ?? []) : (got?.[0] ?? null);
    }
    return { type: this.type, name: this.name, pos: this.pos, endPos, values, given };
  }

  private convert(conv: (v: string, c: DatatypeContext) => unknown, r: RawValue): unknown {
    try {
      return conv(r.text, this.ctx.dctx);
    } catch (e) {
      if (e instanceof ValueConversionError) throw new ConfigError(e.message, r.pos, { key: r.key, style: 'conversion' });
      if (e instanceof ConfigError && !e.url) throw e.withPosition(r.pos, r.key);
      throw e;
    }
  }
}

function slotTypeName(s: SectionSlot): string {
  return typeof s.type === 'string' ? s.type : s.type.name;
}

function walk(ctx: Ctx, m: Matcher, nodes: ConfigNode[]): void {
  for (const node of nodes) {
    if (node.kind === 'key') {
      m.addValue(node.key, node.value, node.pos);
    } else if (node.kind === 'import') {
      importComponent(ctx, node.name, node.pos);
    } else {
      matchSection(ctx, m, node);
    }
  }
}

function importComponent(ctx: Ctx, name: string, pos: SourcePos): void {
  if (!isRegisteredImport(name)) {
    throw new ConfigError(
      `could not load package ${name}: no configuration component named ${pyRepr(name)} is registered in this build`,
      pos,
    );
  }
  try {
    ctx.table.addComponent(name, false);
  } catch (e) {
    if (e instanceof ConfigError) throw e.withPosition(pos);
    throw e;
  }
}

function matchSection(ctx: Ctx, parent: Matcher, node: SectionNode): void {
  const { type, name, pos } = node;
  if (!ctx.table.isKnown(type)) throw new ConfigError(`unknown type name: ${pyRepr(type)}`, pos);
  if (ctx.table.abstracts.has(type) && !ctx.table.types.has(type)) {
    throw new ConfigError(`concrete sections cannot match abstract section types; found abstract type ${pyRepr(type)}`, pos);
  }
  const { slot, def } = parent.findSlot(type, name, pos);
  if ((slot.name ?? '*') === '+' && !name) {
    throw new ConfigError(`None is not an allowed name for ${pyRepr(slotTypeName(slot))} sections`, pos);
  }
  const child = new Matcher(ctx, def, type, name, pos, parent.childBag(type, name));
  walk(ctx, child, node.children);
  if (ctx.partial && node.open) return;
  const section = child.finish(node.endPos);
  let value: unknown = section;
  const convert = def.convert ?? ((def.implements ?? []).includes(STORAGE_ABSTRACT) ? defaultStorageConvert(def) : undefined);
  if (convert) {
    try {
      value = convert(section);
    } catch (e) {
      if (e instanceof ValueConversionError) throw new ConfigError(e.message, node.endPos, { style: 'conversion' });
      if (e instanceof ConfigError && !e.url) throw e.withPosition(node.endPos);
      throw e;
    }
  }
  parent.addSection(slot, name, value, node.endPos);
}

/** The abstract type every storage section implements (§2.4). */
export const STORAGE_ABSTRACT = 'zodb.storage';

/**
 * A storage section after matching: what a server or client needs to open it. Nested storage
 * sections inside `options` (demostorage, blobstorage, zrs, raidstorage...) are StorageSections too.
 */
export interface StorageSection {
  /** Section type, e.g. 'filestorage'. */
  type: string;
  /** Section name (lowercase) or null when unnamed (the server names it '1', §3.1). */
  name: string | null;
  /** Opener kind for `opening storage '<name>' using <Kind>` (§3.4), e.g. 'FileStorage'. */
  kind: string;
  /** Converted keys and nested sections by attribute (`pack-gc` → `pack_gc`). */
  options: Record<string, unknown>;
  /** Attributes given explicitly in the file or by -X. */
  given: Set<string>;
  pos: SourcePos;
}

/** The conversion used for storage types that define no `convert` of their own. */
export function defaultStorageConvert(def: SectionTypeDef): (s: ConfigSection) => StorageSection {
  return (s) => ({ type: s.type, name: s.name, kind: def.kind ?? def.name, options: s.values, given: s.given, pos: s.pos });
}

/** Match `tree` against `schema`. Throws ConfigError. */
export function matchConfig(tree: ConfigTree, schema: SchemaDef, opts: MatchOptions = {}): MatchResult {
  const overrides = (opts.overrides ?? []).map(parseOverride);
  const table = new TypeTable(schema.components);
  const ctx: Ctx = { table, dctx: opts.datatypeContext ?? {}, partial: opts.partial ?? false };
  const topPos: SourcePos = { url: tree.url, line: 0 };
  const bag = overrides.length ? new OptionBag(overrides) : null;
  const top = new Matcher(ctx, schema, schema.name, null, topPos, bag);
  walk(ctx, top, tree.children);
  if (ctx.partial) return { top: { type: schema.name, name: null, pos: topPos, endPos: topPos, values: {}, given: new Set() }, components: [...table.loaded] };
  return { top: top.finish(topPos), components: [...table.loaded] };
}
