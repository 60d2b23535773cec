export { type DialerUnderTest, dialerCompliance } from "./dialer-suite.js";
export {
  frameTransportCompliance,
  type TransportPeer,
  type TransportUnderTest,
} from "./transport-suite.js";
