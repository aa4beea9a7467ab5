import { journeySuite } from "./suites/journey.ts";

journeySuite("cloudflare");
