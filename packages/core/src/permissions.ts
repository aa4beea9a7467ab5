import type { RouteName } from "./control-plane-routes.ts";
import { AlpineError } from "./errors.ts";

/**
 * Who may do what on the control plane (docs/cloudflare.md, "People and roles"): pure rules,
 * shared by the Worker (who may sign in, which routes a principal reaches, what `list` shows)
 * and the sandbox's Durable Object (who may act on its sandbox).
 */

/** The part of a control-plane principal (packages/worker/src/identity.ts) the rules read. */
export interface PrincipalRef {
  /** `github:<login>`, `access:<email>` or `admin` (the shared token). */
  id: string;
  admin: boolean;
}

/**
 * Who may use a route:
 * - `owner`: the sandbox's owner or an admin (a sandbox nobody owns yet: anyone signed in, who
 *   becomes its owner by launching it);
 * - `signed-in`: anyone signed in (what it answers is narrowed to the caller's own);
 * - `admin`: admins only (it acts on every sandbox, or on what every sandbox shares).
 */
export type RouteAccess = "owner" | "signed-in" | "admin";

/**
 * Every route's access rule. A `Record` over every route name: a route added to the table
 * without one does not type-check, and the permission matrix test reads this table.
 */
export const ROUTE_ACCESS: Record<RouteName, RouteAccess> = {
  list: "signed-in",
  // Everyone reads their own entries; admins everyone's.
  audit: "signed-in",
  // The model credentials every sandbox of the deployment starts with.
  auth: "admin",
  // Repo secrets reach the setup (and, with --agent, the agent) of every sandbox of their repo,
  // whoever owns it: admins set and remove them; anyone signed in lists names (never values).
  secrets_ls: "signed-in",
  secrets_set: "admin",
  secrets_rm: "admin",
  // Everyone's sign-in sessions: seeing and revoking them.
  sessions: "admin",
  revoke_sessions: "admin",
  // Tears down anyone's idle sandboxes.
  gc: "admin",
  // prepared environments: shared by the whole deployment (every repo's), so an admin's.
  environments: "admin",
  environments_rm: "admin",
  status: "owner",
  launch: "owner",
  task: "owner",
  diff: "owner",
  login: "owner",
  logs: "owner",
  checkpoint: "owner",
  export: "owner",
  teardown: "owner",
};

/**
 * May `principal` act on a sandbox owned by `record.owner`? The owner or an admin; a sandbox
 * without an owner (launched before identities, or by the shared token without one) only an admin.
 */
export function mayAct(principal: PrincipalRef | null, record: { owner?: string | null }): boolean {
  if (!principal) return false;
  if (principal.admin) return true;
  return !!record.owner && record.owner === principal.id;
}

/** Throws `forbidden` unless `mayAct`; the message names the owner only to whom may see it. */
export function assertMayAct(
  principal: PrincipalRef | null,
  record: { name: string; owner?: string | null },
): void {
  if (mayAct(principal, record)) return;
  throw new AlpineError(
    "forbidden",
    principal
      ? `sandbox '${record.name}' belongs to someone else; only its owner or an admin may use it`
      : `sandbox '${record.name}' needs a signed-in caller`,
    { name: record.name, principal: principal?.id ?? null },
  );
}

/** Throws `forbidden` unless the principal is an admin. */
export function assertAdmin(principal: PrincipalRef | null, what: string): void {
  if (principal?.admin) return;
  throw new AlpineError("forbidden", `${what} is for admins only`, { principal: principal?.id ?? null });
}

/** Whether a `list` item is shown: the caller's own, or everything for an admin who asked for all. */
export function listShows(principal: PrincipalRef, owner: string | null | undefined, all: boolean): boolean {
  if (all && principal.admin) return true;
  return !!owner && owner === principal.id;
}

/** Who may sign in with GitHub, from the Worker's variables (comma-separated; case does not matter). */
export interface AllowList {
  users: string[];
  orgs: string[];
  admins: string[];
}

function names(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

export function allowListOf(env: {
  ALPINE_ALLOWED_USERS?: string;
  ALPINE_ALLOWED_ORGS?: string;
  ALPINE_ADMINS?: string;
}): AllowList {
  return {
    users: names(env.ALPINE_ALLOWED_USERS),
    orgs: names(env.ALPINE_ALLOWED_ORGS),
    admins: names(env.ALPINE_ADMINS),
  };
}

export type SignInDecision =
  | { allowed: true; admin: boolean; because: "admin" | "user" | "org"; org?: string }
  | { allowed: false; admin: false; because: "not_listed" };

/**
 * May a GitHub user sign in? Admins always; otherwise a listed login or a member of a listed org.
 * An empty allow-list lets nobody but the admins in (closed by default).
 */
export function signInDecision(list: AllowList, login: string, orgs: readonly string[]): SignInDecision {
  const who = login.toLowerCase();
  if (list.admins.includes(who)) return { allowed: true, admin: true, because: "admin" };
  if (list.users.includes(who)) return { allowed: true, admin: false, because: "user" };
  const org = orgs.map((o) => o.toLowerCase()).find((o) => list.orgs.includes(o));
  if (org) return { allowed: true, admin: false, because: "org", org };
  return { allowed: false, admin: false, because: "not_listed" };
}

/** Whether someone signed in through Cloudflare Access (by email) is an admin: listed in `ALPINE_ADMINS`. */
export function isAdminEmail(list: AllowList, email: string): boolean {
  return list.admins.includes(email.toLowerCase());
}
