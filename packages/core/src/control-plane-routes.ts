import { z } from "zod";
import {
  RemoteAuthSchema,
  RemoteCheckpointSchema,
  RemoteExportSchema,
  RemoteGcSchema,
  RemoteLaunchSchema,
  RemoteSecretRmSchema,
  RemoteSecretSetSchema,
  RemoteTaskSchema,
  RemoteTeardownSchema,
} from "./control-plane-api.ts";
import { AlpineError } from "./errors.ts";
import type {
  AuditEntryView,
  EnvLsView,
  EnvRmView,
  SessionEntryView,
  SessionsRevokeView,
} from "./schemas.ts";
import type { SecretListing } from "./secrets.ts";
import type {
  CheckpointView,
  DiffView,
  ExportView,
  GcView,
  LaunchView,
  ListItemView,
  LoginView,
  LogsView,
  StatusView,
  TaskView,
  TeardownView,
} from "./views.ts";

/**
 * The control plane's route table: every `/v1` route, once. It drives the
 * Worker's router, the SandboxObject's dispatcher and the CLI's remote
 * client, so a new sandbox verb is one operation (operations/) and one entry
 * here. The wire format is described in control-plane-api.ts.
 */

export type RouteMethod = "GET" | "POST" | "PUT";

/**
 * Who answers a route: the sandbox's own Durable Object (`sandbox`, path has
 * `:name`), the registry object (`registry`), or every sandbox's object in
 * turn, their answers merged by the Worker (`every-sandbox`).
 */
export type RouteTarget = "sandbox" | "registry" | "every-sandbox";

export interface Route<
  Request extends z.ZodType = z.ZodType,
  Response = unknown,
  Target extends RouteTarget = RouteTarget,
> {
  method: RouteMethod;
  path: string;
  /** The JSON body (POST, PUT) or the query parameters (GET). */
  request: Request;
  /** Answers NDJSON progress, heartbeats and one result when asked with `Accept: application/x-ndjson`. */
  streamed: boolean;
  /** Changes state: the request carries the CLI's effective config, which the sandbox keeps for its alarm. */
  mutates: boolean;
  target: Target;
  /** Type only: the view the route answers with (views.ts). */
  readonly response?: Response;
}

/** Declares a route answering `Response` (curried so the request schema's type is inferred). */
const route =
  <Response>() =>
  <Request extends z.ZodType, Target extends RouteTarget>(
    spec: Omit<Route<Request, Response, Target>, "response">,
  ): Route<Request, Response, Target> =>
    spec;

const NoInput = z.object({});

/** `alpine open`: the web UI, or with `port` a preview of that port (its own hostname). */
export const RemoteLoginSchema = z.object({ port: z.number().int().min(1).max(65535).optional() });

/** A query flag: `1` or `true` sets it, anything else (or nothing) leaves it off. */
const queryFlag = z
  .string()
  .optional()
  .transform((v) => v === "1" || v === "true");

export const RemoteDiffQuerySchema = z.object({ stat: queryFlag });

export const RemoteLogsQuerySchema = z.object({
  tail: z.coerce.number().int().min(0).default(200),
  after_seq: z.coerce.number().int().min(0).optional(),
});

/** `list`: `all=1` asks for every sandbox (admins; docs/cloudflare.md, "People and roles"). */
export const RemoteListQuerySchema = z.object({ all: queryFlag });

/** `audit`: the newest `tail` entries of the audit log. */
export const RemoteAuditQuerySchema = z.object({
  tail: z.coerce.number().int().min(1).max(1000).default(100),
});

/** `environments_rm`: the full keys (sha256) of the preparations to remove. */
export const RemoteEnvironmentsRmSchema = z.object({
  keys: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(1000),
});

/** `sessions`: every stored sign-in session, or one user's (`user`: a login or a principal id). */
export const RemoteSessionsQuerySchema = z.object({ user: z.string().min(1).optional() });

