import { SimError } from '../errors/index.js';
import type { OpenFile } from './file.js';
import type { Process } from './process.js';

/**
 * Opens a device node for a process: the driver's open (chrdev open +
 * file_operations.open). It builds the OpenFile with the open flags it is
 * given and may throw a SimError (EBUSY, EPERM, ENODEV ...).
 */
export type DeviceOpener = (proc: Process, flags: number) => OpenFile;

/**
 * The device nodes under /dev that drivers create and remove
 * (/dev/vfio/vfio, /dev/vfio/<group>, /dev/vfio/devices/vfioN,
 * /dev/iommu). Paths match exactly; there is no directory walk.
 */
export class DeviceNodes {
  readonly #nodes = new Map<string, DeviceOpener>();

  /** device_create: EEXIST if the path is taken. */
  register(path: string, opener: DeviceOpener): void {
    if (this.#nodes.has(path)) throw new SimError('EXISTS', `device node ${path} already exists`);
    this.#nodes.set(path, opener);
  }

  /** device_destroy: the path disappears; files already open stay open. ENOENT if absent. */
  unregister(path: string): void {
    if (!this.#nodes.delete(path)) throw new SimError('NO_SUCH_FILE', `no device node ${path}`);
  }

  has(path: string): boolean {
    return this.#nodes.has(path);
  }

  /** The registered paths, sorted. */
  list(): string[] {
    return [...this.#nodes.keys()].sort();
  }

  /** Opens a node; ENOENT for a path nobody registered. */
  open(proc: Process, path: string, flags: number): OpenFile {
    const opener = this.#nodes.get(path);
    if (!opener) throw new SimError('NO_SUCH_FILE', `no device node ${path}`);
    return opener(proc, flags);
  }
}
