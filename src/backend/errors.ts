/**
 * Errors of the session state machine. Each has a stable `code`; `request` names the request that
 * failed and `queueIndex` the virtqueue where there is one. A SessionError means the front-end asked
 * for something invalid in this state (a hostile or buggy front-end, or a feature we lack): the
 * request fails, the connection and the process carry on.
 */
import { VhostUserError, type VhostUserErrorCode } from '../protocol/errors.ts';

export type SessionErrorCode =
  /** A queue index past the device's queues. */
  | 'VU_ERR_BAD_QUEUE_INDEX'
  /** A value outside what the spec or this device allows (queue size, MTU, config window…). */
  | 'VU_ERR_BAD_VALUE'
  /** The request needs a feature that was not negotiated, or one we do not offer. */
  | 'VU_ERR_NOT_NEGOTIATED'
  /** The request is valid but this back-end does not implement it. */
  | 'VU_ERR_UNSUPPORTED'
  /** The request comes in a state where it makes no sense (e.g. rings before memory). */
  | 'VU_ERR_BAD_STATE';

export class SessionError extends Error {
  readonly code: SessionErrorCode;
  readonly request: string;
  readonly queueIndex: number | undefined;

  constructor(code: SessionErrorCode, request: string, message: string, queueIndex?: number) {
    super(`${code}: ${request}${queueIndex === undefined ? '' : ` (queue ${queueIndex})`}: ${message}`);
    this.name = 'SessionError';
    this.code = code;
    this.request = request;
    this.queueIndex = queueIndex;
  }
}

/** The stable code of any error thrown while handling a request (ours, the codec's or the data plane's). */
export function errorCode(error: unknown): string {
  if (error instanceof SessionError || error instanceof VhostUserError) return error.code as SessionErrorCode | VhostUserErrorCode;
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return 'VU_ERR_INTERNAL';
}
