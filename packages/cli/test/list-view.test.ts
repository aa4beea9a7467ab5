import { newSandboxRecord, type SandboxRecord } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { formatBytes, mayHaveSuspendedItself } from "../src/commands/list-view.ts";

const AT = "2026-01-01T00:00:00.000Z";
const rec = (over: Partial<SandboxRecord>): SandboxRecord => ({
  ...newSandboxRecord(
    {
      id: "sbx_1",
      name: "box",
      provider: "local",
      repo: "r",
      ref: null,
      branch: "alpine/box",
      image_profile: "default",
    },
    AT,
  ),
  ...over,
});
const ALIVE = 1001;
const alive = (pid: number) => pid === ALIVE;

describe("list asks the providers only when a runtime may have suspended itself", () => {
  it.each<[string, Partial<SandboxRecord>, boolean]>([
    [
      "local, running, sandboxd alive",
      { state: "running", runtime: { handle: { dir: "/d", pid: ALIVE }, web_url: null } },
      false,
    ],
    [
      "local, completed, sandboxd gone",
      { state: "completed", runtime: { handle: { dir: "/d", pid: 4242 }, web_url: null } },
      true,
    ],
    [
      "local, running, no pid recorded",
      { state: "running", runtime: { handle: { dir: "/d" }, web_url: null } },
      true,
    ],
    [
      "local, suspended already",
      { state: "suspended", runtime: { handle: { dir: "/d", pid: 4242 }, web_url: null } },
      false,
    ],
    ["local, destroyed", { state: "destroyed", runtime: null }, false],
    [
      "docker, running (needs the daemon)",
      { provider: "docker", state: "running", runtime: { handle: { container: "c" }, web_url: null } },
      true,
    ],
    ["docker, destroyed", { provider: "docker", state: "destroyed", runtime: null }, false],
  ])("%s → %s", (_what, over, expected) => {
    expect(mayHaveSuspendedItself([rec(over)], alive)).toBe(expected);
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1536, "1.5 KB"],
    [12 * 1024 * 1024, "12 MB"],
    [3.25 * 1024 ** 3, "3.3 GB"],
  ])("%s → %s", (bytes, text) => expect(formatBytes(bytes)).toBe(text));
});
