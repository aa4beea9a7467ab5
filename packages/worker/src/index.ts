import { createApp } from "./app.ts";
import type { Env } from "./env.ts";

export { SandboxContainer, SandboxContainerLarge } from "./container-object.ts";
export { RegistryObject } from "./registry.ts";
export { SandboxObject } from "./sandbox-object.ts";

const app = createApp();

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
