import { SimError } from '../../errors/index.js';
import { EPOLLHUP, EPOLLIN, eventfdCtxFdget, type EventfdCtx, type Process } from '../../os/index.js';

/**
 * vfio's eventfd-driven callbacks (drivers/vfio/virqfd.c): when userspace
 * (or KVM) signals the eventfd, the counter is consumed and `handler` runs;
 * if it returns true, `thread` runs after it (the kernel defers it to a
 * work queue, which here simply runs next). Closing the eventfd's last
 * reference tears the virqfd down on its own.
 */
export class Virqfd {
  readonly eventfd: EventfdCtx;
  #remove: (() => void) | null;

  private constructor(eventfd: EventfdCtx, handler: () => boolean, thread: (() => void) | null, onShutdown: () => void) {
    this.eventfd = eventfd;
    this.#remove = eventfd.waitQueue.addWakeFunction((key) => {
      if (key & EPOLLIN && eventfd.count > 0n) {
        eventfd.consume();
        if (handler() && thread) thread();
      }
      if (key & EPOLLHUP) {
        this.disable();
        onShutdown();
      }
    });
  }

  /**
   * vfio_virqfd_enable: EBADF for a closed fd, EINVAL for one that is not
   * an eventfd, EBUSY when the slot already holds a virqfd. An event that
   * arrived before the virqfd existed is handled at once.
   */
  static enable(
    proc: Process,
    fd: number,
    slot: { get(): Virqfd | null; set(v: Virqfd | null): void },
    handler: () => boolean,
    thread: (() => void) | null,
  ): Virqfd {
    const eventfd = eventfdCtxFdget(proc, fd);
    if (slot.get()) throw new SimError('BUSY', 'an eventfd is already attached here');
    const virqfd = new Virqfd(eventfd, handler, thread, () => {
      if (slot.get() === virqfd) slot.set(null);
    });
    slot.set(virqfd);
    // An event already pending is acted on, but left counted, as the poll at registration does.
    if (eventfd.count > 0n && handler() && thread) thread();
    return virqfd;
  }

  /** vfio_virqfd_disable: stops listening; later signals do nothing. */
  disable(): void {
    this.#remove?.();
    this.#remove = null;
  }
}
