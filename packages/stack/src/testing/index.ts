export * from "./frame-harness.js";
export * from "./host-http.js";
export * from "./netns.js";
export { createTransportPair, type TransportPairOptions } from "./pair.js";
export * from "./seeded-bytes.js";
export * from "./stack-guest.js";
export * from "./tcp-harness.js";
export * from "./vm.js";
