import { overlapsSuite } from "./suites/overlaps.ts";

overlapsSuite("local");
