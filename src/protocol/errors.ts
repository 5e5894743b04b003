// Errors of the vhost-user wire codec.
//
// Every failure of the codec is a ProtocolError with a stable `code` that callers branch on.
// A decode error means the front-end sent bytes that are not a well-formed vhost-user message:
// treat the front-end as buggy or hostile (log one line, close the connection, close any fds
// that came with the message). VU_ERR_BAD_VALUE comes only from the encoders and means the
// caller (our own code) passed a value that does not fit its wire field.

/** Stable error codes; the string values never change. */
export type VhostUserErrorCode =
  /** Fewer than 12 header bytes, version is not 1, reserved flag bits set, or REPLY set on a request. */
  | 'VU_ERR_BAD_HEADER'
  /** Header `size` differs from the bytes present, or the payload size is not one the request allows. */
  | 'VU_ERR_BAD_SIZE'
  /** The number of file descriptors received does not match what the request carries. */
  | 'VU_ERR_BAD_FDS'
  /** The request code is not one of the front-end message types 1–43. */
  | 'VU_ERR_UNKNOWN_REQUEST'
  /** A payload field breaks a syntax rule (too many regions, reserved bits set, config size > 256). */
  | 'VU_ERR_BAD_PAYLOAD'
  /** A reply does not answer the request it was read for (REPLY flag missing, other request code). */
  | 'VU_ERR_BAD_REPLY'
  /** Encoder input out of range for its wire field (a caller bug, not a peer's). */
  | 'VU_ERR_BAD_VALUE';

/** Base class of every vhost-user error; `code` is stable, `message` is for humans. */
export class VhostUserError extends Error {
  readonly code: VhostUserErrorCode;
  /** Spec name of the request involved (e.g. `SET_VRING_ADDR`), when known. */
  readonly request: string | undefined;

  constructor(code: VhostUserErrorCode, message: string, request?: string) {
    super(request === undefined ? `${code}: ${message}` : `${code}: ${request}: ${message}`);
    this.name = new.target.name;
    this.code = code;
    this.request = request;
  }
}

/** A message (or a value to encode) that breaks the vhost-user wire format. */
export class ProtocolError extends VhostUserError {}
