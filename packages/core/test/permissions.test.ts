import { describe, expect, it } from "vitest";
import { httpStatusOf } from "../src/control-plane-api.ts";
import { ROUTE_NAMES } from "../src/control-plane-routes.ts";
import type { AlpineError } from "../src/errors.ts";
import {
  allowListOf,
  assertAdmin,
  assertMayAct,
  isAdminEmail,
  listShows,
  mayAct,
  ROUTE_ACCESS,
  signInDecision,
} from "../src/permissions.ts";
import { REASONS } from "../src/reasons.ts";

const alice = { id: "github:alice", admin: false };
const bob = { id: "github:bob", admin: false };
const admin = { id: "admin", admin: true };
const carolAdmin = { id: "github:carol", admin: true };

describe("mayAct", () => {
  const cases: [string, typeof alice | null, string | null | undefined, boolean][] = [
    ["the owner", alice, "github:alice", true],
    ["another user", bob, "github:alice", false],
    ["the shared admin token", admin, "github:alice", true],
    ["a GitHub admin", carolAdmin, "github:alice", true],
    ["anonymous", null, "github:alice", false],
    ["a user, on a sandbox nobody owns", alice, null, false],
    ["a user, on a record from before owners", alice, undefined, false],
    ["an admin, on a sandbox nobody owns", admin, null, true],
    ["anonymous, on a sandbox nobody owns", null, null, false],
    ["a user whose id only differs in case", { id: "github:Alice", admin: false }, "github:alice", false],
  ];
  for (const [who, principal, owner, expected] of cases) {
    it(`${who}: ${expected ? "may" : "may not"}`, () => {
      expect(mayAct(principal, { owner })).toBe(expected);
      if (expected) expect(() => assertMayAct(principal, { name: "s", owner })).not.toThrow();
      else {
        const err = (() => {
          try {
            assertMayAct(principal, { name: "s", owner });
          } catch (e) {
            return e as AlpineError;
          }
          return null;
        })();
        expect(err?.reason).toBe("forbidden");
        expect(err?.exitCode).toBe(1);
      }
    });
  }
});

describe("forbidden", () => {
  it("is exit 1, not retryable, HTTP 403", () => {
    expect(REASONS.forbidden).toMatchObject({ exit: 1, retryable: false });
    expect(httpStatusOf("forbidden", 1)).toBe(403);
  });
  it("assertAdmin lets admins through only", () => {
    expect(() => assertAdmin(admin, "gc")).not.toThrow();
    expect(() => assertAdmin(carolAdmin, "gc")).not.toThrow();
    expect(() => assertAdmin(alice, "gc")).toThrow(/admins only/);
    expect(() => assertAdmin(null, "gc")).toThrow(/admins only/);
  });
});

describe("list", () => {
  const cases: [string, typeof alice, string | null, boolean, boolean][] = [
    ["own, default", alice, "github:alice", false, true],
    ["someone else's, default", alice, "github:bob", false, false],
    ["someone else's, --all as a user", alice, "github:bob", true, false],
    ["someone else's, --all as admin", carolAdmin, "github:bob", true, true],
    ["someone else's, default as admin", carolAdmin, "github:bob", false, false],
    ["nobody's, --all as admin", admin, null, true, true],
    ["nobody's, default as admin", admin, null, false, false],
  ];
  for (const [what, principal, owner, all, shown] of cases) {
    it(`${what}: ${shown ? "shown" : "hidden"}`, () => expect(listShows(principal, owner, all)).toBe(shown));
  }
});

describe("sign-in allow-list", () => {
  const list = allowListOf({
    ALPINE_ALLOWED_USERS: " Alice, bob ,",
    ALPINE_ALLOWED_ORGS: "Acme",
    ALPINE_ADMINS: "carol,ops@example.com",
  });
  it("parses comma-separated names, trimmed, lower-cased, empties dropped", () => {
    expect(list).toEqual({ users: ["alice", "bob"], orgs: ["acme"], admins: ["carol", "ops@example.com"] });
  });
  const cases: [string, string, string[], { allowed: boolean; admin: boolean; because: string }][] = [
    ["a listed user", "alice", [], { allowed: true, admin: false, because: "user" }],
    ["a listed user, other case", "ALICE", [], { allowed: true, admin: false, because: "user" }],
    ["an admin not otherwise listed", "carol", [], { allowed: true, admin: true, because: "admin" }],
    ["a member of a listed org", "dave", ["other", "ACME"], { allowed: true, admin: false, because: "org" }],
    [
      "a member of other orgs only",
      "erin",
      ["other"],
      { allowed: false, admin: false, because: "not_listed" },
    ],
    ["nobody's list", "mallory", [], { allowed: false, admin: false, because: "not_listed" }],
  ];
  for (const [who, login, orgs, expected] of cases) {
    it(who, () => expect(signInDecision(list, login, orgs)).toMatchObject(expected));
  }
  it("an empty allow-list lets nobody in", () => {
    expect(signInDecision(allowListOf({}), "alice", ["acme"]).allowed).toBe(false);
  });
  it("Access emails are admins when listed in ALPINE_ADMINS", () => {
    expect(isAdminEmail(list, "Ops@Example.com")).toBe(true);
    expect(isAdminEmail(list, "dev@example.com")).toBe(false);
  });
});

describe("route access", () => {
  it("every route of the table has a rule, and the table has no rule for a route that does not exist", () => {
    expect(Object.keys(ROUTE_ACCESS).sort()).toEqual([...ROUTE_NAMES].sort());
  });
  it("routes that act on everyone's sandboxes or shared credentials are admin-only", () => {
    expect(ROUTE_ACCESS.gc).toBe("admin");
    expect(ROUTE_ACCESS.auth).toBe("admin");
    // A repo secret reaches every sandbox of its repo, whoever owns it.
    expect(ROUTE_ACCESS.secrets_set).toBe("admin");
    expect(ROUTE_ACCESS.secrets_rm).toBe("admin");
    expect(ROUTE_ACCESS.secrets_ls).toBe("signed-in");
  });
});
