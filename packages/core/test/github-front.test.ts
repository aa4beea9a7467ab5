import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  admits,
  doneComment,
  githubSandboxName,
  githubSignalOf,
  parseAlpineCommand,
  rateLimitDecision,
  signGithubPayload,
  verifyGithubSignature,
} from "../src/github-front.ts";
import { NAME_PATTERN } from "../src/names.ts";
import { allowListOf } from "../src/permissions.ts";
import type { SandboxRecord } from "../src/schemas.ts";

/** GitHub's front door, the pure parts: signature, command, name, allow-list, rate limit, signals. */

const SECRET = "whsec-test-0123456789";
const BODY = JSON.stringify({ action: "created", comment: { body: "/alpine do it" } });
const nodeSig = (secret: string, body: string) =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

describe("verifyGithubSignature", () => {
  it("accepts GitHub's signature (Node's HMAC as the reference) and our own signer agrees", async () => {
    expect(await verifyGithubSignature(SECRET, BODY, nodeSig(SECRET, BODY))).toBe(true);
    expect(await signGithubPayload(SECRET, BODY)).toBe(nodeSig(SECRET, BODY));
    expect(
      await verifyGithubSignature(
        SECRET,
        BODY,
        nodeSig(SECRET, BODY).toUpperCase().replace("SHA256", "sha256"),
      ),
    ).toBe(true);
  });

  const table: [string, string, string | null | undefined][] = [
    ["another secret", BODY, nodeSig("other-secret", BODY)],
    ["another body", `${BODY} `, nodeSig(SECRET, BODY)],
    ["no header", BODY, undefined],
    ["sha1 form", BODY, `sha1=${createHmac("sha1", SECRET).update(BODY).digest("hex")}`],
    ["bare hex", BODY, nodeSig(SECRET, BODY).slice("sha256=".length)],
    ["truncated", BODY, nodeSig(SECRET, BODY).slice(0, -2)],
    ["not hex", BODY, `sha256=${"zz".repeat(32)}`],
  ];
  for (const [what, body, header] of table) {
    it(`refuses ${what}`, async () => {
      expect(await verifyGithubSignature(SECRET, body, header)).toBe(false);
    });
  }

  it("refuses everything when no secret is configured", async () => {
    expect(await verifyGithubSignature("", BODY, nodeSig("", BODY))).toBe(false);
  });
});

describe("parseAlpineCommand", () => {
  const table: [string | null, string | null][] = [
    ["/alpine fix the tests", "fix the tests"],
    ["  \n/alpine   add a README\n\nwith details", "add a README\n\nwith details"],
    ["/alpine\nmulti-line task", "multi-line task"],
    ["/alpine", null],
    ["/alpine   ", null],
    ["/alpinex do it", null],
    ["please /alpine do it", null],
    ["/Alpine do it", null],
    ["", null],
    [null, null],
  ];
  for (const [body, task] of table) {
    it(`${JSON.stringify(body)} → ${JSON.stringify(task)}`, () => {
      expect(parseAlpineCommand(body)).toBe(task);
    });
  }
});

describe("githubSandboxName", () => {
  it("is gh-<owner>-<repo>-<number>, lowercase, the same every time", () => {
    expect(githubSandboxName("Acme/App", 7)).toBe("gh-acme-app-7");
    expect(githubSandboxName("acme/my_app.js", 12)).toBe("gh-acme-my-app-js-12");
    expect(githubSandboxName("Acme/App", 7)).toBe(githubSandboxName("acme/app", 7));
    expect(githubSandboxName("acme/app", 8)).not.toBe(githubSandboxName("acme/app", 7));
  });

  it("long names fit 50 characters, keep the number and stay distinct", () => {
    const a = githubSandboxName(`some-organisation/${"a".repeat(60)}-one`, 123456);
    const b = githubSandboxName(`some-organisation/${"a".repeat(60)}-two`, 123456);
    for (const n of [a, b]) {
      expect(n.length).toBeLessThanOrEqual(50);
      expect(n).toMatch(NAME_PATTERN);
      expect(n.endsWith("-123456")).toBe(true);
    }
    expect(a).not.toBe(b);
  });
});

