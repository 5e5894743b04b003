// Public surface of the vhost-user wire codec (pure: no I/O, no fds, no state).

export { ProtocolError, VhostUserError, type VhostUserErrorCode } from './errors.ts';
export { FrontendRequest, isFrontendRequest, requestName } from './requests.ts';
export {
  VHOST_USER_HDR_SIZE,
  VHOST_USER_NEED_REPLY_MASK,
  VHOST_USER_REPLY_MASK,
  VHOST_USER_VERSION,
  VHOST_USER_VERSION_MASK,
  decodeHeader,
  encodeHeader,
  type Header,
} from './header.ts';
export {
  CRYPTO_SESSION_MAX_SIZE,
  DeviceStateDirection,
  DeviceStatePhase,
  IotlbType,
  SPLIT_VRING_BASE_MASK,
  VHOST_MEMORY_BASELINE_NREGIONS,
  VHOST_SET_CONFIG_TYPE_FRONTEND,
  VHOST_SET_CONFIG_TYPE_MIGRATION,
  VHOST_USER_CONFIG_HDR_SIZE,
  VHOST_USER_MAX_CONFIG_SIZE,
  VHOST_USER_VRING_INDEX_MASK,
  VHOST_USER_VRING_NOFD_MASK,
  VHOST_VRING_F_LOG,
  decodePackedVringBase,
  encodePackedVringBase,
  type ConfigSpace,
  type DeviceStateTransfer,
  type Inflight,
  type IotlbMsg,
  type Log,
  type MemTable,
  type MemoryRegion,
  type PackedVringBase,
  type SharedObject,
  type SingleMemReg,
  type VringAddr,
  type VringFile,
  type VringState,
} from './payloads.ts';
export {
  CATALOG,
  PAYLOAD_SIZES,
  VHOST_USER_MAX_PAYLOAD_SIZE,
  catalogEntry,
  type CatalogEntry,
  type FdKind,
  type PayloadKind,
  type ReplyKind,
} from './catalog.ts';
export type { Request, RequestBodies, RequestInput, RequestOf } from './request-types.ts';
export type { RepliedRequest, ReplyPayloads } from './reply-types.ts';
export { decodeRequest } from './decode.ts';
export { decodeReply, decodeReplyAck } from './decode-reply.ts';
export { encodeReply, encodeReplyAck, encodeRequest } from './encode.ts';
export { VhostUserProtocolFeature } from './protocol-features.ts';
export { VirtioFeature } from './virtio-features.ts';
export { describeFeatures, featureMask, hasFeature, type FeatureNameTable } from './feature-bits.ts';
