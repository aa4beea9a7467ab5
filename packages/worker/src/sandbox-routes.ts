import {
  AlpineError,
  CONTROL_PLANE_ROUTES,
  type OperationContext,
  parseRouteRequest,
  ROUTE_OPERATIONS,
  type RouteInput,
  type RouteOperation,
  routeOf,
  type SandboxRouteName,
  silentProgress,
  toAlpineError,
} from "@alpine/core";
import { streamOperation } from "./http.ts";

/**
 * The SandboxObject's dispatcher: a route a sandbox's Durable Object answers
 * (core's route table), its request parsed, run by its operation
 * (core's ROUTE_OPERATIONS): the same operations the CLI runs for local sandboxes.
 */

export interface DispatchDeps {
  name: string;
  /** The operations' context for this route and request (config kept when the route mutates). */
  operations(route: SandboxRouteName, input: RouteInput<SandboxRouteName>): Promise<OperationContext>;
  /** A streamed operation begins (it may outlive its client); the function returned ends it. */
  beginOperation(): Promise<() => void>;
  /** After a streamed operation ended (it changed state after the answer began). */
  afterStream(): Promise<void>;
  keepAlive(p: Promise<unknown>): void;
  /** After a mutating route ended: its outcome (`ok` or the reason code) for the audit log. */
  audited?(route: SandboxRouteName, outcome: string): Promise<void>;
}

/** Runs a route's operation, reporting how a mutating one ended to `deps.audited`. */
async function auditedRun<T>(route: SandboxRouteName, deps: DispatchDeps, run: () => Promise<T>): Promise<T> {
  if (!CONTROL_PLANE_ROUTES[route].mutates || !deps.audited) return run();
  let outcome = "ok";
  try {
    return await run();
  } catch (err) {
    outcome = toAlpineError(err).reason;
    throw err;
  } finally {
    await deps.audited(route, outcome);
  }
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
  const run = ROUTE_OPERATIONS[route] as RouteOperation<SandboxRouteName>;
  if (!CONTROL_PLANE_ROUTES[route].streamed) {
    const value = await auditedRun(route, deps, () =>
      run({ ...ops, progress: silentProgress }, deps.name, input),
    );
    return Response.json(value, {
      headers: { "cache-control": "no-store" },
    });
  }
  return streamOperation(
    request,
    async (progress) => {
      const end = await deps.beginOperation();
      try {
        return await auditedRun(route, deps, () => run({ ...ops, progress }, deps.name, input));
      } finally {
        end();
        await deps.afterStream();
      }
    },
    deps.keepAlive,
  );
}
