import { exports } from "cloudflare:workers";
import { expect, inject } from "vitest";

export const TOKEN = inject("controlPlaneToken");

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`http://cp.test${path}`, init));
}

/** An authenticated JSON call; returns the status and the parsed body. */
export async function api(
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests index into arbitrary JSON output
): Promise<{ status: number; body: any }> {
  const res = await call(path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed };
}

/** The config a CLI would send: OpenCode pointed at the stub model. */
export function cliConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    opencode: { model: inject("model"), auth_providers: ["stub"], config: inject("opencodeConfig") },
    ...extra,
  };
}

export const gitCredentials = () => ({ username: inject("gitUser"), password: inject("gitPassword") });

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * `alpine login`'s device flow for `login` against the GitHub stub (the stub's `POST
 * /login/device` stands for the user entering the code at GitHub): a control-plane CLI token.
 */
export async function deviceSignIn(login: string): Promise<string> {
  const start = await call("/auth/github/device", { method: "POST" });
  expect(start.status).toBe(200);
  const { device_code, user_code } = (await start.json()) as { device_code: string; user_code: string };
  const approve = await fetch(`${inject("githubUrl")}/login/device`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_code, login }),
  });
  expect(approve.status).toBe(200);
  const res = await call("/auth/github/device/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ device_code }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { token: string }).token;
}
