import { describe, expect, it } from "vitest";
import { AlpineError } from "../src/errors.ts";
import {
  addUsage,
  budgetReached,
  formatUsage,
  parseBudgetRaise,
  raisedBudget,
  totalTokens,
  ZERO_USAGE,
} from "../src/orchestrator/decisions/budget.ts";
import { normaliseRecord } from "../src/records.ts";
import type { Usage } from "../src/schemas.ts";

const use = (input: number, output: number, cost = 0, cache_read = 0): Usage => ({
  ...ZERO_USAGE,
  input,
  output,
  cost,
  cache_read,
});

describe("budgetReached", () => {
  const cases: {
    name: string;
    task: Usage;
    sandbox: Usage;
    budget: Parameters<typeof budgetReached>[1];
    want: { scope: "task" | "sandbox"; kind: "tokens" | "cost"; spent: number; limit: number } | null;
  }[] = [
    { name: "no budget", task: use(10_000, 1), sandbox: use(10_000, 1), budget: undefined, want: null },
    { name: "empty budget", task: use(10_000, 1), sandbox: use(10_000, 1), budget: {}, want: null },
    {
      name: "task tokens under",
      task: use(500, 499),
      sandbox: use(500, 499),
      budget: { task: { tokens: 1000 } },
      want: null,
    },
    {
      name: "task tokens reached exactly",
      task: use(500, 500),
      sandbox: use(500, 500),
      budget: { task: { tokens: 1000 } },
      want: { scope: "task", kind: "tokens", spent: 1000, limit: 1000 },
    },
    {
      name: "cache tokens count",
      task: use(100, 100, 0, 900),
      sandbox: use(100, 100, 0, 900),
      budget: { task: { tokens: 1000 } },
      want: { scope: "task", kind: "tokens", spent: 1100, limit: 1000 },
    },
    {
      name: "task cost",
      task: use(1, 1, 0.51),
      sandbox: use(1, 1, 0.51),
      budget: { task: { cost: 0.5 } },
      want: { scope: "task", kind: "cost", spent: 0.51, limit: 0.5 },
    },
    {
      name: "sandbox total reached while the task is under its own",
      task: use(100, 0),
      sandbox: use(2000, 100),
      budget: { task: { tokens: 1000 }, sandbox: { tokens: 2000 } },
      want: { scope: "sandbox", kind: "tokens", spent: 2100, limit: 2000 },
    },
    {
      name: "task before sandbox",
      task: use(1000, 0),
      sandbox: use(5000, 0),
      budget: { task: { tokens: 1000 }, sandbox: { tokens: 2000 } },
      want: { scope: "task", kind: "tokens", spent: 1000, limit: 1000 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const hit = budgetReached({ task: c.task, sandbox: c.sandbox }, c.budget);
      if (c.want === null) return expect(hit).toBeNull();
      expect(hit).toMatchObject(c.want);
      // The reason says what was spent of what, and how to go on.
      expect(hit?.reason).toContain(`${c.want.scope} budget reached`);
      expect(hit?.reason).toContain("--budget +");
    });
  }

  it("says the money spent in dollars", () => {
    const hit = budgetReached({ task: use(1, 1, 2.5), sandbox: use(1, 1, 2.5) }, { sandbox: { cost: 2 } });
    expect(hit?.reason).toMatch(/\$2\.50 of \$2\.00 spent/);
  });
});

describe("parseBudgetRaise", () => {
  const ok: [string, { tokens: number; cost: number }][] = [
    ["+50000", { tokens: 50000, cost: 0 }],
    [" +12 ", { tokens: 12, cost: 0 }],
    ["+$2", { tokens: 0, cost: 2 }],
    ["+$0.25", { tokens: 0, cost: 0.25 }],
    ["+3usd", { tokens: 0, cost: 3 }],
    ["+1.5USD", { tokens: 0, cost: 1.5 }],
  ];
  for (const [text, want] of ok) it(`reads ${text}`, () => expect(parseBudgetRaise(text)).toEqual(want));
  for (const bad of ["50000", "+0", "-5", "+", "+abc", "+$", "+$0", "2usd", "+1.5"]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      let err: unknown;
      try {
        parseBudgetRaise(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AlpineError);
      expect((err as AlpineError).reason).toBe("usage_invalid");
      expect((err as AlpineError).message).toContain("+N");
    });
  }
});

describe("raisedBudget", () => {
  it("adds a raise to every limit of its kind and leaves unset kinds unlimited", () => {
    expect(
      raisedBudget({ task: { tokens: 1000 }, sandbox: { tokens: 5000, cost: 1 } }, { tokens: 500, cost: 0 }),
    ).toEqual({ task: { tokens: 1500 }, sandbox: { tokens: 5500, cost: 1 } });
    expect(raisedBudget({ sandbox: { cost: 1 } }, { tokens: 0, cost: 2 })).toEqual({ sandbox: { cost: 3 } });
    expect(raisedBudget({ task: { cost: 1 } }, { tokens: 100, cost: 0 })).toEqual({ task: { cost: 1 } });
  });
  it("is the config as it is without raises", () => {
    expect(raisedBudget({ task: { tokens: 7 } }, undefined)).toEqual({ task: { tokens: 7 } });
    expect(raisedBudget(undefined, { tokens: 5, cost: 0 })).toEqual({});
  });
});

describe("usage arithmetic", () => {
  it("adds and totals every kind of token", () => {
    const u = addUsage(use(1, 2, 0.5, 3), { ...ZERO_USAGE, reasoning: 4, cache_write: 5, cost: 0.25 });
    expect(u).toEqual({ input: 1, output: 2, reasoning: 4, cache_read: 3, cache_write: 5, cost: 0.75 });
    expect(totalTokens(u)).toBe(15);
    expect(formatUsage(u)).toBe("15 tokens (in 1, out 2, reasoning 4, cache 8), $0.7500");
  });
});

describe("records written before the state rename", () => {
  it("reads agent waiting_permission as needs_input", () => {
    const r = normaliseRecord({ id: "sbx_1", name: "a", agent: "waiting_permission" as never });
    expect(r.agent).toBe("needs_input");
    expect(normaliseRecord({ id: "sbx_1", name: "a", agent: "busy" }).agent).toBe("busy");
  });
});
