import type { Message, Part } from "@opencode-ai/sdk/v2";
import { describe, expect, it } from "vitest";
import {
  deriveAgent,
  errorReason,
  messageUsage,
  permissionReason,
  questionReason,
  retryReason,
  type SessionView,
  turnOutcome,
} from "../src/agent-state.ts";

/** The agent's state and reason from what OpenCode reported (pure; no OpenCode runs here). */

const session = (patch: Partial<SessionView> = {}): SessionView => ({
  status: "idle",
  settling: false,
  waiting: new Map(),
  retry: null,
  error: null,
  budget: null,
  ...patch,
});

describe("deriveAgent", () => {
  const ask = new Map([["per_1", 'asks permission: bash "touch x"']]);
  const cases: { name: string; sessions: SessionView[]; crash?: string; want: [string, string | null] }[] = [
    { name: "no session", sessions: [], want: ["idle", null] },
    { name: "idle", sessions: [session()], want: ["idle", null] },
    { name: "busy", sessions: [session({ status: "busy" })], want: ["busy", null] },
    {
      name: "idle reported, turn not confirmed finished",
      sessions: [session({ settling: true })],
      want: ["busy", null],
    },
    {
      name: "a permission asked wins over busy",
      sessions: [session({ status: "busy", waiting: ask })],
      want: ["needs_input", 'asks permission: bash "touch x"'],
    },
    {
      name: "several open requests",
      sessions: [session({ status: "busy", waiting: new Map([...ask, ["que_1", "asks: why?"]]) })],
      want: ["needs_input", 'asks permission: bash "touch x" (+1 more)'],
    },
    {
      name: "retry with its reason",
      sessions: [
        session({ status: "retry", retry: "retrying after: 500 (attempt 1)" }),
        session({ status: "busy" }),
      ],
      want: ["retry", "retrying after: 500 (attempt 1)"],
    },
    {
      name: "budget stop",
      sessions: [
        session({ budget: "task budget reached: 10 of 5 tokens" }),
        session({ error: "model error: x" }),
      ],
      want: ["budget", "task budget reached: 10 of 5 tokens"],
    },
    {
      name: "another session still working hides a budget stop",
      sessions: [session({ budget: "b" }), session({ status: "busy" })],
      want: ["busy", null],
    },
    {
      name: "error",
      sessions: [session({ error: "model error (HTTP 400): bad" })],
      want: ["error", "model error (HTTP 400): bad"],
    },
    {
      name: "OpenCode crashed under a task",
      sessions: [session()],
      crash: "OpenCode stopped",
      want: ["error", "OpenCode stopped"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = deriveAgent(c.sessions, { crash: c.crash ?? null });
      expect([got.state, got.reason]).toEqual(c.want);
    });
  }
});

describe("reasons", () => {
  it("names the permission and its patterns", () => {
    expect(permissionReason({ permission: "bash", patterns: ["touch asked.txt"] })).toBe(
      'asks permission: bash "touch asked.txt"',
    );
    expect(permissionReason({ permission: "external_directory", patterns: [] })).toBe(
      "asks permission: external_directory",
    );
  });
  it("quotes the question and its options", () => {
    expect(
      questionReason({
        questions: [
          {
            question: "Which database?",
            header: "DB",
            options: [{ label: "Postgres" }, { label: "SQLite" }],
          },
          { question: "Name?", header: "N", options: [] },
        ],
      }),
    ).toBe("asks: Which database? [Postgres | SQLite] (+1 more)");
  });
  it("says the upstream error, the attempt and when the next one comes", () => {
    expect(
      retryReason({ attempt: 2, message: "Internal Server Error", next: Date.UTC(2026, 0, 1, 12, 0, 4) }),
    ).toBe("retrying after: Internal Server Error (attempt 2, next at 12:00:04Z)");
  });
  it("says the model's status and message, and what to do about missing auth", () => {
    expect(
      errorReason({
        name: "APIError",
        data: { message: "bad request", statusCode: 400, isRetryable: false },
      }),
    ).toBe("model error (HTTP 400): bad request");
    expect(
      errorReason({ name: "ProviderAuthError", data: { providerID: "openai", message: "no key" } }),
    ).toBe("model auth failed (openai): no key; run `alpine auth sync`");
    expect(errorReason({ name: "UnknownError", data: { message: "boom" } })).toBe("UnknownError: boom");
    expect(errorReason(undefined)).toBe("error: the agent reported an error");
  });
});

