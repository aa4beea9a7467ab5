import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Auth } from "../src/auth.ts";
import { Logger } from "../src/log.ts";
import { bridgeArgs } from "../src/net-bridge.ts";
import { opencodeEnv } from "../src/opencode-env.ts";
import {
  agentListeningPorts,
  connectAgentPort,
  listeningPortsOf,
  previewPortOf,
  previewPortOfRequest,
  previewPorts,
} from "../src/preview.ts";
import { upstreamHeaders } from "../src/proxy.ts";
import { getOver } from "./helpers.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "alpine-preview-"));
  dirs.push(d);
  return d;
};

describe("preview hosts", () => {
  const cases: [string | undefined, number | null][] = [
    ["3000-app.localhost:4123", 3000],
    ["3000-APP.localhost", 3000],
    ["1-app.localhost:1", 1],
    ["65535-app.localhost:80", 65535],
    ["65536-app.localhost:80", null],
    ["0-app.localhost:80", null],
    ["03000-app.localhost:80", null],
    ["3000-other.localhost:4123", null],
    ["3000-app-x.localhost:4123", null],
    ["app.localhost:4123", null],
    ["127.0.0.1:4123", null],
    ["3000-app.localhost.evil.com", null],
    ["3000-app.example.com", null],
    [undefined, null],
  ];
  for (const [host, want] of cases)
    it(`${host ?? "no Host"} → ${want}`, () => expect(previewPortOf(host, "app")).toBe(want));
});

describe("the control plane's preview header", () => {
  it("names the port when the Host is the Worker's; the Host wins when it is a preview host itself", () => {
    expect(
      previewPortOfRequest({ host: "app--p3000.alpine.example.com", "x-alpine-preview-port": "3000" }, "app"),
    ).toBe(3000);
    expect(
      previewPortOfRequest({ host: "4000-app.localhost:1", "x-alpine-preview-port": "3000" }, "app"),
    ).toBe(4000);
    for (const bad of ["0", "03000", "65536", "3000x", ""])
      expect(previewPortOfRequest({ host: "h", "x-alpine-preview-port": bad }, "app"), bad).toBeNull();
    expect(previewPortOfRequest({ host: "h" }, "app")).toBeNull();
  });

  it("is never forwarded to the app", () => {
    const req = {
      headers: {
        host: "h",
        "x-alpine-preview-port": "3000",
        "x-app": "1",
        cookie: "alpine_preview_a_3000=s; t=1",
      },
      socket: { remoteAddress: "127.0.0.1" },
    } as unknown as Parameters<typeof upstreamHeaders>[0];
    const out = upstreamHeaders(req, { port: 3000 }, "alpine_", false);
    expect(out["x-alpine-preview-port"]).toBeUndefined();
    expect(out["x-app"]).toBe("1");
    expect(out.cookie).toBe("t=1");
  });
});

describe("login scopes", () => {
  it("a code opens only the scope it was minted for, once; a session's cookie is the scope's own", () => {
    const auth = new Auth("t".repeat(32), "sbx_1");
    const ui = auth.newLoginCode();
    expect(auth.redeem(ui.code, Date.now(), "preview:3000")).toBeUndefined();
    // Refused in the wrong scope, it is gone for the right one too (single use).
    expect(auth.redeem(ui.code)).toBeUndefined();

    const p = auth.newLoginCode(Date.now(), "preview:3000");
    expect(auth.redeem(p.code, Date.now(), "preview:3001")).toBeUndefined();
    const p2 = auth.newLoginCode(Date.now(), "preview:3000");
    const session = auth.redeem(p2.code, Date.now(), "preview:3000");
    expect(session).toBeDefined();
    expect(auth.redeem(p2.code, Date.now(), "preview:3000")).toBeUndefined();
    const cookie = auth.setCookie(session!, "preview:3000");
    expect(cookie).toMatch(/^alpine_preview_sbx_1_3000=[^;]+; HttpOnly; SameSite=Strict; Path=\/$/);
    const header = cookie.split(";")[0];
    expect(auth.checkCookie(header, Date.now(), "preview:3000")).toBe(true);
    expect(auth.checkCookie(header, Date.now(), "preview:3001")).toBe(false);
    expect(auth.checkCookie(header)).toBe(false);
    // The same session value under the UI's cookie name does not open the UI.
    expect(auth.checkCookie(`${auth.cookieName}=${session}`)).toBe(false);
  });
});

