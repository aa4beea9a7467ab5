import { EventEmitter } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentTracker } from "../src/agent.ts";
import type { Logger } from "../src/log.ts";
import type { OpencodeSupervisor } from "../src/opencode.ts";

/*
 * The agent of a brand-new OpenCode is idle by construction, so a launch's
 * ready does not wait for the event stream. These tests hold OpenCode's
 * /event stream open without its `server.connected` to see what the tracker
 * reports meanwhile, and when it must fall back to "unknown".
 */

const streams: ServerResponse[] = [];
const server = createServer((req, res) => {
  if (req.url === "/event") {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    streams.push(res);
    return;
  }
  // A restored sandbox's history: two sessions in the workspace, the newer one spent 900 tokens.
  if (req.url?.startsWith("/session?directory=")) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify([
        { id: "ses_old", time: { updated: 1 } },
        { id: "ses_new", time: { updated: 2 } },
        { id: "ses_child", parentID: "ses_new", time: { updated: 3 } },
      ]),
    );
    return;
  }
  if (req.url === "/session/ses_new/message") {
    res.writeHead(200, { "content-type": "application/json" });
    const info = {
      id: "msg_1",
      role: "assistant",
      time: { created: 1 },
      cost: 0,
      tokens: { input: 600, output: 300 },
    };
    res.end(JSON.stringify([{ info, parts: [] }]));
    return;
  }
  if (req.url === "/session/status") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(busyStatus));
    return;
  }
  res.writeHead(404).end();
});
let busyStatus: Record<string, { type: string }> = {};
let port = 0;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  for (const s of streams) s.destroy();
  await new Promise((r) => server.close(r));
});

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, addSecret() {} } as unknown as Logger;

function fakeOpencode(): OpencodeSupervisor & EventEmitter {
  const oc = new EventEmitter() as OpencodeSupervisor & EventEmitter;
  Object.assign(oc, { ready: true, baseUrl: `http://127.0.0.1:${port}`, authorization: "Basic eA==" });
  return oc;
}

function connect(stream: ServerResponse): void {
  stream.write(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
}

async function nextStream(count: number): Promise<ServerResponse> {
  for (let i = 0; i < 200 && streams.length < count; i++) await new Promise((r) => setTimeout(r, 10));
  const s = streams[count - 1];
  if (!s) throw new Error("the tracker never opened the event stream");
  return s;
}

describe("agent state before the event stream connects", () => {
  it("a fresh agent is idle until connected; the stream then decides", async () => {
    busyStatus = { ses_1: { type: "busy" } };
    const tracker = new AgentTracker(fakeOpencode(), undefined, quiet);
    tracker.assumeIdleUntilConnected();
    tracker.enable();
    const stream = await nextStream(streams.length + 1);
    expect(tracker.state).toBe("idle");
    connect(stream);
    // After connecting, OpenCode's own answer counts (here: a session it says is busy).
    for (let i = 0; i < 100 && tracker.state !== "busy"; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tracker.state).toBe("busy");
    tracker.close();
    busyStatus = {};
  });

  it("without the assumption (sessions may exist) the state is unknown until connected", async () => {
    const tracker = new AgentTracker(fakeOpencode(), undefined, quiet);
    tracker.enable();
    const stream = await nextStream(streams.length + 1);
    expect(tracker.state).toBe("unknown");
    connect(stream);
    expect(await tracker.waitConnected(2000)).toBe(true);
    expect(tracker.state).toBe("idle");
    tracker.close();
  });

  it("a client request through the UI proxy ends the assumption", async () => {
    const tracker = new AgentTracker(fakeOpencode(), undefined, quiet);
    tracker.assumeIdleUntilConnected();
    tracker.enable();
    await nextStream(streams.length + 1);
    expect(tracker.state).toBe("idle");
    tracker.noteClientRequest();
    expect(tracker.state).toBe("unknown");
    // And it cannot be re-armed once a client has talked to OpenCode.
    tracker.assumeIdleUntilConnected();
    expect(tracker.state).toBe("unknown");
    tracker.close();
  });

  it("OpenCode going down ends the assumption", async () => {
    const oc = fakeOpencode();
    const tracker = new AgentTracker(oc, undefined, quiet);
    tracker.assumeIdleUntilConnected();
    tracker.enable();
    await nextStream(streams.length + 1);
    expect(tracker.state).toBe("idle");
    oc.emit("down");
    expect(tracker.state).toBe("unknown");
    tracker.close();
  });
});

describe("a restored agent's history", () => {
  it("is read in the background; a task waits for it: the newest session is continued and its spend counts", async () => {
    const tracker = new AgentTracker(fakeOpencode(), undefined, quiet);
    tracker.assumeIdleUntilConnected();
    tracker.enable();
    tracker.restoreHistory("/ws");
    const stream = await nextStream(streams.length + 1);
    // Ready does not wait for it: idle, no conversation yet, nothing spent yet.
    expect(tracker.state).toBe("idle");
    expect(tracker.conversation).toBeNull();
    // A task given now waits for the history, so its budget check sees the 900 tokens already spent.
    const task = tracker.runTask("go on", undefined, { budget: { sandbox: { tokens: 500 } } });
    const outcome = task.then(
      () => "accepted",
      (e: { reason?: string }) => e.reason,
    );
    await new Promise((r) => setTimeout(r, 50));
    connect(stream);
    expect(await outcome).toBe("budget_reached");
    expect(tracker.conversation).toBe("ses_new");
    expect(tracker.usage.input + tracker.usage.output).toBe(900);
    tracker.close();
  });
});
