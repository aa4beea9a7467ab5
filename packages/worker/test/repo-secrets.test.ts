import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { api, call, deviceSignIn, TOKEN } from "./helpers.ts";

/**
 * Repo secrets on the control plane (`alpine secrets` with the cloudflare provider;
 * docs/cloudflare.md, "Repo secrets"): set / ls / rm through the Worker's routes, sealed at rest
 * in the registry's `secrets` table (the raw row never holds the value), never answered back,
 * set and removed by admins only, every mutation in the audit log. What a sandbox gets from them
 * at launch is the e2e's (test/e2e/environment.cloudflare.test.ts).
 */

const REPO = "https://git.example.com/acme/secrets-app";
const VALUE = "repo-secret-value-W0RKERTEST0123456789";
const GLOBAL_VALUE = "global-secret-value-W0RKERTEST9876543210";

let alice = "";

async function as(token: string | null, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await call(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) };
}

/** Every row of the registry's `secrets` table as stored (never opened). */
function rawRows(): Promise<{ key: string; sealed: string }[]> {
  const registry = env.REGISTRY.getByName("registry");
  return runInDurableObject(registry, (_i, state) =>
    state.storage.sql.exec<{ key: string; sealed: string }>("SELECT key, sealed FROM secrets").toArray(),
  );
}

beforeAll(async () => {
  alice = await deviceSignIn("alice");
});

