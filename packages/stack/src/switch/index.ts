export {
  createSwitch,
  type SwitchOptions,
  type SwitchPort,
  type SwitchPortInfo,
  type VirtualSwitch,
} from "./switch.js";
