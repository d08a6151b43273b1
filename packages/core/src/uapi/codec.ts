/**
 * Struct codecs for the uAPI, laid out by the x86-64 (LP64) C rules: every
 * scalar is aligned to its own size, a struct or union to its most aligned
 * member, a struct's size is rounded up to its alignment (tail padding), and
 * all integers are little-endian. Offsets and sizes are computed from the
 * declared field types, never written down, so a codec can only disagree
 * with the kernel by declaring a different C type.
 *
 * Scalars are read and written straight from the Uint8Array (no DataView) so
 * that the single-field accessors used on hot paths allocate nothing for
 * 8/16/32-bit fields.
 */

/** A value accepted where a T is written: nested structs may omit fields, arrays may be short; what is missing is left as it is. */
export type DeepPartial<T> = T extends number | bigint
  ? T
  : T extends readonly (infer E)[]
    ? readonly DeepPartial<E>[]
    : { [K in keyof T]?: DeepPartial<T[K]> };

/** A C type with an x86-64 layout: a scalar, a fixed array or a struct. */
export interface CType<T> {
  readonly kind: 'scalar' | 'array' | 'struct';
  /** The C spelling, for layouts and messages (`__u32`, `__u64[2]`, `struct vfio_info_cap_header`). */
  readonly cName: string;
  readonly size: number;
  readonly align: number;
  /** Reads the value at byte `at`; the caller has checked the bounds. */
  read(bytes: Uint8Array, at: number): T;
  /** Writes the value at byte `at`; parts left undefined keep their bytes. The caller has checked the bounds. */
  write(bytes: Uint8Array, at: number, value: DeepPartial<T>): void;
}

/** A flexible array member (`type name[]`): no storage in sizeof, elements follow the struct. */
export interface FlexibleArray<E> {
  readonly kind: 'flexible';
  readonly elem: CType<E>;
}

/** Unnamed bytes declared as an explicit hole: never decoded; encodeNew leaves them zero, encode leaves them as they are. */
export interface Padding {
  readonly kind: 'padding';
  readonly size: number;
}

/** One member of an anonymous union; members of the same union share `group`. */
export interface UnionMember<T> {
  readonly kind: 'union';
  readonly type: CType<T>;
  readonly group: object;
}

type FieldSpec = CType<any> | FlexibleArray<any> | Padding | UnionMember<any>;
type StructSpec = Record<string, FieldSpec>;

type DecodedField<F> = F extends UnionMember<infer T> ? T : F extends CType<infer T> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The decoded, plain-object form of a struct declared by `spec`: flexible arrays and padding are not part of it. */
export type StructValue<S extends StructSpec> = Simplify<{
  -readonly [K in keyof S as S[K] extends FlexibleArray<any> | Padding ? never : K]: DecodedField<S[K]>;
}>;

/** The decoded value type of a codec: `CValue<typeof vfio_region_info>`. */
export type CValue<C> = C extends CType<infer T> ? T : never;

/** Where one named field sits, as offsetof/sizeof would report it. */
export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  /** sizeof the member; 0 for a flexible array member. */
  readonly size: number;
  readonly cType: string;
  readonly arrayLen?: number;
  /** Element size of a fixed or flexible array. */
  readonly elemSize?: number;
  readonly flexible?: true;
  readonly inAnonymousUnion?: true;
}

export interface FlexibleLayout {
  readonly name: string;
  readonly offset: number;
  readonly elem: CType<unknown>;
}

export interface StructCodec<T> extends CType<T> {
  readonly kind: 'struct';
  /** The kernel's struct tag. */
  readonly name: string;
  /** Named members in declaration order, union members each listed at the union's offset. */
  readonly fields: readonly FieldLayout[];
  /** The flexible array member, if the struct ends with one; its elements are read with `flexible.elem`. */
  readonly flexible: FlexibleLayout | undefined;
  /** Decodes `size` bytes at `offset`; the bytes must be there (a short buffer is a caller bug, not a user error). */
  decode(bytes: Uint8Array, offset?: number): T;
  /**
   * Encodes into `bytes` at `offset`. Members of an anonymous union are written
   * in declaration order, so when several are given the last declared wins, as
   * when the kernel stores the output member over the input one.
   */
  encode(value: T, bytes: Uint8Array, offset?: number): void;
  /** A fresh zero-filled `size`-byte buffer with the given fields encoded. */
  encodeNew(value?: DeepPartial<T>): Uint8Array;
  offsetOf(field: keyof T & string): number;
  /** Reads one field without decoding the rest. */
  readField<K extends keyof T & string>(bytes: Uint8Array, field: K, offset?: number): T[K];
  /** Writes one field without touching the rest. */
  writeField<K extends keyof T & string>(bytes: Uint8Array, field: K, value: T[K], offset?: number): void;
}

