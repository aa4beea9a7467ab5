import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../src/config.ts";
import { CONTROL_PLANE_ROUTES, parseRouteRequest, ROUTE_NAMES } from "../src/control-plane-routes.ts";
import { AlpineError } from "../src/errors.ts";
import {
  diffOperation,
  exportOperation,
  launchOperation,
  listOperation,
  loginOperation,
  logsOperation,
  type OperationContext,
  type OperationsOrchestrator,
  ROUTE_OPERATIONS,
  statusOperation,
  taskOperation,
  teardownOperation,
} from "../src/operations/index.ts";
import type { Probe } from "../src/orchestrator.ts";
import {
  DiffOutputSchema,
  ExportOutputSchema,
  LaunchOutputSchema,
  LogsOutputSchema,
  type SandboxRecord,
  StatusOutputSchema,
  TaskOutputSchema,
  TeardownOutputSchema,
} from "../src/schemas.ts";

const AT = "2026-01-01T00:00:00.000Z";

function record(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    id: "sbx_1",
    name: "demo",
    provider: "local",
    repo: "https://example.test/r.git",
    ref: null,
    branch: "alpine/demo",
    image_profile: "default",
    state: "running",
    created_at: AT,
    updated_at: AT,
    last_activity: null,
    agent: "idle",
    runtime: { handle: { pid: 1 }, web_url: "http://127.0.0.1:7000/" },
    task: null,
    checkpoint: null,
    export: null,
    error: null,
    version: 1,
    ...patch,
  };
}

const PROBE_OK: Probe = { state: "ok", at: AT, status: null, error: null };

/** A fake of the orchestrator's public surface that records the calls the operations make. */
function fakeOrchestrator(over: Partial<OperationsOrchestrator> = {}) {
  const calls: string[] = [];
  const note =
    <A extends unknown[], R>(name: string, fn: (...args: A) => R) =>
    (...args: A): R => {
      calls.push(name);
      return fn(...args);
    };
  const base: OperationsOrchestrator = {
    get: note("get", async () => record()),
    list: note("list", async () => [record(), record({ name: "other", id: "sbx_2" })]),
    peers: note("peers", async () => []),
    listNoticingSuspensions: note("listNoticingSuspensions", async () => [
      record(),
      record({ name: "other", id: "sbx_2" }),
    ]),
    resume: note("resume", async () => record()),
    activeLease: note("activeLease", async () => null),
    events: note("events", async () => []),
    probe: note("probe", async () => PROBE_OK),
    connect: note("connect", async () => ({
      diff: async ({ stat }: { stat: boolean }) => ({
        files: [{ path: "a.txt", status: "added", insertions: 1, deletions: 0 }],
        patch: stat ? null : "+a\n",
      }),
      login: async (body?: { port?: number }) =>
        body?.port
          ? { code: "p0rt", expires_at: AT, path: `/__alpine/auth/p0rt-${body.port}` }
          : { code: "c0de", expires_at: AT },
    })) as unknown as OperationsOrchestrator["connect"],
    settle: note("settle", async (r: SandboxRecord) => r),
    reconcile: note("reconcile", async (r: SandboxRecord) => ({ ...r, agent: "busy" as const })),
    launch: note("launch", async () => ({
      record: record(),
      reused: false,
      resumed: false,
      task_accepted: true,
      session_id: "ses_1",
      operation_id: "op_1",
    })),
    task: note("task", async () => ({ record: record(), session_id: "ses_2" })),
    waitForTask: note("waitForTask", async () => record({ state: "completed" })),
    blockers: note("blockers", () => []),
    checkpoint: note("checkpoint", async () => {
      throw new Error("not used");
    }),
    teardown: note("teardown", async () => ({
      record: record({ state: "destroyed" }),
      destroyed: true,
      checkpoint_id: "cp_1",
    })),
    export: note("export", async () => ({
      record: record(),
      work: {
        branch: "alpine/demo",
        commit: "a".repeat(40),
        base_commit: "b".repeat(40),
        tree_hash: "c".repeat(40),
        files_changed: 1,
        insertions: 1,
        deletions: 0,
        pushed: false,
        remote: null,
        patch: "+a\n",
      },
      source: "workspace" as const,
      pr_url: null,
      checkpoint_id: null,
      auto_tore_down: false,
      exported_at: AT,
    })),
    gc: note("gc", async () => ({ torn_down: [], kept: [] })),
    ...over,
  };
  return { orchestrator: base, calls };
}

