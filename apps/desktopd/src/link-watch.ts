/**
 * A FrameTransport decorator that tells the daemon when the guest's link goes away on its own
 * (device deleted, namespace removed), so `run` can exit instead of serving a dead link.
 */
import type { FrameReceiver, FrameTransport } from "@desktopd/stack";

export interface WatchedLink {
  transport: FrameTransport;
  /** Settles when the link closes; with the error if it failed. Never rejects. */
  closed: Promise<Error | undefined>;
}

export function watchLink(inner: FrameTransport): WatchedLink {
  let settle!: (error: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((resolve) => {
    settle = resolve;
  });
  const transport: FrameTransport = {
    get name() {
      return inner.name;
    },
    get stats() {
      return inner.stats;
    },
    get offload() {
      return inner.offload;
    },
    send: (frame, meta) => (meta ? inner.send(frame, meta) : inner.send(frame)),
    // Offered only when the inner link writes parts itself: the stack then hands payload uncopied.
    ...(inner.sendv && { sendv: inner.sendv.bind(inner) }),
    start(receiver: FrameReceiver) {
      inner.start({
        onFrame: (frame, meta) => (meta ? receiver.onFrame(frame, meta) : receiver.onFrame(frame)),
        onClose: (error) => {
          settle(error);
          receiver.onClose?.(error);
        },
        // Frames pass straight through: lent ones too, when the receiver takes them.
        ...(receiver.acceptsLent && { acceptsLent: true }),
      });
    },
    async close() {
      await inner.close();
      settle(undefined);
    },
  };
  return { transport, closed };
}
