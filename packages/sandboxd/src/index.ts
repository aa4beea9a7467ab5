/**
 * sandboxd runs as its own process (dist/sandboxd.js, see README.md). These
 * pure helpers are exported for callers that need the same decisions, e.g. a
 * provider's doctor check of the bubblewrap layout.
 */
export { type BwrapLayout, bwrapArgs } from "./bwrap.ts";
export { checkRef, type ResolvedRepo, resolveRepo } from "./git.ts";
export { opencodeConfig } from "./opencode-env.ts";
