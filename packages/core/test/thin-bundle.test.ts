import { describe, expect, it } from "vitest";
import { earlyBundleVerdict } from "../src/orchestrator/decisions/thin-bundle.ts";

// The bundle sandboxd writes on the parent checkpoint while the remote is asked (docs/durability.md):
// when the remote's answer lets it stand, and when it must be written again.
const HEAD = "a".repeat(40);
const CKPT = "b".repeat(40);
const UP = "c".repeat(40);
const MOVED = "d".repeat(40);

describe("earlyBundleVerdict", () => {
  const cases: [string, Parameters<typeof earlyBundleVerdict>[0], ReturnType<typeof earlyBundleVerdict>][] = [
    [
      "no early bundle (no parent, or its commits are not here): written with the answer's bases",
      { earlyOn: null, parentBases: [], upstreamBases: [UP], chainUpstream: [] },
      { action: "rebuild" },
    ],
    [
      "the usual one: the remote keeps the parent and its branch has not moved",
      { earlyOn: [HEAD, CKPT], parentBases: [HEAD, CKPT], upstreamBases: [UP], chainUpstream: [UP] },
      { action: "keep" },
    ],
    [
      "a force-push removed the upstream the chain needs: the parent is dropped, so the early bundle is",
      { earlyOn: [HEAD, CKPT], parentBases: [], upstreamBases: [MOVED], chainUpstream: [UP] },
      { action: "rebuild" },
    ],
    [
      "the remote does not answer and the chain needs upstream: dropped the same way",
      { earlyOn: [HEAD, CKPT], parentBases: [], upstreamBases: [], chainUpstream: [UP] },
      { action: "rebuild" },
    ],
    [
      "a self-contained parent with no remote answer: the early bundle stands",
      { earlyOn: [HEAD, CKPT], parentBases: [HEAD, CKPT], upstreamBases: [], chainUpstream: [] },
      { action: "keep" },
    ],
    [
      "the remote has a tip the parent may not hold: git is asked whether it is an ancestor",
      { earlyOn: [HEAD, CKPT], parentBases: [HEAD, CKPT], upstreamBases: [UP, MOVED], chainUpstream: [UP] },
      { action: "check", uncovered: [MOVED] },
    ],
    [
      "a tip that is the parent's own head is covered",
      { earlyOn: [HEAD, CKPT], parentBases: [HEAD, CKPT], upstreamBases: [HEAD], chainUpstream: [] },
      { action: "keep" },
    ],
    [
      "the answer keeps only part of what the early bundle left out: written again",
      { earlyOn: [HEAD, CKPT], parentBases: [HEAD], upstreamBases: [], chainUpstream: [] },
      { action: "rebuild" },
    ],
  ];
  for (const [what, input, verdict] of cases) {
    it(what, () => expect(earlyBundleVerdict(input)).toEqual(verdict));
  }
});