/** `revoke_sessions`: one session by its id, or every session of a user; exactly one of the two. */
export const RemoteRevokeSessionsSchema = z
  .object({ id: z.string().min(1).optional(), user: z.string().min(1).optional() })
  .refine((v) => (v.id === undefined) !== (v.user === undefined), {
    message: "give exactly one of id (a session) or user (all of a user's sessions)",
  });

const SANDBOX = "/v1/sandboxes/:name";

export const CONTROL_PLANE_ROUTES = {
  list: route<ListItemView[]>()({
    method: "GET",
    path: "/v1/sandboxes",
    request: RemoteListQuerySchema,
    streamed: false,
    mutates: false,
    target: "registry",
  }),
  auth: route<{ providers: string[]; held: string[] }>()({
    method: "PUT",
    path: "/v1/auth",
    request: RemoteAuthSchema,
    streamed: false,
    mutates: true,
    target: "registry",
  }),
  // repo secrets (`alpine secrets`): sealed in the registry; the value only in set's body, never answered.
  secrets_ls: route<{ secrets: SecretListing[] }>()({
    method: "GET",
    path: "/v1/secrets",
    request: NoInput,
    streamed: false,
    mutates: false,
    target: "registry",
  }),
  secrets_set: route<{ name: string; scope: string; agent: boolean; replaced: boolean }>()({
    method: "PUT",
    path: "/v1/secrets",
    request: RemoteSecretSetSchema,
    streamed: false,
    mutates: true,
    target: "registry",
  }),
  secrets_rm: route<{ name: string; scope: string; removed: true }>()({
    method: "POST",
    path: "/v1/secrets/rm",
    request: RemoteSecretRmSchema,
    streamed: false,
    mutates: true,
    target: "registry",
  }),
  // identity: the audit log of the control plane's mutations (`alpine logs --audit`).
  audit: route<AuditEntryView[]>()({
    method: "GET",
    path: "/v1/audit",
    request: RemoteAuditQuerySchema,
    streamed: false,
    mutates: false,
    target: "registry",
  }),
  // prepared environments in R2 (docs/environments.md): `alpine env ls / rm` and gc's pruning.
  environments: route<EnvLsView>()({
    method: "GET",
    path: "/v1/environments",
    request: NoInput,
    streamed: false,
    mutates: false,
    target: "registry",
  }),
  // identity: an admin lists the sign-in sessions (`alpine sessions ls`).
  sessions: route<SessionEntryView[]>()({
    method: "GET",
    path: "/v1/sessions",
    request: RemoteSessionsQuerySchema,
    streamed: false,
    mutates: false,
    target: "registry",
  }),
  environments_rm: route<EnvRmView>()({
    method: "POST",
    path: "/v1/environments/rm",
    request: RemoteEnvironmentsRmSchema,
    streamed: false,
    mutates: true,
    target: "registry",
  }),
  // identity: an admin revokes one session or all of a user's (`alpine sessions revoke`).
  revoke_sessions: route<SessionsRevokeView>()({
    method: "POST",
    path: "/v1/sessions/revoke",
    request: RemoteRevokeSessionsSchema,
    streamed: false,
    mutates: true,
    target: "registry",
  }),
  gc: route<GcView>()({
    method: "POST",
    path: "/v1/gc",
    request: RemoteGcSchema,
    streamed: false,
    mutates: true,
    target: "every-sandbox",
  }),
  status: route<StatusView>()({
    method: "GET",
    path: SANDBOX,
    request: NoInput,
    streamed: false,
    mutates: false,
    target: "sandbox",
  }),
  launch: route<LaunchView>()({
    method: "POST",
    path: `${SANDBOX}/launch`,
    request: RemoteLaunchSchema,
    streamed: true,
    mutates: true,
    target: "sandbox",
  }),
  task: route<TaskView>()({
    method: "POST",
    path: `${SANDBOX}/task`,
    request: RemoteTaskSchema,
    streamed: true,
    mutates: true,
    target: "sandbox",
  }),
  diff: route<DiffView>()({
    method: "GET",
    path: `${SANDBOX}/diff`,
    request: RemoteDiffQuerySchema,
    streamed: false,
    mutates: false,
    target: "sandbox",
  }),
  login: route<LoginView>()({
    method: "POST",
    path: `${SANDBOX}/login`,
    request: RemoteLoginSchema,
    streamed: false,
    mutates: false,
    target: "sandbox",
  }),
  logs: route<LogsView>()({
    method: "GET",
    path: `${SANDBOX}/logs`,
    request: RemoteLogsQuerySchema,
    streamed: false,
    mutates: false,
    target: "sandbox",
  }),
  checkpoint: route<CheckpointView>()({
    method: "POST",
    path: `${SANDBOX}/checkpoint`,
    request: RemoteCheckpointSchema,
    streamed: true,
    mutates: true,
    target: "sandbox",
  }),
  export: route<ExportView & { patch?: string }>()({
    method: "POST",
    path: `${SANDBOX}/export`,
    request: RemoteExportSchema,
    streamed: true,
    mutates: true,
    target: "sandbox",
  }),
  teardown: route<TeardownView>()({
    method: "POST",
    path: `${SANDBOX}/teardown`,
    request: RemoteTeardownSchema,
    streamed: true,
    mutates: true,
    target: "sandbox",
  }),
} as const;

