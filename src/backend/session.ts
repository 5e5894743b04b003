/**
 * One vhost-user connection: decodes each message, checks it against the negotiated state,
 * dispatches it to its handler (handlers.ts) and replies. Every request goes through the same
 * steps: decode (size, fd count) → required feature → handler → reply or REPLY_ACK.
 *
 * A malformed message closes the connection (the stream can no longer be trusted); a well-formed
 * request that fails gets a failure REPLY_ACK (or, for requests whose reply carries data, a closed
 * connection, since there is no way to say "failed" in their reply). Nothing here can throw out
 * of onMessage: the process keeps serving other connections.
 */
import { decodeRequest } from '../protocol/decode.ts';
import { encodeReply, encodeReplyAck } from '../protocol/encode.ts';
import { catalogEntry } from '../protocol/catalog.ts';
import { requestName } from '../protocol/requests.ts';
import { VhostUserProtocolFeature } from '../protocol/protocol-features.ts';
import { VirtioFeature } from '../protocol/virtio-features.ts';
import { describeFeatures } from '../protocol/feature-bits.ts';
import type { Request } from '../protocol/request-types.ts';
import type { RepliedRequest, ReplyPayloads } from '../protocol/reply-types.ts';
import type { DataPlane } from '../device/data-plane.ts';
import type { NetDevice } from '../device/net-device.ts';
import type { Logger } from '../log.ts';
import { FdBag } from './fd-bag.ts';
import { errorCode } from './errors.ts';
import { HANDLERS, type HandlerResult, type ReplyResult } from './handlers.ts';
import type { QueuePairCounters } from '../device/data-plane.ts';
import { pipeStateChannel, type StateChannel } from '../migration/state-channel.ts';

/** Where replies go: the connection, or a test's recorder. */
export interface ReplyChannel {
  send(bytes: Uint8Array, fds?: number[]): void;
  close(reason: string): void;
}

/** Per-virtqueue facts the session tracks (the data plane holds the rest). */
export interface VringView {
  num: number;
  started: boolean;
  enabled: boolean;
  /** The ring's base as last set (SET_VRING_BASE) or returned when it stopped (GET_VRING_BASE). */
  nextAvail?: number;
}

/** The last SET_DEVICE_STATE_FD transfer: `settled` resolves (never rejects) once it ended, `error` set if it failed. */
export interface DeviceStateTransferView {
  direction: 'save' | 'load';
  settled: Promise<void>;
  done: boolean;
  error?: Error;
}

export class Session {
  /** Virtio features acked by SET_FEATURES (undefined until then). */
  ackedFeatures: bigint | undefined;
  /** Protocol features acked by SET_PROTOCOL_FEATURES. */
  ackedProtocolFeatures = 0n;
  ownerSet = false;
  status = 0;
  hasMemory = false;
  readonly vrings: VringView[];
  /** The last back-end state transfer (VHOST_USER_PROTOCOL_F_DEVICE_STATE), for CHECK_DEVICE_STATE. */
  deviceStateTransfer: DeviceStateTransferView | undefined;
  /** Counter totals a loaded device state brought from earlier hosts; a saved state adds them to ours. */
  carriedCounters: QueuePairCounters[] | undefined;
  private closed = false;
  /** Messages that arrived while a reply was deferred: handled in order once it is sent. */
  private readonly held: { bytes: Uint8Array; fds: number[] }[] = [];
  private deferring = false;

  constructor(
    readonly device: NetDevice,
    readonly dataPlane: DataPlane,
    private readonly channel: ReplyChannel,
    readonly log: Logger,
    private readonly closeFd: (fd: number) => void,
    /** Where SET_DEVICE_STATE_FD transfers go (tests give one that touches no real fd). */
    readonly stateChannel: StateChannel = pipeStateChannel,
  ) {
    this.vrings = Array.from({ length: device.queueCount }, () => ({ num: 0, started: false, enabled: false }));
  }

