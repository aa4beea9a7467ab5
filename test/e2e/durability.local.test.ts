import { durabilitySuite } from "./suites/durability.ts";

durabilitySuite("local");