const assistant = (patch: Partial<Extract<Message, { role: "assistant" }>> = {}): Message =>
  ({
    id: "msg_a",
    sessionID: "ses_1",
    role: "assistant",
    time: { created: 1, completed: 2 },
    parentID: "msg_u",
    modelID: "m",
    providerID: "p",
    mode: "build",
    agent: "build",
    path: { cwd: "/", root: "/" },
    cost: 0.002,
    tokens: { input: 300, output: 100, reasoning: 7, cache: { read: 20, write: 3 } },
    finish: "stop",
    ...patch,
  }) as Message;
const user = { id: "msg_u", sessionID: "ses_1", role: "user", time: { created: 1 } } as unknown as Message;
const toolPart = (status: "completed" | "error"): Part =>
  ({
    id: "prt_1",
    sessionID: "ses_1",
    messageID: "msg_a",
    type: "tool",
    callID: "c",
    tool: "bash",
    state:
      status === "error"
        ? { status, input: {}, error: "The user rejected permission", time: { start: 1, end: 2 } }
        : { status, input: {}, output: "ok", title: "", metadata: {}, time: { start: 1, end: 2 } },
  }) as Part;

describe("turnOutcome: a turn ends when the session's messages say so", () => {
  it("not finished: the last message is the prompt", () => {
    expect(turnOutcome([{ info: user, parts: [] }])).toEqual({ finished: false });
  });
  it("not finished: the assistant message is still streaming", () => {
    expect(
      turnOutcome([
        { info: user, parts: [] },
        { info: assistant({ time: { created: 1 } }), parts: [] },
      ]),
    ).toEqual({ finished: false });
  });
  it("not finished: tools ran and the next step has not started", () => {
    expect(
      turnOutcome([{ info: assistant({ finish: "tool-calls" }), parts: [toolPart("completed")] }]),
    ).toEqual({ finished: false });
  });
  it("completed", () => {
    expect(
      turnOutcome([
        { info: user, parts: [] },
        { info: assistant(), parts: [] },
      ]),
    ).toMatchObject({
      finished: true,
      state: "completed",
    });
  });
  it("failed on the model's error", () => {
    const err = { name: "APIError" as const, data: { message: "nope", statusCode: 400, isRetryable: false } };
    expect(turnOutcome([{ info: assistant({ error: err, time: { created: 1 } }), parts: [] }])).toEqual({
      finished: true,
      state: "failed",
      reason: "model error (HTTP 400): nope",
      errorName: "APIError",
    });
  });
  it("interrupted when aborted", () => {
    const err = { name: "MessageAbortedError" as const, data: { message: "aborted" } };
    expect(turnOutcome([{ info: assistant({ error: err }), parts: [] }])).toMatchObject({
      finished: true,
      state: "interrupted",
    });
  });
  it("failed when the turn stopped on a failed tool", () => {
    expect(turnOutcome([{ info: assistant({ finish: "tool-calls" }), parts: [toolPart("error")] }])).toEqual({
      finished: true,
      state: "failed",
      reason: "tool bash failed: The user rejected permission",
      errorName: "ToolError",
    });
  });
});

describe("messageUsage", () => {
  it("reads every kind of token and the cost of an assistant message; none for a prompt", () => {
    expect(messageUsage(assistant())).toEqual({
      input: 300,
      output: 100,
      reasoning: 7,
      cache_read: 20,
      cache_write: 3,
      cost: 0.002,
    });
    expect(messageUsage(user)).toBeNull();
  });
});
