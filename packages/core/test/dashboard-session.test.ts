import { describe, expect, it } from "vitest";
import {
  cookieValue,
  DASHBOARD_COOKIE,
  DASHBOARD_SESSION_TTL_MS,
  DashboardLogins,
  LOGIN_CODE_TTL_MS,
  sameSecret,
  sessionCookie,
} from "../src/dashboard/index.ts";

/** The dashboard's sign-in: one-time codes, sessions that end, and the cookie they live in. */

const cookieOf = (session: string) => `other=1; ${DASHBOARD_COOKIE}=${session}`;

describe("dashboard sessions", () => {
  it("a session ends 12 hours after it was opened, and stays ended", async () => {
    let now = 0;
    const logins = new DashboardLogins(() => now);
    const session = (await logins.redeem((await logins.newCode()).code))!;
    now = DASHBOARD_SESSION_TTL_MS - 1;
    expect(await logins.check(cookieOf(session))).toBe(true);
    now = DASHBOARD_SESSION_TTL_MS;
    expect(await logins.check(cookieOf(session))).toBe(false);
    now = 0;
    expect(await logins.check(cookieOf(session))).toBe(false);
  });

  it("keeps the newest 100 sessions: the oldest is signed out first", async () => {
    let now = 0;
    const logins = new DashboardLogins(() => now);
    const sessions: string[] = [];
    for (let i = 0; i < 101; i++) {
      now = i;
      sessions.push((await logins.redeem((await logins.newCode()).code))!);
    }
    expect(await logins.check(cookieOf(sessions[0]!))).toBe(false);
    expect(await logins.check(cookieOf(sessions[1]!))).toBe(true);
    expect(await logins.check(cookieOf(sessions[100]!))).toBe(true);
  });

  it("an expired code is consumed too: it never works later, even if the clock goes back", async () => {
    let now = 0;
    const logins = new DashboardLogins(() => now);
    const { code, expires_at } = await logins.newCode();
    expect(expires_at).toBe(new Date(LOGIN_CODE_TTL_MS).toISOString());
    now = LOGIN_CODE_TTL_MS;
    expect(await logins.redeem(code)).toBeNull();
    now = 0;
    expect(await logins.redeem(code)).toBeNull();
  });

  it("no cookie, another cookie or an unknown session is not signed in", async () => {
    const logins = new DashboardLogins();
    expect(await logins.check(null)).toBe(false);
    expect(await logins.check("other=1")).toBe(false);
    expect(await logins.check(cookieOf("made-up"))).toBe(false);
  });
});

describe("dashboard cookies and secrets", () => {
  it("reads a cookie by its exact name among others, ignoring parts without a value", () => {
    expect(
      cookieValue(`a=1; =x; junk; ${DASHBOARD_COOKIE}x=2; ${DASHBOARD_COOKIE}= v=3 `, DASHBOARD_COOKIE),
    ).toBe("v=3");
    expect(cookieValue(null, DASHBOARD_COOKIE)).toBeNull();
  });

  it("the session cookie is HttpOnly, SameSite=Strict, for the whole site, Secure over https", () => {
    expect(sessionCookie("v", false, 90_000)).toBe(
      `${DASHBOARD_COOKIE}=v; HttpOnly; SameSite=Strict; Path=/; Max-Age=90`,
    );
    expect(sessionCookie("v", true)).toBe(
      `${DASHBOARD_COOKIE}=v; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200; Secure`,
    );
  });

  it("compares secrets of any lengths", async () => {
    expect(await sameSecret("abc", "abc")).toBe(true);
    expect(await sameSecret("abc", "abd")).toBe(false);
    expect(await sameSecret("abc", "abcd")).toBe(false);
    expect(await sameSecret("", "")).toBe(true);
  });
});
