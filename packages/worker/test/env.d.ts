// Types `exports` of "cloudflare:workers" and the test env after the Worker's own module and bindings.
type WorkerEnv = import("../src/env.ts").Env;
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../src/index.ts");
  }
  interface Env extends WorkerEnv {}
}
