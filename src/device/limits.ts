/**
 * Every size limit of the TypeScript control plane, in one place (docs/limits.md has the table of
 * all limits, both layers, with where each is enforced and the error code of a violation).
 * The Rust data plane keeps its own named constants (vring MAX_QUEUE_SIZE, MAX_REGIONS; datapath
 * MAX_TX_FRAME, chain length = queue size; node MAX_PAYLOAD_SIZE, MAX_FDS); the mirrors below must equal them.
 */

/** virtio 1.2 §2.7: Queue Size is a power of 2, at most 32768 (SET_VRING_NUM; Rust: vring MAX_QUEUE_SIZE). */
export const MAX_QUEUE_SIZE = 32768;

/** Queue pairs one device may have (--queues): one worker thread and one TAP queue each. */
export const MAX_QUEUE_PAIRS = 16;

/** Memory slots with CONFIGURE_MEM_SLOTS (spec: VHOST_USER_MAX_RAM_SLOTS 512 − 3; Rust: vring MAX_REGIONS). */
export const MAX_MEM_SLOTS = 509;

/** Largest message payload the addon reads (Rust: node MAX_PAYLOAD_SIZE); more is VU_ERR_MSG_TOO_LARGE. */
export const MAX_MESSAGE_PAYLOAD = 4096;

/** Most fds on one message (Rust: node MAX_FDS); more is VU_ERR_FDS_TRUNCATED. */
export const MAX_MESSAGE_FDS = 16;

/** MTU offered to the guest or set by NET_SET_MTU: IPv4's minimum up to the largest IP packet. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

/** Most switch MAC-table entries (stations) one port's device state carries in a live migration. */
export const MAX_CARRIED_STATIONS = 256;

/** Longest busy-poll budget (`--busy-poll`, microseconds): one second. */
export const MAX_BUSY_POLL_US = 1_000_000;
