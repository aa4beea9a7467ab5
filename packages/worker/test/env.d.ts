// Types `exports` of "cloudflare:workers" and the test env after the Worker's own module and bindings.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../src/index.ts");
  }
  interface Env extends import("../src/env.ts").Env {}
}