describe("repo secrets on the control plane", () => {
  it("set stores the value sealed: the raw row holds neither the value nor a readable form of it", async () => {
    const r = await api("PUT", "/v1/secrets", { name: "NPM_TOKEN", scope: REPO, value: VALUE });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({ name: "NPM_TOKEN", scope: REPO, agent: false, replaced: false });
    expect(JSON.stringify(r.body)).not.toContain(VALUE);
    const g = await api("PUT", "/v1/secrets", {
      name: "SENTRY",
      scope: "global",
      value: GLOBAL_VALUE,
      agent: true,
    });
    expect(g.body).toEqual({ name: "SENTRY", scope: "global", agent: true, replaced: false });

    const rows = (await rawRows()).filter((row) => row.key.startsWith("repo-secret:"));
    expect(rows.map((row) => row.key).sort()).toEqual([
      "repo-secret:global:SENTRY",
      `repo-secret:${REPO}:NPM_TOKEN`,
    ]);
    for (const row of rows) {
      expect(row.sealed).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      for (const v of [VALUE, GLOBAL_VALUE]) {
        expect(row.sealed).not.toContain(v);
      }
    }
    // The registry opens them for a launch of that repo: the global one and the repo's own.
    const given = await env.REGISTRY.getByName("registry").secretsFor(REPO);
    expect(given).toEqual([
      { name: "NPM_TOKEN", value: VALUE, agent: false },
      { name: "SENTRY", value: GLOBAL_VALUE, agent: true },
    ]);
    expect(await env.REGISTRY.getByName("registry").secretsFor("https://git.example.com/acme/other")).toEqual(
      [{ name: "SENTRY", value: GLOBAL_VALUE, agent: true }],
    );
  });

  it("a sealed row copied to another repo's key does not open there (the purpose binds the row)", async () => {
    const registry = env.REGISTRY.getByName("registry");
    const other = "https://git.example.com/acme/moved";
    await runInDurableObject(registry, (_i, state) => {
      const sealed = state.storage.sql
        .exec<{ sealed: string }>("SELECT sealed FROM secrets WHERE key = ?", `repo-secret:${REPO}:NPM_TOKEN`)
        .one().sealed;
      state.storage.sql.exec(
        "INSERT INTO secrets (key, sealed) VALUES (?, ?)",
        `repo-secret:${other}:NPM_TOKEN`,
        sealed,
      );
    });
    // Inside the object (a rejection across RPC would be reported as unhandled by the test pool).
    const opened = await runInDurableObject(registry, (instance) =>
      instance.secretsFor(other).then(
        () => "opened",
        (err: Error) => err.message,
      ),
    );
    // Not WebCrypto's bare OperationError: which secret, and how to mend it, without its value.
    expect(opened).toBe(
      `the repo secret NPM_TOKEN (${other}) cannot be opened: it was sealed under another control-plane token or is damaged; set it again with \`alpine secrets set NPM_TOKEN\` or remove it with \`alpine secrets rm NPM_TOKEN\``,
    );
    await runInDurableObject(registry, (_i, state) => {
      state.storage.sql.exec("DELETE FROM secrets WHERE key = ?", `repo-secret:${other}:NPM_TOKEN`);
    });
  });

  it("ls answers names, scope, agent flag and dates, never a value; anyone signed in may list", async () => {
    for (const token of [TOKEN, alice]) {
      const r = await as(token, "GET", "/v1/secrets");
      expect(r.status).toBe(200);
      expect(r.body.secrets).toEqual([
        { name: "SENTRY", scope: "global", agent: true, updated_at: expect.any(String) },
        { name: "NPM_TOKEN", scope: REPO, agent: false, updated_at: expect.any(String) },
      ]);
      expect(r.text).not.toContain(VALUE);
      expect(r.text).not.toContain(GLOBAL_VALUE);
    }
    expect((await as(null, "GET", "/v1/secrets")).status).toBe(401);
  });

  it("setting it again replaces it (replaced: true), with a later date", async () => {
    const before = (await api("GET", "/v1/secrets")).body.secrets.find(
      (s: { name: string }) => s.name === "NPM_TOKEN",
    );
    await new Promise((r) => setTimeout(r, 5));
    const r = await api("PUT", "/v1/secrets", {
      name: "NPM_TOKEN",
      scope: REPO,
      value: `${VALUE}-2`,
      agent: true,
    });
    expect(r.body).toEqual({ name: "NPM_TOKEN", scope: REPO, agent: true, replaced: true });
    const after = (await api("GET", "/v1/secrets")).body.secrets.find(
      (s: { name: string }) => s.name === "NPM_TOKEN",
    );
    expect(after.agent).toBe(true);
    expect(after.updated_at > before.updated_at).toBe(true);
    expect(await env.REGISTRY.getByName("registry").secretsFor(REPO)).toContainEqual({
      name: "NPM_TOKEN",
      value: `${VALUE}-2`,
      agent: true,
    });
  });

  it("a user who is not an admin may not set or remove one (forbidden, audited); nothing changes", async () => {
    const set = await as(alice, "PUT", "/v1/secrets", { name: "EVIL", scope: REPO, value: "x" });
    expect(set.status).toBe(403);
    expect(set.body.reason_code).toBe("forbidden");
    const rm = await as(alice, "POST", "/v1/secrets/rm", { name: "NPM_TOKEN", scope: REPO });
    expect(rm.status).toBe(403);
    const names = (await api("GET", "/v1/secrets")).body.secrets.map((s: { name: string }) => s.name);
    expect(names).toContain("NPM_TOKEN");
    expect(names).not.toContain("EVIL");
    const audit = (await api("GET", "/v1/audit?tail=1000")).body as {
      principal: string;
      action: string;
      outcome: string;
    }[];
    expect(audit).toContainEqual(
      expect.objectContaining({ principal: "github:alice", action: "secrets_set", outcome: "forbidden" }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ principal: "github:alice", action: "secrets_rm", outcome: "forbidden" }),
    );
  });

  it("refuses what the CLI refuses (reserved or bad names, bad scopes, empty or NUL values), without echoing the value", async () => {
    const bad: [string, Record<string, unknown>][] = [
      ["a reserved name", { name: "PATH", scope: REPO, value: VALUE }],
      ["a name with a dash", { name: "A-B", scope: REPO, value: VALUE }],
      ["a scope with a space", { name: "OK_NAME", scope: "a b", value: VALUE }],
      ["an empty value", { name: "OK_NAME", scope: REPO, value: "" }],
      ["a NUL in the value", { name: "OK_NAME", scope: REPO, value: `${VALUE}\u0000` }],
      ["a value over 64 KiB", { name: "OK_NAME", scope: REPO, value: "v".repeat(64 * 1024 + 1) }],
      ["no value at all", { name: "OK_NAME", scope: REPO }],
    ];
    for (const [label, body] of bad) {
      const r = await api("PUT", "/v1/secrets", body);
      expect(r.status, label).toBe(400);
      expect(r.body.reason_code, label).toBe("usage_invalid");
      expect(JSON.stringify(r.body), label).not.toContain(VALUE);
    }
    const names = (await api("GET", "/v1/secrets")).body.secrets.map((s: { name: string }) => s.name);
    expect(names).not.toContain("OK_NAME");
  });

  it("rm removes one scope's secret, says so for one that is not there, and every mutation is audited", async () => {
    const rm = await api("POST", "/v1/secrets/rm", { name: "NPM_TOKEN", scope: REPO });
    expect(rm.status).toBe(200);
    expect(rm.body).toEqual({ name: "NPM_TOKEN", scope: REPO, removed: true });
    const again = await api("POST", "/v1/secrets/rm", { name: "NPM_TOKEN", scope: REPO });
    expect(again.status).toBe(400);
    expect(again.body.error).toContain("no secret NPM_TOKEN for");
    expect((await rawRows()).map((r) => r.key)).not.toContain(`repo-secret:${REPO}:NPM_TOKEN`);
    expect(await env.REGISTRY.getByName("registry").secretsFor(REPO)).toEqual([
      { name: "SENTRY", value: GLOBAL_VALUE, agent: true },
    ]);
    const audit = (await api("GET", "/v1/audit?tail=1000")).body as {
      principal: string;
      action: string;
      outcome: string;
    }[];
    const mine = audit.filter((a) => a.principal === "admin" && a.action.startsWith("secrets_"));
    expect(mine.map((a) => `${a.action} ${a.outcome}`)).toEqual([
      "secrets_set ok",
      "secrets_set ok",
      "secrets_set ok",
      ...Array(7).fill("secrets_set usage_invalid"),
      "secrets_rm ok",
      "secrets_rm usage_invalid",
    ]);
    // Nothing the audit log keeps holds a value.
    expect(JSON.stringify(audit)).not.toContain(VALUE);
    // Model credentials share the table and are untouched by all of this.
    expect((await rawRows()).every((r) => r.key === "model-auth" || r.key.startsWith("repo-secret:"))).toBe(
      true,
    );
  });
});
