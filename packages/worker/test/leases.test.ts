import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { api, cliConfig, gitCredentials, waitFor } from "./helpers.ts";

const NAME = "lease-one";

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
  const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
    repo: inject("repoUrl"),
    task: "WRITE A.md first",
    config: cliConfig(),
    credentials: gitCredentials(),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  await waitFor(
    "completed",
    async () => (await api("GET", `/v1/sandboxes/${NAME}`)).body.state === "completed",
  );
});

afterAll(async () => {
  await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
});

describe("leases in the Durable Object", () => {
  it("concurrent mutating requests: one holds the lease, the others get operation_in_progress (retryable)", async () => {
    const results = await Promise.all([
      api("POST", `/v1/sandboxes/${NAME}/checkpoint`, { config: cliConfig() }),
      api("POST", `/v1/sandboxes/${NAME}/checkpoint`, { config: cliConfig() }),
      api("POST", `/v1/sandboxes/${NAME}/task`, { prompt: "WRITE B.md second", config: cliConfig() }),
      api("POST", `/v1/sandboxes/${NAME}/teardown`, { config: cliConfig() }),
    ]);
    const ok = results.filter((r) => r.status === 200);
    const busy = results.filter((r) => r.status === 409 && r.body.reason_code === "operation_in_progress");
    expect(ok.length, JSON.stringify(results.map((r) => r.body))).toBe(1);
    expect(busy.length).toBe(3);
    for (const b of busy) {
      expect(b.body).toMatchObject({ exit_code: 2, retryable: true });
      expect(b.body.details.holder).toMatch(/^do:/);
    }
    // Nothing was left holding the lease.
    const status = await api("GET", `/v1/sandboxes/${NAME}`);
    expect(status.body.operation).toBeNull();
  });

  it("a lease held by an earlier instance of the object (it was restarted mid-operation) is taken over and logged", async () => {
    // Whichever request won the race above ran: a teardown leaves the sandbox destroyed, so bring it back.
    if ((await api("GET", `/v1/sandboxes/${NAME}`)).body.state === "destroyed") {
      const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
        config: cliConfig(),
        credentials: gitCredentials(),
      });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
    await waitFor("settled", async () => {
      const s = (await api("GET", `/v1/sandboxes/${NAME}`)).body;
      return s.state === "completed" || s.state === "running" ? s : null;
    });
    const stub = env.SANDBOX.getByName(NAME);
    await runInDurableObject(stub, async (_instance, state) => {
      const lease = {
        id: "op_dead:0",
        type: "checkpoint",
        holder: "do:previous:1",
        host: "do:previous",
        pid: 1,
        operation_id: "op_dead",
        acquired_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 30_000).toISOString(),
      };
      state.storage.sql.exec(
        "INSERT INTO leases (name, id, lease) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id, lease = excluded.lease",
        NAME,
        lease.id,
        JSON.stringify(lease),
      );
    });
    // Same host name as this instance, another pid: the object knows that holder is gone.
    await runInDurableObject(stub, async (instance, state) => {
      const host = `do:${state.id.toString().slice(0, 16)}`;
      const row = state.storage.sql.exec<{ lease: string }>("SELECT lease FROM leases").toArray()[0]!;
      const lease = { ...JSON.parse(row.lease), host, holder: `${host}:1` };
      state.storage.sql.exec("UPDATE leases SET lease = ?", JSON.stringify(lease));
      void instance;
    });
    const r = await api("POST", `/v1/sandboxes/${NAME}/checkpoint`, { config: cliConfig() });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const events = (await api("GET", `/v1/sandboxes/${NAME}/logs`)).body.events;
    expect(
      events.some(
        (e: { kind: string; reason: string }) =>
          e.kind === "lease_takeover" && /pid 1 is gone/.test(e.reason),
      ),
    ).toBe(true);
  });

  it("identity is immutable: launch of the name with another repo is sandbox_identity_conflict", async () => {
    const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      repo: "https://example.invalid/other.git",
      config: cliConfig(),
    });
    expect(r.status).toBe(409);
    expect(r.body.reason_code).toBe("sandbox_identity_conflict");
  });

  it("export while a live checkpoint is saving is export_retryable_state", async () => {
    const stub = env.SANDBOX.getByName(NAME);
    const original = await runInDurableObject(stub, async (instance, state) => {
      const row = state.storage.sql.exec<{ record: string }>("SELECT record FROM sandboxes").toArray()[0]!;
      const record = JSON.parse(row.record);
      state.storage.sql.exec(
        "UPDATE sandboxes SET record = ?",
        JSON.stringify({ ...record, state: "saving" }),
      );
      // Held by this very instance (alive), as a checkpoint in progress would hold it.
      const host = `do:${state.id.toString().slice(0, 16)}`;
      const pid = (instance as unknown as { pid: number }).pid;
      const lease = {
        id: "op_live:0",
        type: "checkpoint",
        holder: `${host}:${pid}`,
        host,
        pid,
        operation_id: "op_live",
        acquired_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 30_000).toISOString(),
      };
      state.storage.sql.exec(
        "INSERT INTO leases (name, id, lease) VALUES (?, ?, ?)",
        NAME,
        lease.id,
        JSON.stringify(lease),
      );
      return row.record;
    });
    const r = await api("POST", `/v1/sandboxes/${NAME}/export`, { patch: true, config: cliConfig() });
    expect(r.body).toMatchObject({ reason_code: "export_retryable_state", retryable: true });
    await runInDurableObject(stub, async (_i, state) => {
      state.storage.sql.exec("UPDATE sandboxes SET record = ?", original);
      state.storage.sql.exec("DELETE FROM leases");
    });
  });
});
