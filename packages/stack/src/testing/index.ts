export * from "./netns.js";
export { createTransportPair, type TransportPairOptions } from "./pair.js";
export * from "./tcp-harness.js";