// ---------------------------------------------------------------- scalars

function checkRange(bytes: Uint8Array, at: number, length: number, what: string): void {
  if (!Number.isInteger(at) || at < 0 || at + length > bytes.length) {
    throw new RangeError(`${what}: ${length} bytes at offset ${at} do not fit a ${bytes.length}-byte buffer`);
  }
}

/**
 * A field stores the low N bits of the value. Anything representable in the
 * signed or the unsigned N-bit type is accepted, the way C converts an int
 * constant such as VFIO_PCI_DEVID_NOT_OWNED (-1) on assignment to a __u32;
 * anything wider is a model bug.
 */
function checkNumber(value: unknown, bits: number, cName: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${cName} needs an integer number, got ${String(value)}`);
  }
  if (value < -(2 ** (bits - 1)) || value >= 2 ** bits) {
    throw new RangeError(`${value} does not fit ${cName}`);
  }
  return value;
}

const U64_LIMIT = 1n << 64n;
const S64_MIN = -(1n << 63n);

function scalar<T extends number | bigint>(
  cName: string,
  size: number,
  read: (b: Uint8Array, at: number) => T,
  write: (b: Uint8Array, at: number, v: T) => void,
): CType<T> {
  return Object.freeze({
    kind: 'scalar' as const,
    cName,
    size,
    align: size,
    read,
    write: write as (b: Uint8Array, at: number, v: DeepPartial<T>) => void,
  });
}

export const u8: CType<number> = scalar('__u8', 1, (b, at) => b[at]!, (b, at, v) => {
  b[at] = checkNumber(v, 8, '__u8') & 0xff;
});

export const u16: CType<number> = scalar('__u16', 2, (b, at) => b[at]! | (b[at + 1]! << 8), (b, at, v) => {
  const x = checkNumber(v, 16, '__u16');
  b[at] = x & 0xff;
  b[at + 1] = (x >>> 8) & 0xff;
});

function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function storeU32(b: Uint8Array, at: number, x: number): void {
  b[at] = x & 0xff;
  b[at + 1] = (x >>> 8) & 0xff;
  b[at + 2] = (x >>> 16) & 0xff;
  b[at + 3] = (x >>> 24) & 0xff;
}

export const u32: CType<number> = scalar('__u32', 4, readU32, (b, at, v) => storeU32(b, at, checkNumber(v, 32, '__u32')));

export const s32: CType<number> = scalar('__s32', 4, (b, at) => readU32(b, at) | 0, (b, at, v) =>
  storeU32(b, at, checkNumber(v, 32, '__s32')));

function u64Type(cName: string): CType<bigint> {
  return scalar(cName, 8, (b, at) => BigInt(readU32(b, at)) | (BigInt(readU32(b, at + 4)) << 32n), (b, at, v) => {
    if (typeof v !== 'bigint') throw new TypeError(`${cName} needs a bigint, got ${String(v)}`);
    if (v < S64_MIN || v >= U64_LIMIT) throw new RangeError(`${v} does not fit ${cName}`);
    const x = BigInt.asUintN(64, v);
    storeU32(b, at, Number(x & 0xffffffffn));
    storeU32(b, at + 4, Number(x >> 32n));
  });
}

export const u64: CType<bigint> = u64Type('__u64');
/** `__aligned_u64`: 8-aligned even on i386; on x86-64 the same as `__u64`. */
export const aligned_u64: CType<bigint> = u64Type('__aligned_u64');
/** `__aligned_le64`: an 8-aligned little-endian word (SMMUv3 STEs and commands); x86-64 is little-endian anyway. */
export const aligned_le64: CType<bigint> = u64Type('__aligned_le64');

// ---------------------------------------------------------------- composites

/** A fixed-size array member (`__u32 idr[6]`); decodes to an array of `length` elements. */
export interface ArrayType<E> extends CType<E[]> {
  readonly kind: 'array';
  readonly elem: CType<E>;
  readonly length: number;
}

export function array<E>(elem: CType<E>, length: number): ArrayType<E> {
  if (!Number.isInteger(length) || length <= 0) throw new RangeError(`array length must be a positive integer, got ${length}`);
  const cName = `${elem.cName}[${length}]`;
  return Object.freeze({
    kind: 'array' as const,
    cName,
    size: elem.size * length,
    align: elem.align,
    elem,
    length,
    read(bytes: Uint8Array, at: number): E[] {
      const out = new Array<E>(length);
      for (let i = 0; i < length; i++) out[i] = elem.read(bytes, at + i * elem.size);
      return out;
    },
    write(bytes: Uint8Array, at: number, value: DeepPartial<E[]>): void {
      const items = value as readonly DeepPartial<E>[];
      if (items.length > length) throw new RangeError(`${items.length} elements do not fit ${cName}`);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (item !== undefined) elem.write(bytes, at + i * elem.size, item);
      }
    },
  });
}

/** A flexible array member; it must be the last member. */
export function flexible<E>(elem: CType<E>): FlexibleArray<E> {
  return Object.freeze({ kind: 'flexible' as const, elem });
}

/** An explicit run of unnamed padding bytes. */
export function padding(size: number): Padding {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`padding must be a positive number of bytes, got ${size}`);
  return Object.freeze({ kind: 'padding' as const, size });
}

/**
 * An anonymous union, spread into the enclosing struct's spec:
 * `{ ...union({ group_id: u32, devid: u32 }), segment: u16 }`. Every member
 * sits at the union's offset and appears by name in the decoded object.
 */
export function union<M extends Record<string, CType<any>>>(members: M): { [K in keyof M]: UnionMember<CValue<M[K]>> } {
  const group = {};
  const out: Record<string, UnionMember<unknown>> = {};
  for (const [name, type] of Object.entries(members)) out[name] = Object.freeze({ kind: 'union' as const, type, group });
  return out as { [K in keyof M]: UnionMember<CValue<M[K]>> };
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

interface Member {
  readonly name: string;
  readonly offset: number;
  readonly type: CType<unknown>;
}

class StructCodecImpl<T> implements StructCodec<T> {
  readonly kind = 'struct' as const;
  readonly cName: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly FieldLayout[];
  readonly flexible: FlexibleLayout | undefined;
  readonly #members: readonly Member[];
  readonly #byName: ReadonlyMap<string, Member>;

  constructor(readonly name: string, spec: StructSpec) {
    this.cName = `struct ${name}`;
    const members: Member[] = [];
    const fields: FieldLayout[] = [];
    let flex: FlexibleLayout | undefined;
    let cursor = 0;
    let maxAlign = 1;
    const entries = Object.entries(spec);
    const seenUnions = new Set<object>();

    for (let i = 0; i < entries.length; i++) {
      const [fieldName, field] = entries[i]!;
      if (flex) throw new RangeError(`struct ${name}: flexible array ${flex.name} must be the last member`);
      switch (field.kind) {
        case 'padding':
          cursor += field.size;
          break;
        case 'flexible': {
          const offset = alignUp(cursor, field.elem.align);
          maxAlign = Math.max(maxAlign, field.elem.align);
          flex = Object.freeze({ name: fieldName, offset, elem: field.elem });
          fields.push(Object.freeze({
            name: fieldName, offset, size: 0, cType: `${field.elem.cName}[]`, elemSize: field.elem.size, flexible: true as const,
          }));
          cursor = offset;
          break;
        }
        case 'union': {
          if (seenUnions.has(field.group)) throw new RangeError(`struct ${name}: members of one union must be adjacent`);
          seenUnions.add(field.group);
          const group: [string, CType<unknown>][] = [];
          for (let j = i; j < entries.length; j++) {
            const next = entries[j]![1];
            if (next.kind !== 'union' || next.group !== field.group) break;
            group.push([entries[j]![0], next.type]);
          }
          const unionAlign = Math.max(...group.map(([, t]) => t.align));
          const unionSize = alignUp(Math.max(...group.map(([, t]) => t.size)), unionAlign);
          const offset = alignUp(cursor, unionAlign);
          for (const [memberName, type] of group) {
            members.push({ name: memberName, offset, type });
            fields.push(Object.freeze({ ...describe(memberName, offset, type), inAnonymousUnion: true as const }));
          }
          maxAlign = Math.max(maxAlign, unionAlign);
          cursor = offset + unionSize;
          i += group.length - 1;
          break;
        }
        default: {
          const offset = alignUp(cursor, field.align);
          members.push({ name: fieldName, offset, type: field });
          fields.push(Object.freeze(describe(fieldName, offset, field)));
          maxAlign = Math.max(maxAlign, field.align);
          cursor = offset + field.size;
        }
      }
    }

    this.align = maxAlign;
    this.size = alignUp(cursor, maxAlign);
    this.fields = Object.freeze(fields);
    this.flexible = flex;
    this.#members = Object.freeze(members);
    this.#byName = new Map(members.map((m) => [m.name, m]));
    Object.freeze(this);
  }

  read(bytes: Uint8Array, at: number): T {
    const out: Record<string, unknown> = {};
    for (const m of this.#members) out[m.name] = m.type.read(bytes, at + m.offset);
    return out as T;
  }

  write(bytes: Uint8Array, at: number, value: DeepPartial<T>): void {
    const input = value as Record<string, unknown>;
    for (const m of this.#members) {
      const v = input[m.name];
      if (v !== undefined) m.type.write(bytes, at + m.offset, v as DeepPartial<unknown>);
    }
  }

  decode(bytes: Uint8Array, offset = 0): T {
    checkRange(bytes, offset, this.size, this.cName);
    return this.read(bytes, offset);
  }

  encode(value: T, bytes: Uint8Array, offset = 0): void {
    checkRange(bytes, offset, this.size, this.cName);
    this.write(bytes, offset, value as DeepPartial<T>);
  }

  encodeNew(value: DeepPartial<T> = {} as DeepPartial<T>): Uint8Array {
    const bytes = new Uint8Array(this.size);
    this.write(bytes, 0, value);
    return bytes;
  }

  offsetOf(field: keyof T & string): number {
    return this.#member(field).offset;
  }

  readField<K extends keyof T & string>(bytes: Uint8Array, field: K, offset = 0): T[K] {
    const m = this.#member(field);
    checkRange(bytes, offset + m.offset, m.type.size, `${this.cName}.${field}`);
    return m.type.read(bytes, offset + m.offset) as T[K];
  }

  writeField<K extends keyof T & string>(bytes: Uint8Array, field: K, value: T[K], offset = 0): void {
    const m = this.#member(field);
    checkRange(bytes, offset + m.offset, m.type.size, `${this.cName}.${field}`);
    m.type.write(bytes, offset + m.offset, value as DeepPartial<unknown>);
  }

  #member(field: string): Member {
    const m = this.#byName.get(field);
    if (!m) throw new RangeError(`${this.cName} has no member ${field}`);
    return m;
  }
}

function describe(name: string, offset: number, type: CType<unknown>): FieldLayout {
  if (type.kind === 'array') {
    const { elem, length } = type as ArrayType<unknown>;
    return { name, offset, size: type.size, cType: type.cName, arrayLen: length, elemSize: elem.size };
  }
  return { name, offset, size: type.size, cType: type.cName };
}

/**
 * Declares a struct the way its C header does, members in order:
 * `defineStruct('vfio_irq_info', { argsz: u32, flags: u32, index: u32, count: u32 })`.
 */
export function defineStruct<const S extends StructSpec>(name: string, spec: S): StructCodec<StructValue<S>> {
  return new StructCodecImpl<StructValue<S>>(name, spec);
}

/** The kernel's offsetofend(): the first byte past `field`, how ioctls spell their minimum size. */
export function offsetofEnd<T>(codec: StructCodec<T>, field: keyof T & string): number {
  const layout = codec.fields.find((f) => f.name === field);
  if (!layout) throw new RangeError(`${codec.cName} has no member ${field}`);
  return layout.offset + layout.size;
}
