/** Arbitraries shared by the stack's fuzz tests. */
import { bytes, fc } from "@desktopd/fuzz";

export { bytes, fc, mutated } from "@desktopd/fuzz";

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

export const mac = bytes(6, 6);
