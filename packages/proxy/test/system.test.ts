import { describe, expect, it } from "vitest";
import {
  describeConfig,
  parseScutilProxy,
  parseWindowsInternetSettings,
  readSystemProxy,
} from "../src/index.js";

// The shapes Apple's `scutil --proxy` and Windows' `reg query` print (this CI has neither system).
const SCUTIL = `<dictionary> {
  ExceptionsList : <array> {
    0 : *.local
    1 : 169.254/16
    2 : git.corp.example
  }
  ExcludeSimpleHostnames : 1
  FTPPassive : 1
  HTTPEnable : 1
  HTTPPort : 3128
  HTTPProxy : proxy.corp.example
  HTTPSEnable : 1
  HTTPSPort : 3129
  HTTPSProxy : proxy.corp.example
  ProxyAutoConfigEnable : 1
  ProxyAutoConfigURLString : http://wpad.corp.example/wpad.dat
  SOCKSEnable : 0
  SOCKSPort : 1080
  SOCKSProxy : socks.corp.example
}
`;

const REG = `
HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings
    DisableCachingOfSSLPages    REG_DWORD    0x0
    ProxyEnable    REG_DWORD    0x1
    ProxyServer    REG_SZ    http=proxy.corp.example:8080;https=proxy.corp.example:8443;socks=socks.corp.example:1080
    ProxyOverride    REG_SZ    *.corp.example;10.*;<local>
    AutoConfigURL    REG_SZ    http://wpad.corp.example/proxy.pac
`;

describe("system proxy settings", () => {
  it("reads macOS's scutil --proxy", () => {
    const s = parseScutilProxy(SCUTIL);
    expect(s.source).toBe("macos");
    expect(s.pac).toBe("http://wpad.corp.example/wpad.dat");
    expect(describeConfig(s.config)).toBe(
      "http=http://proxy.corp.example:3128 https=http://proxy.corp.example:3129 no_proxy=local,169.254.0.0/16,git.corp.example,localhost",
    );
    expect(s.config.noProxy.matches("printer.local", 631)).toBe(true);
    expect(s.config.noProxy.matches("169.254.1.2", 80)).toBe(true);
    // Disabled entries stay off.
    expect(s.config.all).toBeUndefined();
  });

  it("reads Windows' Internet Settings, per-protocol servers and overrides", () => {
    const s = parseWindowsInternetSettings(REG.replaceAll("\n", "\r\n"));
    expect(s.source).toBe("windows");
    expect(s.pac).toBe("http://wpad.corp.example/proxy.pac");
    expect(describeConfig(s.config)).toBe(
      "http=http://proxy.corp.example:8080 https=http://proxy.corp.example:8443 all=socks5://socks.corp.example:1080 no_proxy=corp.example,10.0.0.0/8,localhost",
    );
    const single = parseWindowsInternetSettings(
      "    ProxyEnable    REG_DWORD    0x1\n    ProxyServer    REG_SZ    proxy:3128\n",
    );
    expect(describeConfig(single.config)).toBe("http=http://proxy:3128 https=http://proxy:3128");
    const off = parseWindowsInternetSettings(
      "    ProxyEnable    REG_DWORD    0x0\n    ProxyServer    REG_SZ    proxy:3128\n",
    );
    expect(describeConfig(off.config)).toBe("direct");
  });

  it("leaves out what does not parse instead of the whole list", () => {
    const s = parseScutilProxy(
      "ExceptionsList : <array> {\n 0 : bad entry here\n 1 : ok.example\n}\nHTTPEnable : 1\nHTTPProxy : [::1\n",
    );
    expect(s.config.http).toBeUndefined();
    expect(s.config.noProxy.matches("ok.example", 80)).toBe(true);
  });

  it("answers undefined on Linux, where the environment is the convention", async () => {
    expect(await readSystemProxy("linux")).toBeUndefined();
  });
});
