import { SimError } from '../../errors/index.js';
import type { IommufdObject, IommufdObjectType } from './object.js';
import { U32_MAX } from './limits.js';

type Slot =
  | { readonly state: 'reserved'; readonly object: IommufdObject }
  | { readonly state: 'live'; readonly object: IommufdObject }
  /** An id kept out of use after its object was torn down by the kernel (iommufd_object_tombstone_user). */
  | { readonly state: 'tombstone' };

/**
 * The context's object xarray (XA_FLAGS_ALLOC1). Ids are the lowest free
 * index from 1, so an id freed by IOMMU_DESTROY is handed out again. An
 * object is allocated (its id reserved, invisible to lookups) while it is
 * being built, then finalized or aborted; that is how a failed creation
 * leaves no id behind.
 */
export class ObjectTable {
  readonly #slots = new Map<number, Slot>();

  /** _iommufd_object_alloc(): reserves the lowest free id for `object`. */
  alloc<T extends IommufdObject>(object: T): T {
    let id = 1;
    while (this.#slots.has(id)) id++;
    if (id > U32_MAX) throw new SimError('OUT_OF_MEMORY', 'iommufd object ids exhausted');
    object.id = id;
    this.#slots.set(id, { state: 'reserved', object });
    return object;
  }

  /** iommufd_object_finalize(): the object becomes visible to ioctls. */
  finalize(object: IommufdObject): void {
    const slot = this.#slots.get(object.id);
    if (slot?.state !== 'reserved' || slot.object !== object) throw new Error(`iommufd: finalize of an object that was not allocated (id ${object.id})`);
    this.#slots.set(object.id, { state: 'live', object });
  }

  /** iommufd_object_abort(): frees a reserved id; the caller undid whatever the object took. */
  abort(object: IommufdObject): void {
    const slot = this.#slots.get(object.id);
    if (slot?.state !== 'reserved' || slot.object !== object) throw new Error(`iommufd: abort of an object that was not allocated (id ${object.id})`);
    this.#slots.delete(object.id);
  }

  /** iommufd_object_abort_and_destroy(): for an object that already took references. */
  abortAndDestroy(object: IommufdObject): void {
    object.destroy();
    this.abort(object);
  }

  /**
   * iommufd_get_object(): a live object of `type` (any type when omitted).
   * A free id, a reserved one, a tombstone and an object of another type
   * all answer ENOENT, as the kernel's type check does.
   */
  get<T extends IommufdObject>(id: number, ...types: IommufdObjectType[]): T {
    const slot = this.#slots.get(id);
    if (slot?.state !== 'live') throw new SimError('NOT_FOUND', `iommufd: no object with id ${id}`);
    if (types.length && !types.includes(slot.object.type)) {
      throw new SimError('NOT_FOUND', `iommufd: object ${id} is a ${slot.object.type}, not a ${types.join(' or ')}`);
    }
    return slot.object as T;
  }

  /** The live object with `id`, or undefined. */
  find(id: number): IommufdObject | undefined {
    const slot = this.#slots.get(id);
    return slot?.state === 'live' ? slot.object : undefined;
  }

  /**
   * IOMMU_DESTROY (iommufd_object_remove without a caller reference): ENOENT
   * for anything but a live object, EBUSY while any other user holds it.
   */
  remove(id: number): IommufdObject {
    const slot = this.#slots.get(id);
    if (slot?.state !== 'live') throw new SimError('NOT_FOUND', `iommufd: no object with id ${id}`);
    if (slot.object.users !== 1) {
      throw new SimError('BUSY', `iommufd: ${slot.object.type} ${id} is in use (${slot.object.users - 1} other users)`);
    }
    this.#slots.delete(id);
    slot.object.users = 0;
    slot.object.destroy();
    return slot.object;
  }

  /**
   * iommufd_object_destroy_user(): the kernel user that holds one of the
   * object's users destroys it. Its reference and the table's must be the
   * only ones left; anything else is a bug in the caller.
   */
  destroyUser(object: IommufdObject): void {
    if (object.users !== 2) throw new Error(`iommufd: ${object.type} ${object.id} destroyed while still in use (users ${object.users})`);
    object.users = 1;
    this.remove(object.id);
  }

  /**
   * iommufd_object_tombstone_user(): destroys the object but keeps its id
   * out of use until the context closes, so a stale id cannot name a new
   * object.
   */
  tombstone(object: IommufdObject): void {
    const slot = this.#slots.get(object.id);
    if (slot?.state !== 'live' || slot.object !== object) throw new Error(`iommufd: tombstone of an object that is not live (id ${object.id})`);
    this.#slots.set(object.id, { state: 'tombstone' });
    object.users = 0;
    object.destroy();
  }

  /** No entry at all: what IOMMU_OPTION's RLIMIT_MODE SET requires. */
  get empty(): boolean {
    return this.#slots.size === 0;
  }

  /** Live objects in id order (xa_for_each). */
  live(): IommufdObject[] {
    return [...this.#slots.entries()]
      .filter(([, slot]) => slot.state === 'live')
      .sort(([a], [b]) => a - b)
      .map(([, slot]) => (slot as { object: IommufdObject }).object);
  }

  /**
   * iommufd_fops_release(): destroys, in id order and round after round,
   * every object only the table still holds, so leaves go before the
   * objects they point at. Tombstones are simply forgotten.
   */
  releaseAll(): void {
    for (const [id, slot] of [...this.#slots]) if (slot.state === 'tombstone') this.#slots.delete(id);
    while (this.#slots.size !== 0) {
      let destroyed = 0;
      for (const object of this.live()) {
        if (object.users !== 1) continue;
        this.#slots.delete(object.id);
        object.users = 0;
        object.destroy();
        destroyed++;
      }
      if (destroyed === 0) throw new Error('iommufd: objects still referenced at close (users refcount bug)');
    }
  }
}
