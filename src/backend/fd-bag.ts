/**
 * The file descriptors that arrived with one message. A handler takes the ones it uses (ownership
 * moves to it); the session closes whatever is left once the request is handled, so every received
 * fd is closed exactly once — also extra fds a front-end attached and fds of failed requests.
 */
export class FdBag {
  private readonly fds: number[];

  constructor(fds: number[], private readonly closeFd: (fd: number) => void) {
    this.fds = [...fds];
  }

  get count(): number {
    return this.fds.length;
  }

  /** Takes the next fd; the caller now owns it. */
  take(): number {
    const fd = this.fds.shift();
    if (fd === undefined) throw new Error('FdBag.take: no fd left (the decoder checked the count: a bug)');
    return fd;
  }

  /** Takes every remaining fd. */
  takeAll(): number[] {
    return this.fds.splice(0);
  }

  closeRest(): void {
    for (const fd of this.fds.splice(0)) this.closeFd(fd);
  }
}
