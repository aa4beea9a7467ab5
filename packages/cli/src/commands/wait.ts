import { defineCommand } from "./define.ts";

function seconds(raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error("a number of seconds greater than 0");
  return n;
}

export default defineCommand({
  name: "wait",
  args: [{ name: "names", description: "sandbox names", variadic: true }],
  summary: "wait until sandboxes' agents are done or need input",
  description:
    "Block until each named sandbox's agent reaches the state asked for, print why each stopped, and exit with a code saying how (0: every one reached it; 3 error, 4 needs input, 5 budget, 6 timeout, 7 gone, 8 done without asking; see docs/cli.md). An agent in error or over its budget, or a sandbox torn down, ends its wait whatever --for says. Works on every provider; on the control plane each look is one short request, paced like `task --wait`.",
  flags: {
    for: {
      type: "string",
      value: "state",
      description: "done (the agent finished its task), input (it asks something) or any (either)",
      default: "done",
      choices: ["done", "input", "any"] as const,
    },
    timeout: {
      type: "number",
      value: "seconds",
      description: "stop waiting after this long (exit 6 for the sandboxes still going)",
      parse: seconds,
    },
  },
  examples: [
    "alpine wait fix-login",
    "alpine wait fix-login add-tests --timeout 3600",
    "alpine wait fix-login --for any --json",
    'alpine wait fix-login || echo "stopped: exit $?"',
  ],
  output: "wait",
  handler: () => import("./wait-run.ts").then((m) => m.waitCommand),
});