describe("allow-list", () => {
  const list = allowListOf({
    ALPINE_ALLOWED_USERS: " Alice, bob ,",
    ALPINE_ADMINS: "root",
    ALPINE_ALLOWED_ORGS: "",
  });
  const noOrgs = async () => {
    throw new Error("orgs are not asked when none are listed");
  };

  it("admits listed users and admins, case-insensitively, and no one else", async () => {
    expect(list).toEqual({ users: ["alice", "bob"], orgs: [], admins: ["root"] });
    expect(await admits(list, "alice", noOrgs)).toBe(true);
    expect(await admits(list, "BOB", noOrgs)).toBe(true);
    expect(await admits(list, "root", noOrgs)).toBe(true);
    expect(await admits(list, "mallory", noOrgs)).toBe(false);
    expect(await admits(allowListOf({}), "alice", noOrgs)).toBe(false);
  });

  it("admits members of a listed org (asked only then)", async () => {
    const withOrg = allowListOf({ ALPINE_ALLOWED_ORGS: "Acme" });
    const orgs = async (login: string) => (login === "carol" ? ["ACME", "other"] : ["other"]);
    expect(await admits(withOrg, "carol", orgs)).toBe(true);
    expect(await admits(withOrg, "dave", orgs)).toBe(false);
  });
});

describe("rateLimitDecision", () => {
  const opts = { limit: 2, windowMs: 60_000 };
  it("admits `limit` commands a window, refuses the next, and a new window starts over", () => {
    const first = rateLimitDecision(null, 1_000, opts);
    expect(first).toMatchObject({ allowed: true, window: { start: 1_000, count: 1 } });
    const second = rateLimitDecision(first.window, 2_000, opts);
    expect(second).toMatchObject({ allowed: true, window: { start: 1_000, count: 2 } });
    const third = rateLimitDecision(second.window, 3_000, opts);
    expect(third).toEqual({ allowed: false, window: second.window, retryAfterMs: 58_000 });
    const later = rateLimitDecision(third.window, 61_000, opts);
    expect(later).toMatchObject({ allowed: true, window: { start: 61_000, count: 1 } });
  });

  it("a limit of 0 refuses everything; a clock that went back starts a new window", () => {
    expect(rateLimitDecision(null, 1, { limit: 0, windowMs: 1 }).allowed).toBe(false);
    expect(rateLimitDecision({ start: 5_000, count: 2 }, 1_000, opts)).toMatchObject({
      allowed: true,
      window: { start: 1_000, count: 1 },
    });
  });
});

describe("githubSignalOf", () => {
  const record = (agent: SandboxRecord["agent"], state?: "running" | "completed" | "failed") =>
    ({
      agent,
      task: state
        ? {
            prompt_summary: "x",
            session_id: "ses_1",
            started_at: "2026-01-01T00:00:00.000Z",
            finished_at: null,
            state,
          }
        : null,
    }) as unknown as SandboxRecord;

  it("done, needs input, error and budget, keyed per task and event; nothing while busy", () => {
    expect(githubSignalOf(record("idle", "completed"))).toEqual({
      event: "done",
      key: "ses_1@2026-01-01T00:00:00.000Z/done",
    });
    expect(githubSignalOf(record("needs_input", "running"))?.event).toBe("input");
    expect(githubSignalOf(record("error", "failed"))?.event).toBe("error");
    expect(githubSignalOf(record("budget", "running"))?.event).toBe("budget");
    expect(githubSignalOf(record("busy", "running"))).toBeNull();
    expect(githubSignalOf(record("idle"))).toBeNull();
  });
});

describe("doneComment", () => {
  it("links the pull request, says the cost and lists the files (code spans a backtick cannot end)", () => {
    const text = doneComment({
      name: "gh-acme-app-7",
      prUrl: "https://github.com/acme/app/pull/3",
      branch: "alpine/gh-acme-app-7",
      updated: false,
      cost: "$0.01",
      files: ["FEATURE.md", "odd`name"],
    });
    expect(text).toContain("Opened https://github.com/acme/app/pull/3");
    expect(text).toContain("Cost: $0.01.");
    expect(text).toContain("- `FEATURE.md`");
    expect(text).toContain("- `` odd`name ``");
  });
});
