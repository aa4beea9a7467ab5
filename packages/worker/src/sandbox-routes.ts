import {
  AlpineError,
  CONTROL_PLANE_ROUTES,
  checkpointOperation,
  diffOperation,
  exportOperation,
  gcOperation,
  launchOperation,
  loginOperation,
  logsOperation,
  type OperationContext,
  parseRouteRequest,
  type RouteInput,
  type RouteResponse,
  routeOf,
  type SandboxRouteName,
  silentProgress,
  statusOperation,
  taskOperation,
  teardownOperation,
} from "@alpine/core";
import { streamOperation } from "./http.ts";

/**
 * The SandboxObject's dispatcher: each route a sandbox's Durable Object
 * answers (core's route table) mapped to its operation (core's operations/).
 * The operations are the same ones the CLI runs for local sandboxes.
 */

type Handler<K extends SandboxRouteName> = (
  ops: OperationContext,
  name: string,
  input: RouteInput<K>,
) => Promise<RouteResponse<K>>;

export const SANDBOX_OPERATIONS: { [K in SandboxRouteName]: Handler<K> } = {
  status: (ops, name) => statusOperation(ops, name),
  launch: (ops, name, input) =>
    launchOperation(ops, {
      name,
      repo: input.repo,
      ref: input.ref,
      image_profile: input.image_profile,
      provider: "cloudflare",
      task: input.task,
      force_recreate: input.force_recreate,
    }),
  task: (ops, name, input) => taskOperation(ops, name, input.prompt, { wait: Boolean(input.wait) }),
  diff: (ops, name, input) => diffOperation(ops, name, { stat: input.stat }),
  login: (ops, name) => loginOperation(ops, name),
  logs: (ops, name, input) => logsOperation(ops, name, { tail: input.tail, afterSeq: input.after_seq ?? 0 }),
  checkpoint: (ops, name) => checkpointOperation(ops, name),
  export: (ops, name, input) =>
    exportOperation(ops, name, {
      branch: input.branch,
      pr: input.pr,
      patch: input.patch,
      from_checkpoint: input.from_checkpoint,
    }),
  teardown: (ops, name, input) => teardownOperation(ops, name, { force: Boolean(input.force) }),
  gc: (ops, _name, input) => gcOperation(ops, { dryRun: Boolean(input.dry_run) }),
};

export interface DispatchDeps {
  name: string;
  /** The operations' context for this route and request (config kept when the route mutates). */
  operations(route: SandboxRouteName, input: RouteInput<SandboxRouteName>): Promise<OperationContext>;
  /** After a streamed operation ended (it changed state after the answer began). */
  afterStream(): Promise<void>;
  keepAlive(p: Promise<unknown>): void;
}

/** Answers one route (`op` is its name) for this sandbox. */
export async function dispatchRoute(request: Request, op: string, deps: DispatchDeps): Promise<Response> {
  const name = routeOf(request.method, op);
  if (!name || CONTROL_PLANE_ROUTES[name].target === "registry") {
    throw Object.assign(new AlpineError("usage_invalid", `no such operation: ${request.method} ${op}`), {
      httpStatus: 404,
    });
  }
  const route = name as SandboxRouteName;
  const input = parseRouteRequest(route, {
    body: request.method === "GET" ? undefined : await request.text(),
    query: new URL(request.url).searchParams,
  });
  const ops = await deps.operations(route, input);
  const run = SANDBOX_OPERATIONS[route] as Handler<SandboxRouteName>;
  if (!CONTROL_PLANE_ROUTES[route].streamed) {
    return Response.json(await run({ ...ops, progress: silentProgress }, deps.name, input), {
      headers: { "cache-control": "no-store" },
    });
  }
  return streamOperation(
    request,
    async (progress) => {
      try {
        return await run({ ...ops, progress }, deps.name, input);
      } finally {
        await deps.afterStream();
      }
    },
    deps.keepAlive,
  );
}