function context(orchestrator: OperationsOrchestrator, over: Partial<OperationContext> = {}) {
  const steps: string[] = [];
  const warnings: string[] = [];
  const ctx: OperationContext = {
    orchestrator,
    config: DEFAULT_CONFIG,
    progress: { step: (s) => steps.push(s), warn: (w) => warnings.push(w) },
    runtimeLogs: async () => ["line 1"],
    loginUrl: (r, code) => `${r.runtime?.web_url}auth/${code}`,
    ...over,
  };
  return { ctx, steps, warnings };
}

describe("the operations layer", () => {
  it("status settles, probes within the given time, reconciles, and reports the reconciled record", async () => {
    let probeOpts: unknown;
    const { orchestrator, calls } = fakeOrchestrator({
      probe: async (_r, opts) => {
        probeOpts = opts;
        return PROBE_OK;
      },
    });
    const { ctx } = context(orchestrator);
    const view = await statusOperation(ctx, "demo", { probeTimeoutMs: 1234 });
    expect(probeOpts).toEqual({ timeoutMs: 1234 });
    expect(calls.indexOf("settle")).toBeLessThan(calls.indexOf("reconcile"));
    // The agent state comes from the probe's answer; the record's reconciled state otherwise.
    expect(view.runtime.agent).toBe("unknown");
    expect(view.runtime.web_url).toBe("http://127.0.0.1:7000/");
    expect(StatusOutputSchema.safeParse(view).success).toBe(true);
  });

  it("status's overlaps come from the orchestrator's peers (on the control plane: the registry, not its one-record store)", async () => {
    const changes = { files: ["src/a.ts", "README.md"], tree_hash: "t1", seen_at: AT };
    const { orchestrator, calls } = fakeOrchestrator({
      get: async () => record({ changes }),
      settle: async (r) => r,
      reconcile: async (r) => r,
      // The store knows only the subject; the peers know another sandbox on the same repo.
      list: async () => [record({ changes })],
      peers: async () => [
        {
          name: "demo",
          repo: "https://example.test/r.git",
          files: ["src/a.ts"],
          destroyed: false,
          unexported: true,
        },
        {
          name: "elsewhere",
          repo: "https://example.test/r",
          files: ["src/a.ts", "x"],
          destroyed: false,
          unexported: true,
        },
      ],
    });
    const { ctx } = context(orchestrator);
    const view = await statusOperation(ctx, "demo");
    expect(view.overlaps).toEqual([{ name: "elsewhere", files: ["src/a.ts"] }]);
    expect(calls).not.toContain("list");
  });

  it("status and launch report the web UI where the context says it is reached", async () => {
    const { orchestrator } = fakeOrchestrator();
    const { ctx } = context(orchestrator, { webUrl: (r) => `https://cp.test/s/${r.name}/` });
    expect((await statusOperation(ctx, "demo")).runtime.web_url).toBe("https://cp.test/s/demo/");
    const launched = await launchOperation(ctx, { name: "demo", repo: "https://example.test/r.git" });
    expect(launched.web_url).toBe("https://cp.test/s/demo/");
    expect(LaunchOutputSchema.safeParse(launched).success).toBe(true);
  });

  it("task waits for the agent only when asked, and says so", async () => {
    const { orchestrator, calls } = fakeOrchestrator();
    const { ctx, steps } = context(orchestrator);
    const sent = await taskOperation(ctx, "demo", "do it", { wait: false });
    expect(sent).toEqual({ name: "demo", session_id: "ses_2", state: "running" });
    expect(calls).not.toContain("waitForTask");
    const waited = await taskOperation(ctx, "demo", "do it", { wait: true });
    expect(waited.state).toBe("completed");
    expect(steps).toEqual(["waiting for the agent to finish"]);
    expect(TaskOutputSchema.safeParse(waited).success).toBe(true);
  });

  it("diff leaves the patch out with stat", async () => {
    const { ctx } = context(fakeOrchestrator().orchestrator);
    expect((await diffOperation(ctx, "demo", { stat: true })).patch).toBe("");
    const full = await diffOperation(ctx, "demo", { stat: false });
    expect(full.patch).toBe("+a\n");
    expect(DiffOutputSchema.safeParse(full).success).toBe(true);
  });

  it("login builds the link from sandboxd's one-time code", async () => {
    const { ctx } = context(fakeOrchestrator().orchestrator);
    expect(await loginOperation(ctx, "demo")).toEqual({
      name: "demo",
      web_url: "http://127.0.0.1:7000/auth/c0de",
      expires_at: AT,
    });
  });

  it("login with a port asks sandboxd for that port's code and builds the preview link; without previewUrl it is refused", async () => {
    const { ctx } = context(fakeOrchestrator().orchestrator, {
      previewUrl: (r, path, port) => `http://${port}-${r.name}.localhost:7000${path}`,
    });
    expect(await loginOperation(ctx, "demo", { port: 3000 })).toEqual({
      name: "demo",
      web_url: "http://3000-demo.localhost:7000/__alpine/auth/p0rt-3000",
      expires_at: AT,
      port: 3000,
    });
    const { ctx: noPreviews } = context(fakeOrchestrator().orchestrator);
    await expect(loginOperation(noPreviews, "demo", { port: 3000 })).rejects.toMatchObject({
      reason: "usage_invalid",
    });
  });

  it("logs keeps the events when the runtime's log cannot be read, and warns", async () => {
    const { ctx, warnings } = context(fakeOrchestrator().orchestrator, {
      runtimeLogs: async () => {
        throw new AlpineError("sandbox_unavailable", "gone");
      },
    });
    const out = await logsOperation(ctx, "demo", { tail: 10 });
    expect(out).toEqual({ name: "demo", events: [], lines: [] });
    expect(warnings[0]).toMatch(/gone/);
    expect(LogsOutputSchema.safeParse(out).success).toBe(true);
    const withLog = context(fakeOrchestrator().orchestrator).ctx;
    expect((await logsOperation(withLog, "demo", { tail: 10 })).lines).toEqual(["line 1"]);
  });

  it("logs does not ask for a runtime log when there is no runtime", async () => {
    let asked = false;
    const { ctx } = context(fakeOrchestrator({ get: async () => record({ runtime: null }) }).orchestrator, {
      runtimeLogs: async () => {
        asked = true;
        return [];
      },
    });
    await logsOperation(ctx, "demo", { tail: 10 });
    expect(asked).toBe(false);
  });

  it("export carries the patch text only when a patch was asked for", async () => {
    const { ctx } = context(fakeOrchestrator().orchestrator);
    const pushed = await exportOperation(ctx, "demo", {});
    expect(pushed).not.toHaveProperty("patch");
    expect(ExportOutputSchema.safeParse(pushed).success).toBe(true);
    expect((await exportOperation(ctx, "demo", { patch: true })).patch).toBe("+a\n");
  });

  it("teardown reports whether it was forced; list maps every record", async () => {
    const { ctx } = context(fakeOrchestrator().orchestrator);
    const view = await teardownOperation(ctx, "demo", { force: true });
    expect(view).toEqual({
      name: "demo",
      state: "destroyed",
      checkpoint_id: "cp_1",
      destroyed: true,
      forced: true,
    });
    expect(TeardownOutputSchema.safeParse(view).success).toBe(true);
    expect((await listOperation(ctx)).map((i) => i.name)).toEqual(["demo", "other"]);
  });

  it("maps every route a sandbox answers to an operation, fed by the route's parsed request", async () => {
    // The registry object answers its own routes (list, auth, audit); every other one is an operation.
    const sandboxRoutes = ROUTE_NAMES.filter((n) => CONTROL_PLANE_ROUTES[n].target !== "registry").sort();
    expect(Object.keys(ROUTE_OPERATIONS).sort()).toEqual(sandboxRoutes);
    let sinceSeq: unknown;
    let launched: unknown;
    const { orchestrator } = fakeOrchestrator({
      events: async (_name, opts) => {
        sinceSeq = opts?.afterSeq;
        return [];
      },
      launch: async (input) => {
        launched = input;
        return {
          record: record(),
          reused: false,
          resumed: false,
          task_accepted: false,
          session_id: null,
          operation_id: "op",
        };
      },
    });
    const { ctx } = context(orchestrator);
    const logs = await ROUTE_OPERATIONS.logs(
      ctx,
      "demo",
      parseRouteRequest("logs", { query: new URLSearchParams("after_seq=4&tail=2") }),
    );
    expect(logs.lines).toEqual(["line 1"]);
    expect(sinceSeq).toBe(4);
    await ROUTE_OPERATIONS.launch(
      ctx,
      "demo",
      parseRouteRequest("launch", { body: '{"repo":"https://example.test/r.git"}' }),
    );
    expect(launched).toMatchObject({
      name: "demo",
      repo: "https://example.test/r.git",
      provider: "cloudflare",
    });
    // launch --skip-setup reaches the control plane's launch.
    await ROUTE_OPERATIONS.launch(
      ctx,
      "demo",
      parseRouteRequest("launch", { body: '{"repo":"https://example.test/r.git","skip_setup":true}' }),
    );
    expect(launched).toMatchObject({ name: "demo", skip_setup: true });
    const diff = await ROUTE_OPERATIONS.diff(
      ctx,
      "demo",
      parseRouteRequest("diff", { query: new URLSearchParams("stat=1") }),
    );
    expect(diff.patch).toBe("");
  });
});