  hasProtocolFeature(feature: VhostUserProtocolFeature): boolean {
    return (this.ackedProtocolFeatures & (1n << BigInt(feature))) !== 0n;
  }

  hasFeature(feature: VirtioFeature): boolean {
    return ((this.ackedFeatures ?? 0n) & (1n << BigInt(feature))) !== 0n;
  }

  /** Handles one message exactly as received (header + payload) with the fds that came with it. */
  onMessage(bytes: Uint8Array, fds: number[]): void {
    if (this.deferring) {
      this.held.push({ bytes, fds });
      return;
    }
    const bag = new FdBag(fds, this.closeFd);
    try {
      this.handle(bytes, bag);
    } finally {
      bag.closeRest();
    }
  }

  private handle(bytes: Uint8Array, fds: FdBag): void {
    if (this.closed) return;
    let request: Request;
    try {
      request = decodeRequest(bytes, fds.count);
    } catch (error) {
      this.log.warn('malformed message, closing the connection', { error: (error as Error).message });
      this.close(`malformed message: ${errorCode(error)}`);
      return;
    }
    const name = requestName(request.request);
    const repliesWithData = catalogEntry(request.request)?.reply === 'always';
    const wantsAck = request.needReply && this.hasProtocolFeature(VhostUserProtocolFeature.REPLY_ACK);
    this.log.debug('request', { request: name });
    let result: HandlerResult;
    try {
      const handler = HANDLERS[request.request] as ((s: Session, r: Request, fds: FdBag) => HandlerResult) | undefined;
      if (!handler) throw Object.assign(new Error(`${name} is not supported by this back-end`), { code: 'VU_ERR_UNSUPPORTED' });
      result = handler(this, request, fds);
    } catch (error) {
      this.log.warn('request failed', { request: name, code: errorCode(error), error: (error as Error).message });
      if (repliesWithData) this.close(`${name} failed and its reply cannot say so`);
      else if (wantsAck) this.send(encodeReplyAck(request.request, 1n));
      return;
    }
    if (result !== undefined && 'later' in result) {
      this.deferReply(name, result.later);
    } else if (result !== undefined) {
      this.send(encodeReply(result.request as RepliedRequest, result.payload as ReplyPayloads[RepliedRequest]));
    } else if (wantsAck) {
      this.send(encodeReplyAck(request.request, 0n));
    }
  }

  /**
   * A reply that waits for work off the event loop (CHECK_DEVICE_STATE waits for the transfer):
   * later messages are held, then handled in order, so replies keep the order of requests.
   */
  private deferReply(name: string, later: Promise<ReplyResult>): void {
    this.deferring = true;
    later
      .then(
        (result) => this.send(encodeReply(result.request as RepliedRequest, result.payload as ReplyPayloads[RepliedRequest])),
        (error: Error) => {
          this.log.warn('request failed', { request: name, code: errorCode(error), error: error.message });
          this.close(`${name} failed and its reply cannot say so`);
        },
      )
      .finally(() => {
        this.deferring = false;
        for (const { bytes, fds } of this.held.splice(0)) this.onMessage(bytes, fds);
      });
  }

  private send(bytes: Uint8Array): void {
    try {
      this.channel.send(bytes);
    } catch (error) {
      this.log.warn('cannot send reply, closing the connection', { error: (error as Error).message });
      this.close('reply not sent');
    }
  }

  /** Logs the negotiated virtio features in spec names (one line, for people reading logs). */
  logNegotiated(features: bigint): void {
    this.log.info('features negotiated', { features: describeFeatures(features, VirtioFeature).join(',') });
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close(reason);
  }

  /** The connection is gone: stop the rings and release guest memory and every fd. */
  teardown(): void {
    this.closed = true;
    for (const { fds } of this.held.splice(0)) fds.forEach(this.closeFd);
    this.dataPlane.reset();
  }

}
