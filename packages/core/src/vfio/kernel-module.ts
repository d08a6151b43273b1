/**
 * A loadable module's reference count (struct module's refcnt): what
 * try_module_get/module_put move. The vfio core takes a reference on the
 * module of a device's driver from the first open of the device to its last
 * close, so the driver cannot be unloaded under an open device.
 */
export class KernelModule {
  #refs = 0;
  #going = false;

  constructor(readonly name: string) {}

  get refs(): number {
    return this.#refs;
  }

  /** try_module_get: fails only while the module is going away. */
  tryGet(): boolean {
    if (this.#going) return false;
    this.#refs++;
    return true;
  }

  put(): void {
    if (this.#refs === 0) throw new RangeError(`module ${this.name}: reference count underflow`);
    this.#refs--;
  }

  /** The start of delete_module: from here on tryGet fails. */
  beginUnload(): void {
    this.#going = true;
  }
}
