import { VirtualClock } from './clock.js';
import { DeviceNodes } from './devfs.js';
import { PhysicalMemory, type PhysicalMemoryOptions } from './phys-mem.js';
import { Process } from './process.js';

export interface SystemOptions {
  readonly physMem?: PhysicalMemoryOptions;
}

/**
 * The simulated operating system of one host: its virtual clock, its RAM,
 * its device nodes and its processes. Drivers register device nodes in
 * devfs; userspace is whatever spawn() returns.
 */
export class System {
  readonly clock: VirtualClock;
  readonly physMem: PhysicalMemory;
  readonly devfs: DeviceNodes;
  readonly #processes = new Map<number, Process>();
  #nextPid = 1;

  constructor(options: SystemOptions = {}) {
    this.clock = new VirtualClock();
    this.physMem = new PhysicalMemory(options.physMem);
    this.devfs = new DeviceNodes();
  }

  /** A new process with an empty fd table and address space; pids count up from 1. */
  spawn(): Process {
    const proc = new Process(this, this.#nextPid++, (gone) => this.#processes.delete(gone.pid));
    this.#processes.set(proc.pid, proc);
    return proc;
  }

  /** The live process with this pid. */
  process(pid: number): Process | undefined {
    return this.#processes.get(pid);
  }

  /** Live processes, in pid order. */
  get processes(): readonly Process[] {
    return [...this.#processes.values()];
  }
}