describe("listening ports", () => {
  const table = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0",
    "   1: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 100 0 0 10 0",
    "   2: 0100007F:0BBA 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0",
  ].join("\n");
  it("reads LISTEN rows whose socket is one of the agent's", () => {
    expect(listeningPortsOf(table, new Set(["111"]))).toEqual([3000]);
    expect(listeningPortsOf(table, new Set(["111", "222"]))).toEqual([3000, 3001]);
    expect(listeningPortsOf(table, new Set())).toEqual([]);
  });

  it("finds a server a child process listens on, and leaves out excluded ports", async () => {
    const child = spawn(
      process.execPath,
      [
        "-e",
        "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>console.log(s.address().port))",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const port = Number(
        await new Promise<string>((resolve) => child.stdout.once("data", (d) => resolve(String(d)))),
      );
      expect(agentListeningPorts(child.pid!, "bubblewrap", new Set())).toContain(port);
      expect(agentListeningPorts(child.pid!, "bubblewrap", new Set([port]))).not.toContain(port);
      // sandboxd's own listeners are never the agent's.
      const own = createServer().listen(0, "127.0.0.1");
      await new Promise((r) => own.once("listening", r));
      const ownPort = (own.address() as { port: number }).port;
      expect(agentListeningPorts(null, "none", new Set())).not.toContain(ownPort);
      expect(agentListeningPorts(null, "none", new Set())).toContain(port);
      own.close();
    } finally {
      child.kill();
    }
  });

  it("status lists declared and listening ports together", () => {
    expect(previewPorts([3000, 8080], [3000, 5173])).toEqual([
      { port: 3000, declared: true, listening: true },
      { port: 5173, declared: false, listening: true },
      { port: 8080, declared: true, listening: false },
    ]);
  });
});

describe("the bridge's any-port socket", () => {
  it("forwards a connection to the port its first line names", async () => {
    const app = createHttpServer((_q, r) => r.end("from-the-app"));
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    const appPort = (app.address() as { port: number }).port;
    const dir = temp();
    const bridge = spawn(
      process.execPath,
      bridgeArgs({
        tcpToUnix: [],
        unixToTcp: [],
        anyPort: { path: join(dir, "ports.sock") },
        cmd: [process.execPath, "-e", "console.log('ready'); setTimeout(() => {}, 60000)"],
      }),
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      await new Promise((resolve) => bridge.stdout.once("data", resolve));
      const body = await getOver(() => connectAgentPort(appPort, dir));
      expect(body).toBe("from-the-app");
    } finally {
      bridge.kill();
      app.close();
    }
  });
});

describe("the agent's environment", () => {
  it("gets the agent secrets and cannot have the sandbox's own variables replaced by one", () => {
    const dir = temp();
    const env = opencodeEnv(
      {
        bin: "/bin/true",
        workspace: dir,
        home: dir,
        tmp: dir,
        isolation: "none",
        mask: [],
        log: new Logger(join(dir, "log")),
        secretEnv: { FOR_AGENT: "agent-value", HOME: "/elsewhere" },
      },
      "pw",
    );
    expect(env.FOR_AGENT).toBe("agent-value");
    expect(env.HOME).toBe(dir);
    const without = opencodeEnv(
      {
        bin: "/bin/true",
        workspace: dir,
        home: dir,
        tmp: dir,
        isolation: "none",
        mask: [],
        log: new Logger(join(dir, "log")),
      },
      "pw",
    );
    expect(without.FOR_AGENT).toBeUndefined();
  });
});
