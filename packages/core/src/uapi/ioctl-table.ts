import { SimError } from '../errors/index.js';
import type { StructCodec } from './codec.js';
import { uapiFacts } from './facts.js';
import type { IoctlName } from './ioctls.js';
import type { UserMemory } from './user-memory.js';
import { checkMinSize, readIommufdStruct, readVfioArgsz } from './user-struct.js';

/** One ioctl call as a handler sees it. */
export interface IoctlCall {
  readonly name: string;
  readonly request: number;
  /** The ioctl's third argument: a user pointer, or a plain integer for ioctls that take one. */
  readonly argp: bigint;
  readonly mem: UserMemory;
}

export interface StructIoctlCall extends IoctlCall {
  /** The user's argsz (VFIO) or size (iommufd). */
  readonly userSize: number;
}

export type StructIoctlHandler<Ctx, T> = (ctx: Ctx, arg: T, call: StructIoctlCall) => number;
export type RawIoctlHandler<Ctx> = (ctx: Ctx, call: IoctlCall) => number;

/**
 * How the argument is read before the handler runs: `vfio` applies the argsz
 * rule (readVfioArgsz), `iommufd` the size rule (readIommufdStruct), `raw`
 * hands over argp untouched (integer arguments, strings, no argument).
 */
export type IoctlStyle = 'vfio' | 'iommufd' | 'raw';

export interface IoctlEntry<Ctx> {
  readonly name: string;
  readonly request: number;
  readonly style: IoctlStyle;
  /** The argument struct; undefined for raw entries. */
  readonly codec: StructCodec<unknown> | undefined;
  /** The smallest argsz/size accepted; 0 for raw entries. */
  readonly minSize: number;
  readonly run: (ctx: Ctx, call: IoctlCall) => number;
}

/** A request by its kernel name (number from the facts), or a name and number for one the facts do not list. */
export type IoctlId = IoctlName | { readonly name: string; readonly request: number };

export interface IoctlTableOptions<Ctx> {
  /**
   * Answers requests no entry claims. Without it they are ENOTTY. iommufd
   * needs it: numbers outside its command range go to its VFIO container
   * compatibility layer.
   */
  readonly fallback?: RawIoctlHandler<Ctx>;
}

/**
 * The ioctl dispatch of one file type: request number -> argument struct,
 * minimum size and handler, the way iommufd's ioctl op table works. Handlers
 * receive the decoded struct; the size rule has already run, so a short,
 * over-long or unreadable argument never reaches them.
 */
export class IoctlTable<Ctx> {
  readonly #entries = new Map<number, IoctlEntry<Ctx>>();
  readonly #fallback: RawIoctlHandler<Ctx> | undefined;

  constructor(readonly name: string, options: IoctlTableOptions<Ctx> = {}) {
    this.#fallback = options.fallback;
  }

  /** An ioctl whose struct starts with argsz (and flags): the VFIO argsz rule. */
  vfio<T>(id: IoctlId, codec: StructCodec<T>, minSize: number, handler: StructIoctlHandler<Ctx, T>): this {
    checkMinSize(codec, minSize);
    return this.#add(id, 'vfio', codec, minSize, (ctx, call) => {
      const { value, userSize } = readVfioArgsz(call.mem, call.argp, codec, minSize);
      return handler(ctx, value, { ...call, userSize });
    });
  }

  /** An ioctl whose struct starts with size: the iommufd rule (copy_struct_from_user). */
  iommufd<T>(id: IoctlId, codec: StructCodec<T>, minSize: number, handler: StructIoctlHandler<Ctx, T>): this {
    checkMinSize(codec, minSize);
    return this.#add(id, 'iommufd', codec, minSize, (ctx, call) => {
      const { value, userSize } = readIommufdStruct(call.mem, call.argp, codec, minSize);
      return handler(ctx, value, { ...call, userSize });
    });
  }

  /** An ioctl whose argument the handler interprets itself. */
  raw(id: IoctlId, handler: RawIoctlHandler<Ctx>): this {
    return this.#add(id, 'raw', undefined, 0, handler);
  }

  get(request: number): IoctlEntry<Ctx> | undefined {
    return this.#entries.get(request >>> 0);
  }

  get entries(): readonly IoctlEntry<Ctx>[] {
    return [...this.#entries.values()];
  }

  /** Runs the ioctl; returns the handler's result and throws SimError for -errno. */
  ioctl(ctx: Ctx, mem: UserMemory, request: number, argp: bigint): number {
    const req = request >>> 0;
    const entry = this.#entries.get(req);
    if (entry) return entry.run(ctx, { name: entry.name, request: req, argp, mem });
    const call = { name: `0x${req.toString(16)}`, request: req, argp, mem };
    if (this.#fallback) return this.#fallback(ctx, call);
    throw new SimError('UNKNOWN_IOCTL', `${this.name}: no ioctl ${call.name}`);
  }

  #add(
    id: IoctlId,
    style: IoctlStyle,
    codec: StructCodec<any> | undefined,
    minSize: number,
    run: (ctx: Ctx, call: IoctlCall) => number,
  ): this {
    const { name, request } = typeof id === 'string' ? { name: id, request: uapiFacts.ioctls[id] } : id;
    const req = request >>> 0;
    const taken = this.#entries.get(req);
    if (taken) throw new SimError('EXISTS', `${this.name}: ${name} reuses request 0x${req.toString(16)} of ${taken.name}`);
    this.#entries.set(req, Object.freeze({ name, request: req, style, codec, minSize, run }));
    return this;
  }
}

/** Starts an empty dispatch table for one file type (a vfio device fd, a container, an iommufd). */
export function ioctlTable<Ctx>(name: string, options?: IoctlTableOptions<Ctx>): IoctlTable<Ctx> {
  return new IoctlTable<Ctx>(name, options);
}
