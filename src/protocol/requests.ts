// Front-end message types: the requests QEMU (or any front-end) sends to the back-end.
// Codes and names as in QEMU docs/interop/vhost-user.rst, "Front-end message types".

export enum FrontendRequest {
  /** Get the device's virtio feature bits (reply u64). */
  GET_FEATURES = 1,
  /** Set the virtio feature bits the driver accepted (u64). */
  SET_FEATURES = 2,
  /** Start of a session: the sender becomes the owner. */
  SET_OWNER = 3,
  /** Deprecated: disable all rings (or ignore). */
  RESET_OWNER = 4,
  /** Replace the memory table; one fd per region (postcopy: reply with mapped bases). */
  SET_MEM_TABLE = 5,
  /** Set the dirty log area (log description, fd with LOG_SHMFD). */
  SET_LOG_BASE = 6,
  /** Set the eventfd that tells the front-end the log changed. */
  SET_LOG_FD = 7,
  /** Set the size of a vring. */
  SET_VRING_NUM = 8,
  /** Set the desc/used/avail addresses and log address of a vring. */
  SET_VRING_ADDR = 9,
  /** Set the next descriptor index (split) or indices (packed) of a vring. */
  SET_VRING_BASE = 10,
  /** Stop a vring and get its next descriptor index/indices. */
  GET_VRING_BASE = 11,
  /** Set (or clear, NOFD) the kick eventfd of a vring; receiving a kick starts it. */
  SET_VRING_KICK = 12,
  /** Set (or clear, NOFD) the call eventfd the back-end signals used buffers on. */
  SET_VRING_CALL = 13,
  /** Set (or clear, NOFD) the error eventfd of a vring. */
  SET_VRING_ERR = 14,
  /** Get the vhost-user protocol feature bits (reply u64). */
  GET_PROTOCOL_FEATURES = 15,
  /** Set the protocol feature bits the front-end accepted (u64). */
  SET_PROTOCOL_FEATURES = 16,
  /** Get the maximum number of queues the back-end supports (reply u64). */
  GET_QUEUE_NUM = 17,
  /** Enable (num 1) or disable (num 0) a vring. */
  SET_VRING_ENABLE = 18,
  /** Broadcast a fake RARP for the guest MAC (first 6 bytes of the u64) after migration. */
  SEND_RARP = 19,
  /** Set the host MTU exposed to the guest (u64). */
  NET_SET_MTU = 20,
  /** Set the socket for back-end initiated requests (previous name SET_SLAVE_REQ_FD). */
  SET_BACKEND_REQ_FD = 21,
  /** Update or invalidate a device IOTLB entry (reply u64, 0 = success). */
  IOTLB_MSG = 22,
  /** Set the endianness of a legacy vring (num 0 little, 1 big). */
  SET_VRING_ENDIAN = 23,
  /** Read device config space (reply: config space, same size; size 0 = error). */
  GET_CONFIG = 24,
  /** Write device config space. */
  SET_CONFIG = 25,
  /** Create a crypto session (reply: session description). */
  CREATE_CRYPTO_SESSION = 26,
  /** Close a crypto session (u64 session id). */
  CLOSE_CRYPTO_SESSION = 27,
  /** Postcopy migration is underway: open a userfaultfd (reply carries it). */
  POSTCOPY_ADVISE = 28,
  /** Postcopy mode has started: register memory with the userfaultfd. */
  POSTCOPY_LISTEN = 29,
  /** Postcopy finished: disable the userfaultfd (reply u64, 0 = success). */
  POSTCOPY_END = 30,
  /** Get the shared inflight-tracking buffer (reply: inflight description + fd). */
  GET_INFLIGHT_FD = 31,
  /** Hand the inflight-tracking buffer back to the back-end (fd). */
  SET_INFLIGHT_FD = 32,
  /** Set the vhost-user-gpu protocol socket (fd). */
  GPU_SET_SOCKET = 33,
  /** Disable all rings and reset device state; ownership is kept. */
  RESET_DEVICE = 34,
  /** In-band kick of a vring (INBAND_NOTIFICATIONS). */
  VRING_KICK = 35,
  /** Get the maximum number of memory slots (reply u64). */
  GET_MAX_MEM_SLOTS = 36,
  /** Add one memory region (fd). */
  ADD_MEM_REG = 37,
  /** Remove one memory region (no fd; a stray one is accepted and must be closed). */
  REM_MEM_REG = 38,
  /** Set the virtio device status byte (u64). */
  SET_STATUS = 39,
  /** Get the virtio device status byte (reply u64). */
  GET_STATUS = 40,
  /** Get the dma-buf fd exported for a UUID. */
  GET_SHARED_OBJECT = 41,
  /** Open the back-end state transfer channel (fd; reply u64 + optional fd). */
  SET_DEVICE_STATE_FD = 42,
  /** Did the back-end state transfer succeed? (reply u64, 0 = success). */
  CHECK_DEVICE_STATE = 43,
}

/** True if `code` is one of the front-end message types. */
export function isFrontendRequest(code: number): code is FrontendRequest {
  return Number.isInteger(code) && typeof FrontendRequest[code] === 'string';
}

/** Spec name of a request code (`SET_VRING_ADDR`), or `UNKNOWN(<code>)` for codes the spec does not define. */
export function requestName(code: number): string {
  return isFrontendRequest(code) ? FrontendRequest[code] : `UNKNOWN(${code})`;
}
