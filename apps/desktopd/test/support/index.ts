export * from "./bytes.js";
export * from "./daemon.js";
export * from "./http-server.js";
export * from "./udp-echo.js";