export type RouteTable = typeof CONTROL_PLANE_ROUTES;
export type RouteName = keyof RouteTable;
/** The routes a sandbox's own Durable Object answers (and, for gc, each object answers for itself). */
export type SandboxRouteName = {
  [K in RouteName]: RouteTable[K]["target"] extends "registry" ? never : K;
}[RouteName];
/** What a route's handler receives: its request after parsing (defaults and coercions applied). */
export type RouteInput<K extends RouteName> = z.output<RouteTable[K]["request"]>;
/** What a client sends: the request before parsing (GET routes: query parameters as strings). */
export type RouteRequest<K extends RouteName> = z.input<RouteTable[K]["request"]>;
export type RouteResponse<K extends RouteName> = NonNullable<RouteTable[K]["response"]>;

export const ROUTE_NAMES = Object.keys(CONTROL_PLANE_ROUTES) as RouteName[];

/** The route's path for one sandbox (`:name` filled in, encoded). */
export function routePath(name: RouteName, sandbox?: string): string {
  const path = CONTROL_PLANE_ROUTES[name].path;
  if (!path.includes(":name")) return path;
  if (sandbox === undefined) throw new Error(`route ${name} needs a sandbox name`);
  return path.replace(":name", encodeURIComponent(sandbox));
}

/** The route a method and operation name stand for, if any (a Durable Object's dispatch). */
export function routeOf(method: string, name: string): RouteName | null {
  if (!Object.hasOwn(CONTROL_PLANE_ROUTES, name)) return null;
  return CONTROL_PLANE_ROUTES[name as RouteName].method === method ? (name as RouteName) : null;
}

/**
 * Parses a route's request (body text for POST/PUT, query parameters for GET);
 * an empty body is `{}`. Throws usage_invalid with the issues when it does not fit.
 */
export function parseRouteRequest<K extends RouteName>(
  name: K,
  input: { body?: string; query?: URLSearchParams },
): RouteInput<K> {
  const route = CONTROL_PLANE_ROUTES[name];
  let value: unknown = {};
  if (route.method === "GET") {
    const query: Record<string, string> = {};
    input.query?.forEach((v, k) => {
      query[k] = v;
    });
    value = query;
  } else if (input.body?.trim()) {
    try {
      value = JSON.parse(input.body);
    } catch {
      throw new AlpineError("usage_invalid", "request body is not valid JSON");
    }
  }
  const parsed = route.request.safeParse(value);
  if (!parsed.success) {
    throw new AlpineError("usage_invalid", "request body is invalid", {
      route: `${route.method} ${route.path}`,
      issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    });
  }
  return parsed.data as RouteInput<K>;
}
