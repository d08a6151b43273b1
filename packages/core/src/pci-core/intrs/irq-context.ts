import type { EventfdCtx } from '../../os/index.js';
import type { Virqfd } from './virqfd.js';

/**
 * Per-vector interrupt state of the index in use (struct vfio_pci_irq_ctx):
 * the eventfd the vector signals, whether it is masked (INTx only), and the
 * eventfds userspace attached to unmask or mask it.
 */
export interface IrqContext {
  trigger: EventfdCtx | null;
  masked: boolean;
  unmask: Virqfd | null;
  mask: Virqfd | null;
}
