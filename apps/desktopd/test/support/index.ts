export * from "./bytes.js";
export * from "./daemon.js";
export * from "./guest.js";
export * from "./http-server.js";
export * from "./udhcpc.js";
export * from "./udp-echo.js";
