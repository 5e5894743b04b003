// vhost-user protocol feature bits (spec "Protocol features"), negotiated with
// GET/SET_PROTOCOL_FEATURES once VHOST_USER_F_PROTOCOL_FEATURES is offered. Names without the
// VHOST_USER_PROTOCOL_F_ prefix; BACKEND_* were SLAVE_* before.

export enum VhostUserProtocolFeature {
  /** Multiple queues; GET_QUEUE_NUM. */
  MQ = 0,
  /** SET_LOG_BASE carries the log as a shared memory fd. */
  LOG_SHMFD = 1,
  /** SEND_RARP after migration. */
  RARP = 2,
  /** NEED_REPLY flag honoured: the back-end acks any request that asks. */
  REPLY_ACK = 3,
  /** NET_SET_MTU. */
  MTU = 4,
  /** SET_BACKEND_REQ_FD: a channel for back-end initiated requests. */
  BACKEND_REQ = 5,
  /** SET_VRING_ENDIAN for legacy devices. */
  CROSS_ENDIAN = 6,
  /** CREATE/CLOSE_CRYPTO_SESSION. */
  CRYPTO_SESSION = 7,
  /** Postcopy migration with userfaultfd. */
  PAGEFAULT = 8,
  /** GET_CONFIG / SET_CONFIG. */
  CONFIG = 9,
  /** The back-end may send fds on its request channel. */
  BACKEND_SEND_FD = 10,
  /** Host notifier areas (back-end VRING_HOST_NOTIFIER_MSG). */
  HOST_NOTIFIER = 11,
  /** GET/SET_INFLIGHT_FD. */
  INFLIGHT_SHMFD = 12,
  /** RESET_DEVICE. */
  RESET_DEVICE = 13,
  /** In-band kick/call/err messages instead of eventfds. */
  INBAND_NOTIFICATIONS = 14,
  /** GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG. */
  CONFIGURE_MEM_SLOTS = 15,
  /** SET_STATUS / GET_STATUS. */
  STATUS = 16,
  /** Memory regions carry Xen mmap flags and domid (40-byte regions; not spoken by this codec). */
  XEN_MMAP = 17,
  /** Shared objects (dma-buf by UUID). */
  SHARED_OBJECT = 18,
  /** SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE. */
  DEVICE_STATE = 19,
}
