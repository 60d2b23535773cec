export * from "./netns.js";
export { createTransportPair, type TransportPairOptions } from "./pair.js";
