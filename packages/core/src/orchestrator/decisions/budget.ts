import type { Budget } from "../../config.ts";
import { AlpineError } from "../../errors.ts";
import type { Usage } from "../../sandboxd-api.ts";

/**
 * Budgets (config `sandbox.budget`, docs/config.md): what counts as spent, when a limit is
 * reached, and how `alpine task --budget +N` raises it. sandboxd applies `budgetReached` after
 * every assistant message OpenCode updates; the CLI and the control plane compute the limits
 * they send with each task (`raisedBudget`). Pure: no clock, no I/O.
 */

export const ZERO_USAGE: Usage = {
  input: 0,
  output: 0,
  reasoning: 0,
  cache_read: 0,
  cache_write: 0,
  cost: 0,
};

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    input: a.input + b.input,
    output: a.output + b.output,
    reasoning: a.reasoning + b.reasoning,
    cache_read: a.cache_read + b.cache_read,
    cache_write: a.cache_write + b.cache_write,
    cost: a.cost + b.cost,
  };
}

/** Every token OpenCode counted: input, output, reasoning, cache read and cache write. */
export function totalTokens(u: Usage): number {
  return u.input + u.output + u.reasoning + u.cache_read + u.cache_write;
}

const money = (n: number) => `$${n < 1 ? n.toFixed(4) : n.toFixed(2)}`;

/** One short line for a person: `1234 tokens (in 1000, out 200, cache 34), $0.0123`. */
export function formatUsage(u: Usage): string {
  const cache = u.cache_read + u.cache_write;
  const parts = [`in ${u.input}`, `out ${u.output}`];
  if (u.reasoning) parts.push(`reasoning ${u.reasoning}`);
  if (cache) parts.push(`cache ${cache}`);
  return `${totalTokens(u)} tokens (${parts.join(", ")}), ${money(u.cost)}`;
}

export interface BudgetReached {
  scope: "task" | "sandbox";
  kind: "tokens" | "cost";
  spent: number;
  limit: number;
  /** What `agent.reason` says. */
  reason: string;
}

/** The first limit `spent` reaches (task before sandbox, tokens before cost), or null. */
export function budgetReached(
  spent: { task: Usage; sandbox: Usage },
  budget: Budget | undefined,
): BudgetReached | null {
  for (const scope of ["task", "sandbox"] as const) {
    const limit = budget?.[scope];
    if (!limit) continue;
    const usage = spent[scope];
    const tokens = totalTokens(usage);
    if (limit.tokens !== undefined && tokens >= limit.tokens) {
      return {
        scope,
        kind: "tokens",
        spent: tokens,
        limit: limit.tokens,
        reason: `${scope} budget reached: ${tokens} of ${limit.tokens} tokens spent (${formatUsage(usage)}); continue with \`alpine task NAME --budget +N "continue"\``,
      };
    }
    if (limit.cost !== undefined && usage.cost >= limit.cost) {
      return {
        scope,
        kind: "cost",
        spent: usage.cost,
        limit: limit.cost,
        reason: `${scope} budget reached: ${money(usage.cost)} of ${money(limit.cost)} spent (${formatUsage(usage)}); continue with \`alpine task NAME --budget +$N "continue"\``,
      };
    }
  }
  return null;
}

/** What `--budget` adds: tokens, or money. */
export interface BudgetRaise {
  tokens: number;
  cost: number;
}

/**
 * Parses `--budget`: `+N` (tokens), `+$N` or `+Nusd` (money, USD). The `+` says it is added to
 * what is already allowed, never a new total. usage_invalid for anything else.
 */
export function parseBudgetRaise(text: string): BudgetRaise {
  const t = text.trim();
  const money = /^\+\s*(?:\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*usd)$/i.exec(t);
  if (money) {
    const cost = Number(money[1] ?? money[2]);
    if (cost > 0) return { tokens: 0, cost };
  }
  const tokens = /^\+\s*(\d+)$/.exec(t);
  if (tokens && Number(tokens[1]) > 0) return { tokens: Number(tokens[1]), cost: 0 };
  throw new AlpineError(
    "usage_invalid",
    `--budget '${text}' is not a raise: give +N for tokens (e.g. +50000) or +$N / +Nusd for money (e.g. +2usd)`,
    { budget: text },
  );
}

/**
 * The limits after the raises a sandbox was given: each raise adds to every limit of its kind
 * that is set (task and sandbox), so the turn that was stopped can go on and the next one gets
 * the same room. A kind with no limit stays unlimited.
 */
export function raisedBudget(budget: Budget | undefined, raised: BudgetRaise | null | undefined): Budget {
  const out: Budget = {};
  for (const scope of ["task", "sandbox"] as const) {
    const limit = budget?.[scope];
    if (!limit) continue;
    out[scope] = {
      ...(limit.tokens !== undefined ? { tokens: limit.tokens + (raised?.tokens ?? 0) } : {}),
      ...(limit.cost !== undefined ? { cost: limit.cost + (raised?.cost ?? 0) } : {}),
    };
  }
  return out;
}
