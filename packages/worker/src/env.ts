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
  /** The GitHub App's id; with its private key the front door acts as the App's installations (github-app.ts). */
  GITHUB_APP_ID?: string;
  /** The GitHub App's private key, PEM (PKCS#1 as GitHub issues it, or PKCS#8) (secret). */
  GITHUB_APP_PRIVATE_KEY?: string;
  /** The config (alpine.yaml as JSON) of sandboxes started from GitHub. */
  ALPINE_GITHUB_CONFIG?: string;
  /** `/alpine` commands a user may give an hour (default 20). */
  ALPINE_GITHUB_RATE_LIMIT?: string;
  // ---- identity (identity.ts; docs/cloudflare.md, "People and roles") ----
  /** Comma-separated GitHub logins that may sign in (and start work from GitHub). */
  ALPINE_ALLOWED_USERS?: string;
  /** Comma-separated GitHub organizations whose members may sign in (and start work from GitHub). */
  ALPINE_ALLOWED_ORGS?: string;
  /** Comma-separated GitHub logins (or Access emails) that are admins. */
  ALPINE_ADMINS?: string;
  /** The GitHub OAuth app of the sign-in (web and device flow). */
  GITHUB_CLIENT_ID?: string;
  /** Its client secret (secret). */
  GITHUB_CLIENT_SECRET?: string;
  /** GitHub's web origin (default https://github.com; a local stub in tests, GitHub Enterprise). */
  GITHUB_OAUTH_URL?: string;
  /** GitHub's API (default https://api.github.com). */
  GITHUB_API_URL?: string;
  /** Cloudflare Access: the team domain (`<team>.cloudflareaccess.com`) and the application's AUD tag. */
  ACCESS_TEAM_DOMAIN?: string;
  ACCESS_AUD?: string;
}
