/**
 * The kernel's view of a process's memory, as ioctl handlers use it: the
 * copy_from_user/copy_to_user pair. The os layer implements it over a
 * process's address space.
 */
export interface UserMemory {
  /**
   * Copies `length` bytes starting at user address `addr`. Throws
   * SimError('BAD_ADDRESS') (EFAULT) if any of them is not readable.
   */
  copyFromUser(addr: bigint, length: number): Uint8Array;
  /**
   * Copies `bytes` to user address `addr`. Throws SimError('BAD_ADDRESS')
   * (EFAULT) if any target byte is not writable.
   */
  copyToUser(addr: bigint, bytes: Uint8Array): void;
}
