import { NAME_PATTERN } from "@alpine/core";
import type { Env } from "./env.ts";

/**
 * Each sandbox's web UI at its own origin, `<name>.<parent host>`: cookies,
 * storage and open tabs of one sandbox are then the browser's business with
 * that origin only, so two sandbox UIs work side by side and content served by
 * one cannot touch another's session.
 *
 * The parent host is `ALPINE_UI_HOST` (a custom domain with a wildcard route,
 * e.g. `alpine.example.com` for `*.alpine.example.com/*`), or, when it is
 * unset and the control plane is reached on the loopback (`alpine cloud dev`),
 * `localhost:<port>`: browsers resolve every `*.localhost` to the loopback.
 * Otherwise (a `workers.dev` URL, which cannot have sub-subdomains) the UI
 * falls back to the one-origin, cookie-routed `/s/<name>/` path.
 */

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The parent host (`host[:port]`) of per-sandbox origins for a control plane reached at `apiOrigin`, or null. */
export function uiParentHost(env: Pick<Env, "ALPINE_UI_HOST">, apiOrigin: string): string | null {
  const configured = env.ALPINE_UI_HOST?.trim().toLowerCase();
  if (configured) return configured;
  const api = new URL(apiOrigin);
  return LOOPBACK.has(api.hostname) ? `localhost${api.port ? `:${api.port}` : ""}` : null;
}

/** The sandbox whose UI origin `url` is on, or null (the control plane's own origin, or another host). */
export function sandboxOfUiHost(env: Pick<Env, "ALPINE_UI_HOST">, url: URL): string | null {
  const configured = env.ALPINE_UI_HOST?.trim().toLowerCase();
  const parent = configured ? new URL(`http://${configured}`).hostname : "localhost";
  if (!url.hostname.endsWith(`.${parent}`)) return null;
  const label = url.hostname.slice(0, -parent.length - 1);
  return NAME_PATTERN.test(label) ? label : null;
}

/** Where a sandbox's UI lives and its one-time login link, for a control plane reached at `apiOrigin`. */
export function uiLinks(
  env: Pick<Env, "ALPINE_UI_HOST">,
  apiOrigin: string,
  name: string,
): { web: string; login: (code: string) => string } {
  const parent = uiParentHost(env, apiOrigin);
  if (!parent) {
    const web = `${apiOrigin}/s/${name}/`;
    return { web, login: (code) => `${web}?code=${encodeURIComponent(code)}` };
  }
  const origin = `${new URL(apiOrigin).protocol}//${name}.${parent}`;
  return { web: `${origin}/`, login: (code) => `${origin}/auth/${encodeURIComponent(code)}` };
}
