import { AlpineError, NAME_PATTERN } from "@alpine/core";
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

/** The first label of `url`'s host under the parent host of sandbox origins, or null. */
function labelUnderParent(env: Pick<Env, "ALPINE_UI_HOST">, url: URL): string | null {
  const configured = env.ALPINE_UI_HOST?.trim().toLowerCase();
  const parent = configured ? new URL(`http://${configured}`).hostname : "localhost";
  if (!url.hostname.endsWith(`.${parent}`)) return null;
  return url.hostname.slice(0, -parent.length - 1);
}

/**
 * Previews: each port of each sandbox at its own origin, `<name>--p<port>.<parent host>`. One
 * DNS label, so the UI's wildcard route and certificate (`*.<parent host>`) cover it, and a
 * browser keeps its cookies and storage apart from the UI's and every other preview's. The
 * `--` marks it: the control plane refuses new sandbox names containing `--`
 * (`assertNameServable`), so no sandbox's UI origin can be read as a preview's. The longest
 * label, a 50-character name and `--p65535`, stays under DNS's 63.
 */
const PREVIEW_LABEL = /^([a-z0-9][a-z0-9-]{0,49})--p([1-9][0-9]{0,4})$/;

/** The sandbox and port whose preview origin `url` is on, or null. */
export function previewOfUiHost(
  env: Pick<Env, "ALPINE_UI_HOST">,
  url: URL,
): { name: string; port: number } | null {
  const m = PREVIEW_LABEL.exec(labelUnderParent(env, url) ?? "");
  if (!m) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { name: m[1]!, port } : null;
}

/** The sandbox whose UI origin `url` is on, or null (the control plane's own origin, a preview's, or another host). */
export function sandboxOfUiHost(env: Pick<Env, "ALPINE_UI_HOST">, url: URL): string | null {
  const label = labelUnderParent(env, url);
  if (label === null || previewOfUiHost(env, url)) return null;
  return NAME_PATTERN.test(label) ? label : null;
}

/**
 * A control-plane sandbox's name must not contain `--`: that marks preview hostnames
 * (`<name>--p<port>.<parent host>`), and a sandbox named `app--p80` would otherwise own the UI
 * origin that is `app`'s preview of port 80.
 */
export function assertNameServable(name: string): void {
  if (name.includes("--"))
    throw new AlpineError(
      "name_invalid",
      `sandbox name '${name}' contains '--', which the control plane keeps for preview hostnames (<name>--p<port>.<host>); use single dashes`,
      { name },
    );
}

/**
 * The one-time link to a preview of `port` (`path`: sandboxd's login path for it), or null where
 * previews cannot be served: the `workers.dev` fallback has no per-sandbox hostnames, and a
 * preview needs its own origin (apps live at `/` and own their cookies).
 */
export function previewLink(
  env: Pick<Env, "ALPINE_UI_HOST">,
  apiOrigin: string,
  name: string,
  port: number,
  path: string,
): string | null {
  const parent = uiParentHost(env, apiOrigin);
  if (!parent) return null;
  return `${new URL(apiOrigin).protocol}//${name}--p${port}.${parent}${path}`;
}

/** Why `alpine open --port` fails on a control plane without per-sandbox hostnames. */
export const PREVIEWS_NEED_UI_HOST =
  "previews (open --port) need per-sandbox hostnames, which this control plane's workers.dev URL cannot serve: set ALPINE_UI_HOST (a custom domain with a wildcard route, docs/cloudflare.md) and deploy again";

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
