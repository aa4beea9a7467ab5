import { describe, expect, it } from "vitest";
import { sessionUsedBy } from "../src/ui-session.ts";

const S = "ses_db18b9f26ffeAojTA054tI23JK";
const DIR = "L3RtcC93b3Jrc3BhY2U";

describe("sessionUsedBy: which UI requests show the person using a session", () => {
  it.each([
    ["a prompt", "POST", `/session/${S}/prompt_async`, "empty", S],
    ["a synchronous message", "POST", `/session/${S}/message`, "empty", S],
    ["a slash command", "POST", `/session/${S}/command`, "empty", S],
    ["a shell command", "POST", `/session/${S}/shell`, "empty", S],
    ["the session page loaded (directory route)", "GET", `/${DIR}/session/${S}`, "document", S],
    ["the session page loaded (server route)", "GET", `/server/aHR0cDo/session/${S}`, "document", S],
    ["reading its messages (the home page previews some)", "GET", `/session/${S}/message`, "empty", null],
    ["reading its title", "GET", `/session/${S}`, "empty", null],
    ["the session list", "GET", "/session", "empty", null],
    ["a new-session page", "GET", `/${DIR}/session`, "document", null],
    ["the same path fetched by a script, not loaded as a page", "GET", `/${DIR}/session/${S}`, "empty", null],
    ["aborting a turn", "POST", `/session/${S}/abort`, "empty", null],
    ["a malformed id", "POST", "/session/ses_%ZZ/prompt_async", "empty", null],
    ["not a session id", "POST", "/session/..%2F..%2Fetc/prompt_async", "empty", null],
  ])("%s", (_what, method, path, dest, want) => {
    expect(sessionUsedBy(method, path, dest)).toBe(want);
  });
});