describe("ROUTE_OPERATIONS", () => {
  const CP = {
    id: "cp_9",
    verified: true,
    content_hash: "d".repeat(64),
    tree_hash: "c".repeat(40),
    head_commit: "a".repeat(40),
    bytes: 1234,
    created_at: AT,
  };

  /** A fake orchestrator whose mutating calls record their arguments. */
  function recording() {
    const args: Record<string, unknown[]> = {};
    const keep =
      <R>(name: string, result: () => R) =>
      async (...a: unknown[]): Promise<Awaited<R>> => {
        args[name] = a;
        return await result();
      };
    const { orchestrator, calls } = fakeOrchestrator({
      task: keep("task", () => ({ record: record(), session_id: "ses_7" })) as never,
      checkpoint: keep("checkpoint", () => ({
        record: record({ checkpoint: CP }),
        manifest: {} as never,
      })) as never,
      teardown: keep("teardown", () => ({
        record: record({ state: "destroyed" }),
        destroyed: true,
        checkpoint_id: null,
      })) as never,
      gc: keep("gc", () => ({ torn_down: ["old"], kept: [] })) as never,
    });
    const base = orchestrator.export;
    orchestrator.export = async (...a) => {
      args.export = a;
      return base(...a);
    };
    return { ctx: context(orchestrator).ctx, args, calls };
  }

  it("status reports the named sandbox", async () => {
    const { ctx, calls } = recording();
    const view = await ROUTE_OPERATIONS.status(ctx, "demo", parseRouteRequest("status", {}));
    expect(view.name).toBe("demo");
    expect(calls).toContain("probe");
    expect(StatusOutputSchema.safeParse(view).success).toBe(true);
  });

  it("task passes the prompt and waits only when asked", async () => {
    const { ctx, args, calls } = recording();
    const sent = await ROUTE_OPERATIONS.task(
      ctx,
      "demo",
      parseRouteRequest("task", { body: '{"prompt":"go"}' }),
    );
    expect(sent).toEqual({ name: "demo", session_id: "ses_7", state: "running" });
    expect(args.task?.slice(0, 2)).toEqual(["demo", "go"]);
    expect(calls).not.toContain("waitForTask");
    const waited = await ROUTE_OPERATIONS.task(
      ctx,
      "demo",
      parseRouteRequest("task", { body: '{"prompt":"go","wait":true}' }),
    );
    expect(waited.state).toBe("completed");
    expect(calls).toContain("waitForTask");
  });

  it("launch passes the request's fields through, on the cloudflare provider", async () => {
    let launched: unknown;
    const { orchestrator } = fakeOrchestrator({
      launch: async (input) => {
        launched = input;
        return {
          record: record(),
          reused: true,
          resumed: false,
          task_accepted: false,
          session_id: null,
          operation_id: "op",
        };
      },
    });
    const { ctx } = context(orchestrator);
    const body = JSON.stringify({
      repo: "r",
      ref: "v1",
      image_profile: "big",
      task: "t",
      force_recreate: true,
    });
    await ROUTE_OPERATIONS.launch(ctx, "demo", parseRouteRequest("launch", { body }));
    expect(launched).toMatchObject({
      name: "demo",
      repo: "r",
      ref: "v1",
      image_profile: "big",
      task: "t",
      force_recreate: true,
      provider: "cloudflare",
    });
  });

  it("logs reads from the start when after_seq is not given", async () => {
    let after: unknown;
    const { orchestrator } = fakeOrchestrator({
      events: async (_name, opts) => {
        after = opts?.afterSeq;
        return [];
      },
    });
    const { ctx } = context(orchestrator);
    const view = await ROUTE_OPERATIONS.logs(
      ctx,
      "demo",
      parseRouteRequest("logs", { query: new URLSearchParams() }),
    );
    expect(after).toBe(0);
    expect(LogsOutputSchema.safeParse(view).success).toBe(true);
  });

  it("login answers the one-time link", async () => {
    const { ctx } = recording();
    expect(await ROUTE_OPERATIONS.login(ctx, "demo", parseRouteRequest("login", {}))).toEqual({
      name: "demo",
      web_url: "http://127.0.0.1:7000/auth/c0de",
      expires_at: AT,
    });
  });

  it("login with a port answers the preview's link (the control plane's route), or says why previews are unavailable", async () => {
    const { orchestrator } = fakeOrchestrator();
    const input = parseRouteRequest("login", { body: JSON.stringify({ port: 3000 }) });
    const { ctx } = context(orchestrator, {
      previewUrl: (r, path, port) => `http://${r.name}--p${port}.localhost:8787${path}`,
    });
    expect(await ROUTE_OPERATIONS.login(ctx, "demo", input)).toEqual({
      name: "demo",
      web_url: "http://demo--p3000.localhost:8787/__alpine/auth/p0rt-3000",
      expires_at: AT,
      port: 3000,
    });
    const none = context(orchestrator, { previewsUnavailable: "set ALPINE_UI_HOST" }).ctx;
    await expect(ROUTE_OPERATIONS.login(none, "demo", input)).rejects.toMatchObject({
      reason: "usage_invalid",
      message: "set ALPINE_UI_HOST",
    });
  });

  it("checkpoint reports the record's new checkpoint", async () => {
    const { ctx, args } = recording();
    const view = await ROUTE_OPERATIONS.checkpoint(ctx, "demo", parseRouteRequest("checkpoint", {}));
    expect(view).toEqual({
      name: "demo",
      checkpoint_id: "cp_9",
      verified: true,
      content_hash: CP.content_hash,
      bytes: 1234,
      created_at: AT,
    });
    expect(args.checkpoint?.[0]).toBe("demo");
  });

  it("export passes its options and carries the patch only when asked", async () => {
    const { ctx, args } = recording();
    const plain = await ROUTE_OPERATIONS.export(
      ctx,
      "demo",
      parseRouteRequest("export", { body: '{"branch":"feat","pr":true,"from_checkpoint":false}' }),
    );
    expect(args.export?.slice(0, 2)).toEqual([
      "demo",
      { branch: "feat", pr: true, patch: undefined, from_checkpoint: false },
    ]);
    expect("patch" in plain).toBe(false);
    expect(ExportOutputSchema.safeParse(plain).success).toBe(true);
    const withPatch = await ROUTE_OPERATIONS.export(
      ctx,
      "demo",
      parseRouteRequest("export", { body: '{"patch":true}' }),
    );
    expect(withPatch.patch).toBe("+a\n");
  });

  it("export gives an empty patch when the work has none", async () => {
    const { orchestrator } = fakeOrchestrator();
    const base = orchestrator.export;
    orchestrator.export = async (...a) => {
      const r = await base(...a);
      return { ...r, work: { ...r.work, patch: undefined } };
    };
    const { ctx } = context(orchestrator);
    const view = await ROUTE_OPERATIONS.export(
      ctx,
      "demo",
      parseRouteRequest("export", { body: '{"patch":true}' }),
    );
    expect(view.patch).toBe("");
  });

  it("teardown passes force, false when absent", async () => {
    const { ctx, args } = recording();
    const view = await ROUTE_OPERATIONS.teardown(ctx, "demo", parseRouteRequest("teardown", { body: "" }));
    expect(args.teardown?.slice(0, 2)).toEqual(["demo", { force: false }]);
    expect(view).toMatchObject({ name: "demo", destroyed: true, forced: false });
    await ROUTE_OPERATIONS.teardown(ctx, "demo", parseRouteRequest("teardown", { body: '{"force":true}' }));
    expect(args.teardown?.slice(0, 2)).toEqual(["demo", { force: true }]);
  });

  it("gc ignores the name and passes dry_run", async () => {
    const { ctx, args } = recording();
    expect(
      await ROUTE_OPERATIONS.gc(ctx, "ignored", parseRouteRequest("gc", { body: '{"dry_run":true}' })),
    ).toEqual({
      torn_down: ["old"],
      kept: [],
    });
    expect(args.gc).toEqual([{ dryRun: true }]);
    await ROUTE_OPERATIONS.gc(ctx, "ignored", parseRouteRequest("gc", {}));
    expect(args.gc).toEqual([{ dryRun: false }]);
  });

  it("refuses a request that does not fit the route", () => {
    expect(() => parseRouteRequest("task", { body: "{not json" })).toThrow(AlpineError);
    try {
      parseRouteRequest("task", { body: '{"prompt":5}' });
      expect.unreachable();
    } catch (err) {
      expect((err as AlpineError).reason).toBe("usage_invalid");
      expect((err as AlpineError).details.issues).toEqual([{ path: "prompt", message: expect.any(String) }]);
    }
  });
});
