import { z } from "zod";
import { ErrorOutputSchema } from "./schemas.ts";

/**
 * The HTTP contract between the CLI (cloudflare provider) and the Cloudflare
 * control plane (packages/worker). Responses of the sandbox routes are the
 * CLI's own `--json` outputs (views.ts), so the CLI prints them unchanged.
 *
 * Long operations answer NDJSON when asked with `Accept: application/x-ndjson`:
 * `{"type":"progress","step"}` lines, `{"type":"heartbeat"}` every few
 * seconds, then one `{"type":"result","ok":true,"value"}` or
 * `{"type":"result","ok":false,"error"}`.
 */

export const NDJSON = "application/x-ndjson";

/** The CLI's effective config travels with mutating requests; the control plane keeps the latest (sealed). */
const configField = z.record(z.string(), z.unknown()).optional();

/**
 * The values of the variables config `notify.webhooks[].secret_env` names, read by the CLI at
 * launch and task: the sandbox object keeps them sealed and signs its webhooks with them
 * (docs/cloudflare.md, "Notifications"). A request without the field leaves the kept ones.
 */
const notifySecretsField = z.record(z.string(), z.string()).optional();

/** Git credentials for this one request (clone or push); never stored by the control plane. */
const credentialsField = z.object({ username: z.string(), password: z.string() }).nullable().optional();

export const RemoteLaunchSchema = z.object({
  repo: z.string().min(1).optional(),
  ref: z.string().min(1).optional(),
  image_profile: z.string().min(1).optional(),
  task: z.string().min(1).optional(),
  force_recreate: z.boolean().optional(),
  skip_setup: z.boolean().optional(),
  config: configField,
  credentials: credentialsField,
  notify_secrets: notifySecretsField,
});
export type RemoteLaunch = z.infer<typeof RemoteLaunchSchema>;

export const RemoteTaskSchema = z.object({
  prompt: z.string(),
  wait: z.boolean().optional(),
  new_session: z.boolean().optional(),
  /** `--budget +N` / `+$N`: raised for this sandbox before the prompt goes out. */
  budget: z.string().optional(),
  config: configField,
  notify_secrets: notifySecretsField,
});

export const RemoteExportSchema = z.object({
  branch: z.string().min(1).optional(),
  pr: z.boolean().optional(),
  patch: z.boolean().optional(),
  from_checkpoint: z.boolean().optional(),
  credentials: credentialsField,
  /** Token for the GitHub REST API (pull requests), this request only. */
  github_token: z.string().min(1).nullable().optional(),
  author: z.object({ name: z.string().min(1), email: z.string().min(1) }).optional(),
  config: configField,
});
export type RemoteExport = z.infer<typeof RemoteExportSchema>;

export const RemoteTeardownSchema = z.object({ force: z.boolean().optional(), config: configField });
export const RemoteCheckpointSchema = z.object({ config: configField });
export const RemoteGcSchema = z.object({ dry_run: z.boolean().optional(), config: configField });
export const RemoteAuthSchema = z.object({ entries: z.record(z.string(), z.unknown()) });
/**
 * Repo secrets (`alpine secrets` on the cloudflare provider): the value only ever in this body,
 * never a URL or query; `scope` is "global" or the repo as the CLI resolved it. The Worker checks
 * name, scope and value as the CLI does (core's secrets.ts).
 */
export const RemoteSecretSetSchema = z.object({
  name: z.string(),
  scope: z.string(),
  value: z.string(),
  agent: z.boolean().default(false),
});
export const RemoteSecretRmSchema = z.object({ name: z.string(), scope: z.string() });

export const RemoteLoginResponseSchema = z.object({
  name: z.string(),
  web_url: z.string(),
  expires_at: z.string(),
});

export const RemoteEventSchema = z.union([
  z.object({ type: z.literal("progress"), step: z.string() }),
  z.object({ type: z.literal("warning"), message: z.string() }),
  z.object({ type: z.literal("heartbeat") }),
  z.object({ type: z.literal("result"), ok: z.literal(true), value: z.unknown() }),
  z.object({ type: z.literal("result"), ok: z.literal(false), error: ErrorOutputSchema }),
]);
export type RemoteEvent = z.infer<typeof RemoteEventSchema>;

/** HTTP status of an error reason on the control plane (the body is the error object itself). */
export function httpStatusOf(reason: string, exitCode: 1 | 2): number {
  switch (reason) {
    case "unauthorized":
      return 401;
    case "forbidden":
      return 403;
    case "sandbox_not_found":
    case "checkpoint_missing":
      return 404;
    case "operation_in_progress":
    case "sandbox_identity_conflict":
    case "teardown_requires_force":
    case "teardown_blocked":
    case "sandbox_not_running":
    case "export_retryable_state":
    case "export_state_blocked":
      return 409;
    case "checkpoint_checksum_mismatch":
      return 422;
    case "sandbox_unavailable":
    case "provider_unavailable":
    case "agent_start_failed":
    case "container_capacity":
      return 503;
    default:
      return exitCode === 1 ? 400 : 500;
  }
}
