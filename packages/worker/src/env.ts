/**
 * The Worker's bindings (wrangler.jsonc). Secrets are marked; they never leave
 * the control plane except the model credentials handed to a container at start.
 */
export interface Env {
  /** Bearer token of every /v1 route (secret). Also the root of the keys derived in crypto.ts. */
  ALPINE_CONTROL_PLANE_TOKEN: string;
  SANDBOX: DurableObjectNamespace<import("./sandbox-object.ts").SandboxObject>;
  REGISTRY: DurableObjectNamespace<import("./registry.ts").RegistryObject>;
  CHECKPOINTS: R2Bucket;
  /** JSON map image profile → container Durable Object binding name, e.g. {"default":"SANDBOX_CONTAINER"}. */
  CONTAINER_PROFILES?: string;
  /** Container bindings named in CONTAINER_PROFILES (absent in `alpine cloud dev`). */
  [binding: string]: unknown;
  /** R2 key prefix of checkpoints (durability.checkpoint_prefix). */
  CHECKPOINT_PREFIX?: string;
  /**
   * `alpine cloud dev` only: the Node container host that starts sandboxd
   * processes on 127.0.0.1 in place of Containers (workerd cannot spawn processes).
   */
  ALPINE_CONTAINER_HOST_URL?: string;
  /** Its bearer token (secret). */
  ALPINE_CONTAINER_HOST_TOKEN?: string;
  /** Seconds a container keeps running after its Durable Object went idle (default 600). */
  CONTAINER_INACTIVITY_SECONDS?: string;
  /**
   * Parent host of per-sandbox web UI origins (`<name>.<ALPINE_UI_HOST>`, a custom domain with a
   * wildcard route). Unset: `<name>.localhost:<port>` when reached on the loopback (`alpine cloud
   * dev`), else the one-origin `/s/<name>/` fallback (docs/cloudflare.md, "The web UI").
   */
  ALPINE_UI_HOST?: string;
  /** Seconds between alarm runs while a sandbox is live (default 60). */
  ALARM_INTERVAL_SECONDS?: string;
  // ---- GitHub's front door (github-front.ts, docs/cloudflare.md "Tasks from GitHub") ----
  /** The GitHub App's webhook secret: X-Hub-Signature-256 is checked against it (secret). */
  GITHUB_WEBHOOK_SECRET?: string;
  /** The token the front door calls GitHub's API and pushes with (secret; an installation token for now). */
  GITHUB_APP_TOKEN?: string;
  /** GitHub's REST API base (default https://api.github.com; tests point it at their stub). */
  GITHUB_API_URL?: string;
  /** Comma-separated GitHub logins that may start work (contract 1 of identity). */
  ALPINE_ALLOWED_USERS?: string;
  /** Comma-separated GitHub orgs whose members may start work. */
  ALPINE_ALLOWED_ORGS?: string;
  /** Comma-separated GitHub logins with the admin role (they may start work too). */
  ALPINE_ADMINS?: string;
  /** The config (alpine.yaml as JSON) of sandboxes started from GitHub. */
  ALPINE_GITHUB_CONFIG?: string;
  /** `/alpine` commands a user may give an hour (default 20). */
  ALPINE_GITHUB_RATE_LIMIT?: string;
}
