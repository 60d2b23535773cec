export { completeChecksum, segmentTcpFrame } from "./software-offload.js";
export {
  createSwitch,
  type SwitchOptions,
  type SwitchPort,
  type SwitchPortInfo,
  type VirtualSwitch,
} from "./switch.js";
