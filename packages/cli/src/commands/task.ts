import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "task",
  args: [
    { name: "name", description: "sandbox name" },
    { name: "prompt", description: "what the agent should do", variadic: true },
  ],
  summary: "give the agent a new task",
  description: "Send a prompt to the sandbox's agent (a completed sandbox goes back to running).",
  flags: {
    wait: {
      type: "boolean",
      description:
        "wait until the agent has finished the task (as `alpine wait NAME` does, with its exit codes)",
    },
    newSession: {
      type: "boolean",
      description: "start a new OpenCode session instead of continuing the one last used (UI or CLI)",
    },
    budget: {
      type: "string",
      value: "+N",
      description: "raise the sandbox's budget first: +N tokens, +$N or +Nusd money (config sandbox.budget)",
    },
  },
  examples: [
    'alpine task fix-login "Now add a regression test"',
    "alpine task fix-login --wait Update the changelog",
    'alpine task fix-login --new-session "Review the diff with fresh eyes"',
    'alpine task fix-login --budget +200000 "continue"',
    "alpine task fix-login --budget +2usd continue",
  ],
  output: "task",
  handler: () => import("./task-run.ts").then((m) => m.taskCommand),
});
