import type { RouteInput, RouteResponse, SandboxRouteName } from "../control-plane-routes.ts";
import {
  checkpointOperation,
  exportOperation,
  gcOperation,
  launchOperation,
  taskOperation,
  teardownOperation,
} from "./changes.ts";
import type { OperationContext } from "./context.ts";
import { diffOperation, loginOperation, logsOperation, statusOperation } from "./reads.ts";

/** Runs a route's operation for one sandbox with the route's parsed request. */
export type RouteOperation<K extends SandboxRouteName> = (
  ops: OperationContext,
  name: string,
  input: RouteInput<K>,
) => Promise<RouteResponse<K>>;

/**
 * Each route a sandbox's Durable Object answers (control-plane-routes.ts),
 * mapped to its operation: the control plane's dispatcher looks routes up here.
 */
export const ROUTE_OPERATIONS: { [K in SandboxRouteName]: RouteOperation<K> } = {
  status: (ops, name) => statusOperation(ops, name),
  launch: (ops, name, input) =>
    launchOperation(ops, {
      name,
      repo: input.repo,
      ref: input.ref,
      image_profile: input.image_profile,
      // The routes are the control plane's: its sandboxes run on Cloudflare.
      provider: "cloudflare",
      task: input.task,
      force_recreate: input.force_recreate,
      skip_setup: input.skip_setup,
    }),
  task: (ops, name, input) =>
    taskOperation(ops, name, input.prompt, {
      wait: Boolean(input.wait),
      newSession: input.new_session === true,
      budget: input.budget,
    }),
  diff: (ops, name, input) => diffOperation(ops, name, { stat: input.stat }),
  login: (ops, name, input) =>
    loginOperation(ops, name, input.port !== undefined ? { port: input.port } : {}),
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
