export * from "@desktopd/stack/testing";
export * from "./daemon.js";
export * from "./guest.js";
export * from "./udhcpc.js";
export * from "./udp-echo.js";
